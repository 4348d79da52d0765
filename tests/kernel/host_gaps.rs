//! Host-wide refusals beyond bpf() and kernel modules: pushing input into a terminal
//! (tty-inject), loading a kernel to boot into (kexec), exec of a file whose capabilities
//! raise the permitted set (setid), and the daemon's immunity to the OOM killer (its
//! `oom_score_adj`, which agents may not write: ptrace). For each: the agent gets EPERM and
//! the target is unchanged, a plain host process is unaffected, and one event is logged.

use std::os::unix::fs::PermissionsExt;

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, as_host_user, assert_eperm, assert_ok, require_bpf_lsm, run_in_cgroup, scratch, Daemon,
};
use serde_json::Value;

/// The unprivileged identity of the file-capability test.
const NOBODY: u32 = 65534;

/// A policy with enforcing agent `agent` (cgroup `governor-test/<agent>`) and nothing else.
fn policy(agent: &str) -> String {
    format!(
        "[policy]\nname = \"test-{agent}\"\nowner = \"kernel-tests@example.com\"\n\n\
         [[agents]]\nname = \"{agent}\"\ncgroup = \"governor-test/{agent}\"\nmode = \"enforce\"\n"
    )
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_event(ev: &Value, agent: &str, class: &str, what: &str) {
    assert_eq!(ev["agent"], agent, "{ev}");
    assert_eq!(ev["class"], class, "{ev}");
    assert_eq!(ev["decision"], "deny", "{ev}");
    assert_eq!(ev["what"], what, "{ev}");
}

/// Asserts that `out` failed with an errno other than EPERM (the operation reached the
/// kernel code behind the hook, which refused it for its own reasons).
fn assert_other_error(out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !stderr.contains("Operation not permitted"),
        "{what}: expected an error other than EPERM, got {} stdout={:?} stderr={stderr:?}",
        out.status,
        stdout(out)
    );
}

// ---------------------------------------------------------------------------------------
// Terminal injection

/// `dev.tty.legacy_tiocsti` set to 1 for the test (when the kernel has it) and restored on
/// drop, so that a refused TIOCSTI can only be governor's doing.
struct LegacyTiocsti(Option<String>);

const LEGACY_TIOCSTI: &str = "/proc/sys/dev/tty/legacy_tiocsti";

impl LegacyTiocsti {
    fn enable() -> LegacyTiocsti {
        let old = std::fs::read_to_string(LEGACY_TIOCSTI).ok();
        if old.is_some() {
            std::fs::write(LEGACY_TIOCSTI, "1").expect("sysctl dev.tty.legacy_tiocsti=1");
        }
        LegacyTiocsti(old)
    }
}

impl Drop for LegacyTiocsti {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(LEGACY_TIOCSTI, old.trim());
        }
    }
}

/// Opens a pty, puts it in raw mode and pushes `x` into its input with TIOCSTI; prints
/// `queued` or `empty` (what the terminal's reader would see), then re-raises the ioctl's
/// error if any.
const TIOCSTI: &str = "import fcntl, os, select, termios, tty\n\
     m, s = os.openpty()\n\
     tty.setraw(s)\n\
     err = None\n\
     try:\n\
     \x20   fcntl.ioctl(s, termios.TIOCSTI, b'x')\n\
     except OSError as e:\n\
     \x20   err = e\n\
     r, _, _ = select.select([s], [], [], 0.3)\n\
     print('queued' if r and os.read(s, 16) == b'x' else 'empty')\n\
     if err:\n\
     \x20   raise err\n";

/// TIOCLINUX (0x541C) on a pty, subcommand TIOCL_PASTESEL (3). A pty is no virtual
/// console, so the kernel itself answers ENOTTY: only governor answers EPERM.
const TIOCLINUX: &str = "import fcntl, os\n\
     m, s = os.openpty()\n\
     fcntl.ioctl(s, 0x541C, b'\\x03')\n";

#[test]
fn lsm_terminal_injection_is_denied_to_agents() {
    require_bpf_lsm();
    let dir = scratch("tty-inject");
    let _legacy = LegacyTiocsti::enable();
    let agent = "agent-tty";
    let mut d = Daemon::start(&dir, &policy(agent));

    let mark = d.mark();
    let out = d.as_agent(agent, &["python3", "-c", TIOCSTI]);
    assert_eperm(&out, "agent TIOCSTI");
    assert_eq!(
        stdout(&out).trim(),
        "empty",
        "nothing may reach the terminal"
    );
    let ev = d.one_since(mark, "TIOCSTI", |v| v["class"] == "tty-inject");
    assert_event(&ev, agent, "tty-inject", "TIOCSTI");
    assert_eq!(ev["detail"], 0x5412, "{ev}");

    let mark = d.mark();
    let out = d.as_agent(agent, &["python3", "-c", TIOCLINUX]);
    assert_eperm(&out, "agent TIOCLINUX");
    let ev = d.one_since(mark, "TIOCLINUX", |v| v["class"] == "tty-inject");
    assert_event(&ev, agent, "tty-inject", "TIOCLINUX");

    // A plain host process injects into its pty; its TIOCLINUX reaches the tty layer.
    let mark = d.mark();
    let out = as_host(&["python3", "-c", TIOCSTI]);
    assert_ok(&out, "host TIOCSTI");
    assert_eq!(
        stdout(&out).trim(),
        "queued",
        "the host's TIOCSTI must take effect"
    );
    let out = as_host(&["python3", "-c", TIOCLINUX]);
    assert_other_error(&out, "host TIOCLINUX on a pty");
    d.none_since(mark, "host terminal ioctls");
    // Other ioctls on a terminal stay open to agents.
    let out = d.as_agent(
        agent,
        &[
            "python3",
            "-c",
            "import os, termios; m, s = os.openpty(); termios.tcgetattr(s)",
        ],
    );
    assert_ok(&out, "agent TCGETS");
    assert!(d.alive());
}

// ---------------------------------------------------------------------------------------
// kexec

/// kexec_file_load(2) (x86-64 syscall 320) of the file argv[1] without initramfs
/// (`KEXEC_FILE_NO_INITRAMFS`) and with an empty command line.
const KEXEC_FILE_LOAD: &str = "import ctypes, os, sys\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     fd = os.open(sys.argv[1], os.O_RDONLY)\n\
     if libc.syscall(320, fd, -1, 0, None, 4) != 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n";

/// kexec_load(2) (x86-64 syscall 246) with no segments and a foreign architecture in its
/// flags (`KEXEC_ARCH_386`): the kernel refuses it with EINVAL after the security hook.
const KEXEC_LOAD: &str = "import ctypes, os\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     if libc.syscall(246, 0, 0, None, 3 << 16) != 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n";

#[test]
fn lsm_kexec_is_denied_to_agents() {
    require_bpf_lsm();
    let dir = scratch("kexec");
    // Not a kernel: the kernel reads it, then its image probe refuses it (ENOEXEC).
    let image = dir.join("not-a-kernel");
    std::fs::write(&image, vec![0x5a_u8; 8192]).expect("write image");
    let disabled = std::fs::read_to_string("/proc/sys/kernel/kexec_load_disabled")
        .expect("this kernel has no kexec: /proc/sys/kernel/kexec_load_disabled is missing");
    assert_eq!(disabled.trim(), "0", "kexec is disabled on this kernel");
    let agent = "agent-kexec";
    let mut d = Daemon::start(&dir, &policy(agent));

    // The host first: proves the calls exist and what they answer without governor's hook.
    let mark = d.mark();
    let out = as_host(&["python3", "-c", KEXEC_FILE_LOAD, &s(&image)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Function not implemented"),
        "this kernel lacks kexec_file_load(2) (ENOSYS): the kexec test cannot run: {stderr}"
    );
    assert_other_error(&out, "host kexec_file_load of a non-kernel");
    let out = as_host(&["python3", "-c", KEXEC_LOAD]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Invalid argument"),
        "host kexec_load with a foreign arch: expected EINVAL, got {stderr:?}"
    );
    d.none_since(mark, "host kexec");

    let mark = d.mark();
    let out = d.as_agent(agent, &["python3", "-c", KEXEC_FILE_LOAD, &s(&image)]);
    assert_eperm(&out, "agent kexec_file_load");
    let ev = d.one_since(mark, "kexec_file_load", |v| v["class"] == "kexec");
    assert_event(&ev, agent, "kexec", "kexec_file_load kernel");
    assert_eq!(ev["name"], "not-a-kernel", "{ev}");

    let mark = d.mark();
    let out = d.as_agent(agent, &["python3", "-c", KEXEC_LOAD]);
    assert_eperm(&out, "agent kexec_load");
    let ev = d.one_since(mark, "kexec_load", |v| v["class"] == "kexec");
    assert_event(&ev, agent, "kexec", "kexec_load");
    assert!(d.alive());
}

// ---------------------------------------------------------------------------------------
// File capabilities

/// Writes `security.capability` (revision 2, effective) granting CAP_NET_RAW (13) to argv[1].
const SET_CAP_NET_RAW: &str = "import os, struct, sys\n\
     os.setxattr(sys.argv[1], 'security.capability', struct.pack('<5I', 0x02000001, 1 << 13, 0, 0, 0))\n";

/// The permitted capabilities in `cat /proc/self/status` output.
fn cap_prm(status: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with("CapPrm:"))
        .unwrap_or_else(|| panic!("no CapPrm in {status:?}"));
    u64::from_str_radix(line["CapPrm:".len()..].trim(), 16).expect("CapPrm hex")
}

#[test]
fn lsm_file_capabilities_on_exec_are_denied_to_agents() {
    require_bpf_lsm();
    let dir = scratch("filecaps");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let capped = dir.join("cat-net-raw");
    let plain = dir.join("cat-plain");
    for f in [&capped, &plain] {
        std::fs::copy("/usr/bin/cat", f).expect("copy cat");
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = as_host(&["python3", "-c", SET_CAP_NET_RAW, &s(&capped)]);
    assert_ok(&out, "setxattr security.capability");
    let agent = "agent-filecaps";
    let cgroup = format!("governor-test/{agent}");
    let d = Daemon::start(&dir, &policy(agent));

    // A plain unprivileged host process gains CAP_NET_RAW from the file.
    let out = as_host_user(NOBODY, NOBODY, &[&s(&capped), "/proc/self/status"]);
    assert_ok(&out, "host nobody runs the capped binary");
    assert_eq!(
        cap_prm(&stdout(&out)),
        1 << 13,
        "file capabilities must take effect here"
    );
    // The same user inside the agent may not.
    let mark = d.mark();
    let out = run_in_cgroup(&cgroup, NOBODY, NOBODY, &[&s(&capped), "/proc/self/status"]);
    assert_eperm(&out, "agent nobody runs the capped binary");
    assert!(!stdout(&out).contains("CapPrm"), "{}", stdout(&out));
    let ev = d.one_since(mark, "file caps exec", |v| v["class"] == "setid");
    assert_event(
        &ev,
        agent,
        "setid",
        "exec of a file whose capabilities raise CAP_NET_RAW",
    );
    assert_eq!(ev["name"], "cat-net-raw", "{ev}");
    assert_eq!(ev["uid"], NOBODY, "{ev}");
    // The copy without capabilities runs, and a root agent (which already holds every
    // capability) gains nothing from the capped one.
    let mark = d.mark();
    let out = run_in_cgroup(&cgroup, NOBODY, NOBODY, &[&s(&plain), "/proc/self/status"]);
    assert_ok(&out, "agent nobody runs the plain copy");
    assert_eq!(cap_prm(&stdout(&out)), 0);
    let out = d.as_agent(agent, &[&s(&capped), "/proc/self/status"]);
    assert_ok(&out, "root agent runs the capped binary");
    d.none_since(mark, "exec without a capability gain");
}

// ---------------------------------------------------------------------------------------
// The daemon and the OOM killer

#[test]
fn lsm_daemon_is_out_of_oom_reach_and_agents_cannot_change_that() {
    require_bpf_lsm();
    let dir = scratch("oom");
    let agent = "agent-oom";
    let mut d = Daemon::start(&dir, &policy(agent));
    let file = format!("/proc/{}/oom_score_adj", d.pid());
    let read = |f: &str| std::fs::read_to_string(f).expect("read oom_score_adj");
    assert_eq!(read(&file).trim(), "-1000", "the daemon must exempt itself");

    // An agent (root) cannot make the daemon the OOM killer's first pick.
    let raise = format!("open('{file}', 'w').write('1000')");
    let mark = d.mark();
    let out = d.as_agent(agent, &["python3", "-c", &raise]);
    assert_eperm(&out, "agent writes the daemon's oom_score_adj");
    assert_eq!(
        read(&file).trim(),
        "-1000",
        "the daemon's oom_score_adj changed"
    );
    let ev = d.one_since(mark, "oom_score_adj", |v| v["class"] == "ptrace");
    assert_event(&ev, agent, "ptrace", "write to /proc/PID");
    assert_eq!(ev["target_pid"], d.pid(), "{ev}");
    // Nor any other /proc/PID file of a task outside it.
    let comm = format!("open('/proc/{}/comm', 'w').write('pwned')", d.pid());
    let out = d.as_agent(agent, &["python3", "-c", &comm]);
    assert_eperm(&out, "agent writes the daemon's comm");
    // Its own /proc files stay writable.
    let mark = d.mark();
    let own = "open('/proc/self/oom_score_adj', 'w').write('500'); \
               print(open('/proc/self/oom_score_adj').read())";
    let out = d.as_agent(agent, &["python3", "-c", own]);
    assert_ok(&out, "agent writes its own oom_score_adj");
    assert_eq!(stdout(&out).trim(), "500");
    // A plain host process may write the daemon's file (the same value, harmlessly).
    let out = as_host(&[
        "python3",
        "-c",
        &format!("open('{file}', 'w').write('-1000')"),
    ]);
    assert_ok(&out, "host writes the daemon's oom_score_adj");
    d.none_since(mark, "own and host /proc writes");
    assert!(d.alive());
}
