//! Process and host-wide classes: exec of listed binaries (under any name, through the
//! loader, as memfd), setid transitions, signals and ptrace outside the agent (above all at
//! the daemon), bpf() and kernel modules. For each: the agent gets EPERM and the target is
//! unchanged, a plain host process is unaffected, and exactly one event is logged.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Output},
    thread,
    time::{Duration, Instant},
};

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, as_host_user, assert_eperm, assert_ok, kernel_module, require_bpf_lsm, run_in_cgroup,
    scratch, spawn_in_cgroup, write, Daemon,
};
use serde_json::Value;

/// The unprivileged identity the setuid tests run as.
const NOBODY: u32 = 65534;
/// The dynamic loader, which can run a binary without exec'ing it.
const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";

/// One agent of a test policy: name, mode, allow_fileless_exec.
struct A<'a>(&'a str, &'a str, bool);

/// A policy with `agents` (each in cgroup `governor-test/<name>`) and `binaries` denied exec.
fn policy(name: &str, agents: &[A], binaries: &[&Path]) -> String {
    let mut s = format!("[policy]\nname = \"test-{name}\"\nowner = \"kernel-tests@example.com\"\n");
    for A(agent, mode, fileless) in agents {
        s += &format!(
            "\n[[agents]]\nname = \"{agent}\"\ncgroup = \"{}\"\nmode = \"{mode}\"\n\
             allow_fileless_exec = {fileless}\n",
            cgroup(agent)
        );
    }
    for b in binaries {
        s += &format!(
            "\n[[binaries]]\npath = \"{}\"\ndeny = [\"exec\"]\n",
            b.display()
        );
    }
    s
}

fn cgroup(agent: &str) -> String {
    format!("governor-test/{agent}")
}

fn python(code: &str) -> Vec<&str> {
    vec!["python3", "-c", code]
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A long-running `sleep` child, killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn host() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("300")
                .spawn()
                .expect("spawn sleep"),
        )
    }

    /// A `sleep` in the cgroup `rel`, returned once it runs `sleep` there.
    fn in_cgroup(rel: &str) -> Sleeper {
        let s = Sleeper(spawn_in_cgroup(rel, 0, 0, &["sleep", "300"]));
        let comm = format!("/proc/{}/comm", s.pid());
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep" {
            assert!(Instant::now() < deadline, "sleep did not start in {rel}");
            thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Waits up to 5 s for the process to end.
    fn ended(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asserts an event's common fields.
fn assert_event(ev: &Value, agent: &str, class: &str, decision: &str) {
    assert_eq!(ev["agent"], agent, "{ev}");
    assert_eq!(ev["class"], class, "{ev}");
    assert_eq!(ev["decision"], decision, "{ev}");
}

// ---------------------------------------------------------------------------------------
// Exec

#[test]
fn lsm_exec_of_a_listed_binary_under_any_name() {
    require_bpf_lsm();
    let dir = scratch("exec");
    // A listed binary on a writable filesystem, so that it can have links.
    let bin = dir.join("bin/shred");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::copy("/usr/bin/shred", &bin).expect("copy shred");
    let hardlink = dir.join("bin/wipe");
    std::fs::hard_link(&bin, &hardlink).expect("hard link");
    let symlink = dir.join("bin/via-symlink");
    std::os::unix::fs::symlink(&bin, &symlink).expect("symlink");
    let victim = dir.join("victim.txt");
    write(&victim, "precious");
    let ino = std::fs::metadata(&bin).expect("stat").ino();
    let system_shred = Path::new("/usr/bin/shred");

    let agent = "agent-exec";
    let d = Daemon::start(
        &dir,
        &policy("exec", &[A(agent, "enforce", false)], &[&bin, system_shred]),
    );
    let unchanged = || std::fs::read(&victim).expect("read victim") == b"precious";

    // The listed binary, its hard link, a symlink to it, and the system's shred: all denied.
    for (how, path, name) in [
        ("by its path", &s(&bin), "shred"),
        ("by a hard link", &s(&hardlink), "wipe"),
        ("by a symlink", &s(&symlink), "shred"),
    ] {
        let mark = d.mark();
        let out = d.as_agent(agent, &[path, "-n1", &s(&victim)]);
        assert_eperm(&out, &format!("agent exec {how}"));
        assert!(unchanged(), "victim changed after exec {how}");
        let ev = d.one_since(mark, how, |v| v["class"] == "exec");
        assert_event(&ev, agent, "exec", "deny");
        assert_eq!(ev["name"], name, "{how}: {ev}");
        assert_eq!(ev["target_ino"], ino, "{how}: {ev}");
        assert_eq!(ev["protected"], s(&bin), "{how}: {ev}");
        assert_eq!(ev["what"], "execve", "{how}: {ev}");
    }
    let mark = d.mark();
    let out = d.as_agent(agent, &["shred", "-n1", &s(&victim)]);
    assert_eperm(&out, "agent exec of /usr/bin/shred via PATH");
    assert!(unchanged());
    let ev = d.one_since(mark, "exec /usr/bin/shred", |v| v["class"] == "exec");
    assert_eq!(ev["protected"], "/usr/bin/shred");

    // Through the loader, which maps the binary itself instead of exec'ing it.
    for listed in [s(system_shred), s(&bin)] {
        let mark = d.mark();
        let out = d.as_agent(agent, &[LD_SO, &listed, "-n1", &s(&victim)]);
        assert!(!out.status.success(), "ld.so {listed} must fail: {out:?}");
        assert!(unchanged(), "victim changed after ld.so {listed}");
        let ev = d.one_since(mark, "ld.so mapping", |v| v["class"] == "exec");
        assert_eq!(ev["what"], "mmap PROT_EXEC", "{ev}");
        assert_eq!(ev["protected"], listed.as_str(), "{ev}");
        assert_eq!(ev["comm"], "ld-linux-x86-64", "{ev}");
    }

    // Mapping it readable, then making the mapping executable.
    let code = format!(
        "import ctypes, os\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.mmap.restype = ctypes.c_void_p\n\
         libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]\n\
         fd = os.open({:?}, os.O_RDONLY)\n\
         addr = libc.mmap(None, 4096, 1, 2, fd, 0)\n\
         assert addr not in (None, ctypes.c_void_p(-1).value), 'mmap PROT_READ failed'\n\
         if libc.mprotect(ctypes.c_void_p(addr), 4096, 5) != 0:\n\
         \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n",
        &s(&bin)
    );
    let mark = d.mark();
    let out = d.as_agent(agent, &python(&code));
    assert_eperm(&out, "agent mprotect PROT_EXEC of a listed binary");
    let ev = d.one_since(mark, "mprotect", |v| v["class"] == "exec");
    assert_eq!(ev["what"], "mprotect PROT_EXEC", "{ev}");
    // The same program works on an unlisted file.
    let out = d.as_agent(agent, &python(&code.replace(&s(&bin), "/usr/bin/true")));
    assert_ok(&out, "agent mprotect PROT_EXEC of an unlisted binary");

    // Unlisted binaries run; a shebang script whose interpreter is listed does not.
    let out = d.as_agent(agent, &["true"]);
    assert_ok(&out, "agent runs an unlisted binary");
    let script = dir.join("wipe.sh");
    write(&script, &format!("#!{} -n1\n", &s(&bin)));
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let before = std::fs::read(&script).expect("read script");
    let out = d.as_agent(agent, &[&s(&script)]);
    assert_eperm(&out, "agent runs a script interpreted by a listed binary");
    assert_eq!(std::fs::read(&script).expect("read"), before);

    // A plain host process runs the listed binary under any name.
    let mark = d.mark();
    let out = as_host(&[&s(&hardlink), "-n1", &s(&victim)]);
    assert_ok(&out, "host runs the listed binary");
    assert!(!unchanged(), "host shred must overwrite the victim");
    let out = as_host(&[LD_SO, "/usr/bin/true"]);
    assert_ok(&out, "host runs a binary through ld.so");
    d.none_since(mark, "host exec");
}

#[test]
fn lsm_fileless_exec_is_denied_unless_allowed() {
    require_bpf_lsm();
    let dir = scratch("fileless");
    let strict = "agent-nofileless";
    let lenient = "agent-fileless";
    let mut d = Daemon::start(
        &dir,
        &policy(
            "fileless",
            &[A(strict, "enforce", false), A(lenient, "enforce", true)],
            &[],
        ),
    );
    // A copy of `true` written to a memfd and executed through /proc/self/fd.
    let memfd_exec = "import os\n\
         fd = os.memfd_create('payload', 0)\n\
         os.write(fd, open('/usr/bin/true', 'rb').read())\n\
         os.execv(f'/proc/self/fd/{fd}', ['true'])\n";
    let mark = d.mark();
    let out = d.as_agent(strict, &python(memfd_exec));
    assert_eperm(&out, "agent memfd exec");
    let ev = d.one_since(mark, "memfd exec", |v| v["class"] == "exec");
    assert_event(&ev, strict, "exec", "deny");
    assert_eq!(ev["name"], "memfd:payload", "{ev}");
    assert_eq!(
        ev["protected"],
        "(fileless: the file has no name on any filesystem)"
    );
    assert_eq!(ev["what"], "execve");

    // Mapping memfd contents executable, as a loader would.
    let memfd_map = "import os, mmap\n\
         fd = os.memfd_create('code', 0)\n\
         os.write(fd, b'\\xc3' * 4096)\n\
         mmap.mmap(fd, 4096, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_EXEC)\n";
    let mark = d.mark();
    let out = d.as_agent(strict, &python(memfd_map));
    assert_eperm(&out, "agent PROT_EXEC mmap of a memfd");
    let ev = d.one_since(mark, "memfd mmap", |v| v["class"] == "exec");
    assert_eq!(ev["what"], "mmap PROT_EXEC", "{ev}");

    // Anonymous executable memory (what a JIT maps) has no file at all: not this class.
    let mark = d.mark();
    let jit =
        "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)";
    let out = d.as_agent(strict, &python(jit));
    assert_ok(&out, "agent anonymous PROT_EXEC mmap");
    d.none_since(mark, "anonymous mapping");

    // A file deleted while open has no name either.
    let copy = dir.join("true-copy");
    std::fs::copy("/usr/bin/true", &copy).expect("copy true");
    let deleted_exec = format!(
        "import os\n\
         fd = os.open({:?}, os.O_RDONLY)\n\
         os.unlink({:?})\n\
         os.execv(f'/proc/self/fd/{{fd}}', ['true'])\n",
        &s(&copy),
        &s(&copy)
    );
    let mark = d.mark();
    let out = d.as_agent(strict, &python(&deleted_exec));
    assert_eperm(&out, "agent exec of a deleted file");
    d.one_since(mark, "deleted exec", |v| v["class"] == "exec");

    // An agent whose policy allows it, and a plain host process, may.
    let mark = d.mark();
    let out = d.as_agent(lenient, &python(memfd_exec));
    assert_ok(&out, "allow_fileless_exec agent memfd exec");
    let out = d.as_agent(lenient, &python(memfd_map));
    assert_ok(&out, "allow_fileless_exec agent memfd mmap");
    let out = as_host(&python(memfd_exec));
    assert_ok(&out, "host memfd exec");
    d.none_since(mark, "allowed fileless exec");
    assert!(d.alive());
}

// ---------------------------------------------------------------------------------------
// Setid

#[test]
fn lsm_setid_transitions() {
    require_bpf_lsm();
    let dir = scratch("setid");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let suid = dir.join("suid-id");
    std::fs::copy("/usr/bin/id", &suid).expect("copy id");
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let agent = "agent-setid";
    let d = Daemon::start(&dir, &policy("setid", &[A(agent, "enforce", false)], &[]));

    // The set-user-ID copy works for a plain host process: this mount honours suid bits.
    let out = as_host_user(NOBODY, NOBODY, &[&s(&suid)]);
    assert_ok(&out, "host nobody runs suid id");
    assert!(
        stdout(&out).contains("euid=0"),
        "suid must take effect here: {}",
        stdout(&out)
    );
    // The same unprivileged user inside the agent cannot gain root through it.
    let mark = d.mark();
    let out = run_in_cgroup(&cgroup(agent), NOBODY, NOBODY, &[&s(&suid)]);
    assert_eperm(&out, "agent nobody runs suid id");
    assert!(!stdout(&out).contains("euid=0"), "{}", stdout(&out));
    let ev = d.one_since(mark, "suid exec", |v| v["class"] == "setid");
    assert_event(&ev, agent, "setid", "deny");
    assert_eq!(ev["what"], "euid=0 by exec of a set-id file", "{ev}");
    assert_eq!(ev["name"], "suid-id", "{ev}");
    assert_eq!(ev["uid"], NOBODY, "{ev}");
    // Unprivileged agents still run ordinary binaries.
    let out = run_in_cgroup(&cgroup(agent), NOBODY, NOBODY, &["id", "-u"]);
    assert_ok(&out, "agent nobody runs id");
    assert_eq!(stdout(&out).trim(), NOBODY.to_string());

    // setuid, setgid, setgroups from a root agent: each change is denied with one event.
    for (call, what) in [
        ("os.setuid(65534)", "uid=65534"),
        ("os.seteuid(65534)", "euid=65534"),
        ("os.setgid(65534)", "gid=65534"),
        ("os.setgroups([4242])", "setgroups to 1 groups"),
    ] {
        let code = format!("import os; {call}; print(os.getresuid(), os.getresgid())");
        let mark = d.mark();
        let out = d.as_agent(agent, &python(&code));
        assert_eperm(&out, &format!("agent {call}"));
        let ev = d.one_since(mark, call, |v| v["class"] == "setid");
        assert_eq!(ev["what"], what, "{call}: {ev}");
        // The host may.
        let out = as_host(&python(&code));
        assert_ok(&out, &format!("host {call}"));
    }
    // Setting the ids an agent already has is no transition.
    let mark = d.mark();
    let out = d.as_agent(
        agent,
        &python(
            "import os; os.setresuid(0, 0, 0); os.setresgid(0, 0, 0); os.setgroups(os.getgroups())",
        ),
    );
    assert_ok(&out, "agent sets unchanged ids");
    d.none_since(mark, "unchanged ids");
}

// ---------------------------------------------------------------------------------------
// Signals and ptrace

/// Makes argv[1] (a pid, or -pgid) the owner of a pipe with O_ASYNC and writes to it: the
/// owner gets SIGIO.
const SIGIO_TO: &str = "import fcntl, os, sys\n\
     r, w = os.pipe()\n\
     fcntl.fcntl(r, fcntl.F_SETOWN, int(sys.argv[1]))\n\
     fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)\n\
     os.write(w, b'x')\n";

#[test]
fn lsm_signals_outside_the_agent_are_denied() {
    require_bpf_lsm();
    let dir = scratch("signal");
    let agent = "agent-sig";
    let other = "agent-sig-other";
    let mut d = Daemon::start(
        &dir,
        &policy(
            "signal",
            &[A(agent, "enforce", false), A(other, "enforce", false)],
            &[],
        ),
    );
    let daemon = d.pid().to_string();

    // The daemon: neither SIGTERM, SIGKILL nor SIGSTOP reach it.
    for sig in ["TERM", "KILL", "STOP"] {
        let mark = d.mark();
        let out = d.as_agent(agent, &["sh", "-c", &format!("kill -{sig} {daemon}")]);
        assert_eperm(&out, &format!("agent kill -{sig} daemon"));
        let ev = d.one_since(mark, "signal to daemon", |v| v["class"] == "signal");
        assert_event(&ev, agent, "signal", "deny");
        assert_eq!(ev["target_pid"].to_string(), daemon, "{ev}");
        assert_eq!(ev["what"], format!("SIG{sig}"), "{ev}");
        assert_eq!(ev["name"], "governor", "{ev}");
        assert!(d.alive(), "daemon died of SIG{sig}");
    }
    // Signal 0 only probes for existence: allowed, no event.
    let mark = d.mark();
    let out = d.as_agent(agent, &["sh", "-c", &format!("kill -0 {daemon}")]);
    assert_ok(&out, "agent kill -0 daemon");
    d.none_since(mark, "kill -0");

    // A plain host process, and a process of another agent.
    let mut host = Sleeper::host();
    let mut neighbour = Sleeper::in_cgroup(&cgroup(other));
    for (who, target) in [("host", &mut host), ("other agent", &mut neighbour)] {
        let mark = d.mark();
        let out = d.as_agent(agent, &["kill", "-TERM", &target.pid().to_string()]);
        assert_eperm(&out, &format!("agent kill {who} process"));
        assert!(target.alive(), "{who} process must survive");
        let ev = d.one_since(mark, who, |v| v["class"] == "signal");
        assert_eq!(ev["target_pid"], target.pid(), "{ev}");
        assert_eq!(ev["name"], "sleep", "{ev}");
    }

    // A file owner gets SIGIO on I/O without a kill(2): the agent cannot make another
    // process an owner, by value (F_SETOWN) or through a pointer (F_SETOWN_EX, FIOSETOWN).
    let mark = d.mark();
    let out = d.as_agent(agent, &["python3", "-c", SIGIO_TO, &host.pid().to_string()]);
    assert_eperm(&out, "agent F_SETOWN host process");
    let ev = d.one_since(mark, "F_SETOWN", |v| v["class"] == "signal");
    assert_eq!(ev["target_pid"], host.pid(), "{ev}");
    assert_eq!(ev["what"], "SIGIO as file owner (F_SETOWN)", "{ev}");
    let mark = d.mark();
    let out = d.as_agent(agent, &["python3", "-c", SIGIO_TO, &format!("-{daemon}")]);
    assert_eperm(&out, "agent F_SETOWN process group");
    let ev = d.one_since(mark, "F_SETOWN pgrp", |v| v["class"] == "signal");
    assert_eq!(
        ev["what"], "SIGIO as file owner (F_SETOWN) to a process group",
        "{ev}"
    );
    for (how, code) in [
        (
            "F_SETOWN_EX",
            "import fcntl, os, struct\n\
             r, w = os.pipe()\n\
             fcntl.fcntl(r, 15, struct.pack('ii', 1, os.getpid()))\n",
        ),
        (
            "FIOSETOWN",
            "import fcntl, os, socket, struct\n\
             s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
             fcntl.ioctl(s.fileno(), 0x8901, struct.pack('i', os.getpid()))\n",
        ),
    ] {
        let mark = d.mark();
        let out = d.as_agent(agent, &python(code));
        assert_eperm(&out, &format!("agent {how}"));
        let ev = d.one_since(mark, how, |v| v["class"] == "signal");
        assert_eq!(ev["what"], format!("SIGIO as file owner ({how})"), "{ev}");
    }
    assert!(host.alive(), "host process must survive");
    // Owning its own files works, SIGIO included.
    let own_sigio = "import fcntl, os, signal, time\n\
         got = []\n\
         signal.signal(signal.SIGIO, lambda *a: got.append(1))\n\
         r, w = os.pipe()\n\
         fcntl.fcntl(r, fcntl.F_SETOWN, os.getpid())\n\
         fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)\n\
         os.write(w, b'x')\n\
         time.sleep(0.2)\n\
         print('sigio' if got else 'none')\n";
    let mark = d.mark();
    let out = d.as_agent(agent, &python(own_sigio));
    assert_ok(&out, "agent owns its own pipe");
    assert_eq!(stdout(&out), "sigio\n");
    d.none_since(mark, "own SIGIO");

    // Its own processes, also in a cgroup it created below its own: allowed.
    let sub = format!("/sys/fs/cgroup/{}/sub", cgroup(agent));
    let script = format!(
        "sleep 300 & kill -TERM $!; wait $!; echo own=$?; \
         mkdir -p {sub}; sleep 300 & echo $! > {sub}/cgroup.procs; \
         grep -q sub /proc/$!/cgroup || exit 9; kill -TERM $!; wait $!; echo sub=$?"
    );
    let mark = d.mark();
    let out = d.as_agent(agent, &["sh", "-c", &script]);
    assert_ok(&out, "agent signals its own processes");
    assert_eq!(stdout(&out), "own=143\nsub=143\n");
    d.none_since(mark, "own processes");
    let _ = std::fs::remove_dir(&sub);

    // The host may signal anything, also as a file owner (which shows SIGIO kills here).
    let out = as_host(&["python3", "-c", SIGIO_TO, &host.pid().to_string()]);
    assert_ok(&out, "host F_SETOWN");
    assert!(host.ended(), "SIGIO must end the host process");
    let out = as_host(&["kill", "-TERM", &neighbour.pid().to_string()]);
    assert_ok(&out, "host kill");
    assert!(neighbour.ended(), "the other agent's process must end");
    assert!(d.alive());
}

#[test]
fn lsm_ptrace_outside_the_agent_is_denied() {
    require_bpf_lsm();
    let dir = scratch("ptrace");
    let agent = "agent-ptrace";
    let mut d = Daemon::start(&dir, &policy("ptrace", &[A(agent, "enforce", false)], &[]));
    let daemon = d.pid();
    let attach = |pid: &str| {
        format!(
            "import ctypes, os\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             pid = {pid}\n\
             if libc.ptrace(16, pid, None, None) != 0:\n\
             \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n\
             os.waitpid(pid, 0)\n\
             libc.ptrace(17, pid, None, None)\n\
             print('attached')\n"
        )
    };

    // Attaching to the daemon, and reading its memory.
    let mark = d.mark();
    let out = d.as_agent(agent, &python(&attach(&daemon.to_string())));
    assert_eperm(&out, "agent PTRACE_ATTACH daemon");
    let ev = d.one_since(mark, "ptrace attach", |v| v["class"] == "ptrace");
    assert_event(&ev, agent, "ptrace", "deny");
    assert_eq!(ev["target_pid"], daemon, "{ev}");
    assert_eq!(ev["name"], "governor", "{ev}");
    assert!(
        ev["what"].as_str().is_some_and(|w| w.contains("attach")),
        "{ev}"
    );
    // Opening /proc/<daemon>/mem is an attach-mode check; the kernel reports its refusal as
    // EACCES (mm_access), the event says who refused.
    let mark = d.mark();
    let out = d.as_agent(agent, &["head", "-c1", &format!("/proc/{daemon}/mem")]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "agent reads /proc/<daemon>/mem: {out:?}"
    );
    let ev = d.one_since(mark, "proc mem", |v| v["class"] == "ptrace");
    assert_eq!(ev["what"], "mode 0xa: attach fscreds", "{ev}");
    // Inspection of its secrets (read mode) is refused too: /proc/<daemon>/environ (procfs
    // answers EACCES for a refused access check). A probe that only hides a field
    // (`/proc/<daemon>/stat`, noaudit) is not.
    let mark = d.mark();
    let out = d.as_agent(agent, &["cat", &format!("/proc/{daemon}/environ")]);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "agent reads /proc/<daemon>/environ: {out:?}"
    );
    let ev = d.one_since(mark, "proc environ", |v| v["class"] == "ptrace");
    assert_eq!(ev["what"], "mode 0x9: read fscreds", "{ev}");
    let mark = d.mark();
    let out = d.as_agent(agent, &["cat", &format!("/proc/{daemon}/stat")]);
    assert_ok(&out, "agent reads /proc/<daemon>/stat");
    d.none_since(mark, "a noaudit probe");

    // Its own child: allowed.
    let own = "import ctypes, os, signal, time\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         pid = os.fork()\n\
         if pid == 0:\n\
         \x20   time.sleep(300)\n\
         \x20   os._exit(0)\n\
         if libc.ptrace(16, pid, None, None) != 0:\n\
         \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n\
         os.waitpid(pid, 0)\n\
         libc.ptrace(17, pid, None, None)\n\
         os.kill(pid, signal.SIGKILL)\n\
         print('attached')\n";
    let mark = d.mark();
    let out = d.as_agent(agent, &python(own));
    assert_ok(&out, "agent ptraces its own child");
    d.none_since(mark, "own child");

    // The host may attach to anything.
    let host = Sleeper::host();
    let out = as_host(&python(&attach(&host.pid().to_string())));
    assert_ok(&out, "host PTRACE_ATTACH");
    assert!(d.alive());
}

// ---------------------------------------------------------------------------------------
// bpf() and kernel modules

/// bpf(BPF_MAP_CREATE) of a one-slot array; prints the fd.
const BPF_MAP_CREATE: &str = "import ctypes, os, struct\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     attr = ctypes.create_string_buffer(struct.pack('IIII', 2, 4, 4, 1), 128)\n\
     fd = libc.syscall(321, 0, attr, 128)\n\
     if fd < 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n\
     print(fd)\n";

#[test]
fn lsm_bpf_is_denied_to_agents() {
    require_bpf_lsm();
    let dir = scratch("bpf");
    let agent = "agent-bpf";
    let mut d = Daemon::start(&dir, &policy("bpf", &[A(agent, "enforce", false)], &[]));
    let mark = d.mark();
    let out = d.as_agent(agent, &python(BPF_MAP_CREATE));
    assert_eperm(&out, "agent bpf(BPF_MAP_CREATE)");
    let ev = d.one_since(mark, "bpf", |v| v["class"] == "bpf");
    assert_event(&ev, agent, "bpf", "deny");
    assert_eq!(ev["what"], "BPF_MAP_CREATE", "{ev}");
    assert_eq!(ev["detail"], 0, "{ev}");
    // Nor can it look at, or tamper with, the daemon's programs and maps.
    let out = d.as_agent(agent, &["bpftool", "prog", "show"]);
    assert!(!out.status.success(), "agent bpftool prog show must fail");
    let out = as_host(&python(BPF_MAP_CREATE));
    assert_ok(&out, "host bpf(BPF_MAP_CREATE)");
    let out = as_host(&["bpftool", "prog", "show"]);
    assert_ok(&out, "host bpftool prog show");
    assert!(
        stdout(&out).contains("path_unlink"),
        "the daemon's programs are loaded: {}",
        stdout(&out)
    );
    assert!(d.alive());
}

/// A module of the running kernel with no dependencies, decompressed into `dir`.
fn test_module(dir: &Path) -> PathBuf {
    kernel_module(dir, "kernel/lib/crc-itu-t.ko")
}

/// finit_module(2) of the file given as argv[1].
const FINIT_MODULE: &str = "import ctypes, os, sys\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     fd = os.open(sys.argv[1], os.O_RDONLY)\n\
     if libc.syscall(313, fd, b'', 0) != 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n";

/// init_module(2) of the file given as argv[1], from memory.
const INIT_MODULE: &str = "import ctypes, os, sys\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     image = open(sys.argv[1], 'rb').read()\n\
     if libc.syscall(175, image, len(image), b'') != 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n";

/// delete_module(2) of argv[1].
const DELETE_MODULE: &str = "import ctypes, os, sys\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     if libc.syscall(176, sys.argv[1].encode(), os.O_NONBLOCK) != 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n";

#[test]
fn lsm_kernel_modules_are_denied_to_agents() {
    require_bpf_lsm();
    let dir = scratch("modules");
    let module = test_module(&dir);
    let loaded = Path::new("/sys/module/crc_itu_t");
    assert!(
        !loaded.exists(),
        "crc_itu_t must not be loaded before the test"
    );
    let agent = "agent-kmod";
    let mut d = Daemon::start(&dir, &policy("kmod", &[A(agent, "enforce", false)], &[]));

    for (how, code) in [("finit_module", FINIT_MODULE), ("init_module", INIT_MODULE)] {
        let mark = d.mark();
        let out = d.as_agent(agent, &["python3", "-c", code, &s(&module)]);
        assert_eperm(&out, &format!("agent {how}"));
        assert!(!loaded.exists(), "{how}: the module must not be loaded");
        let ev = d.one_since(mark, how, |v| v["class"] == "kernel-module");
        assert_event(&ev, agent, "kernel-module", "deny");
        assert_eq!(ev["what"], how, "{ev}");
        if how == "finit_module" {
            assert_eq!(ev["name"], "crc-itu-t.ko", "{ev}");
        }
    }
    // Module autoload on the agent's behalf (an unregistered socket family, AF_APPLETALK):
    // the socket fails either way, the request itself is refused and recorded.
    let autoload = "import socket\n\
         try:\n\
         \x20   socket.socket(5, socket.SOCK_DGRAM)\n\
         except OSError as e:\n\
         \x20   print(e.errno)\n";
    let mark = d.mark();
    let _ = d.as_agent(agent, &python(autoload));
    let ev = d.one_since(mark, "request_module", |v| v["class"] == "kernel-module");
    assert_eq!(ev["what"], "request_module", "{ev}");
    assert_eq!(ev["name"], "net-pf-5", "{ev}");

    // The host loads (and unloads) it.
    let mark = d.mark();
    let out = as_host(&["python3", "-c", FINIT_MODULE, &s(&module)]);
    assert_ok(&out, "host finit_module");
    assert!(loaded.exists(), "host load must take effect");
    let out = as_host(&["python3", "-c", DELETE_MODULE, "crc_itu_t"]);
    assert_ok(&out, "host delete_module");
    let _ = as_host(&python(autoload));
    d.none_since(mark, "host module load");
    assert!(d.alive());
}

// ---------------------------------------------------------------------------------------
// Observe mode

#[test]
fn lsm_observe_mode_allows_and_records_task_and_host_classes() {
    require_bpf_lsm();
    let dir = scratch("task-observe");
    let agent = "agent-task-obs";
    let d = Daemon::start(
        &dir,
        &policy("task-observe", &[A(agent, "observe", false)], &[]),
    );
    let mut host = Sleeper::host();
    let mark = d.mark();
    let out = d.as_agent(agent, &["kill", "-TERM", &host.pid().to_string()]);
    assert_ok(&out, "observe agent kill host process");
    assert!(host.ended(), "observe mode lets the signal through");
    let ev = d.one_since(mark, "observed signal", |v| v["class"] == "signal");
    assert_event(&ev, agent, "signal", "observe-deny");
    let mark = d.mark();
    let out = d.as_agent(agent, &python(BPF_MAP_CREATE));
    assert_ok(&out, "observe agent bpf");
    let ev = d.one_since(mark, "observed bpf", |v| v["class"] == "bpf");
    assert_event(&ev, agent, "bpf", "observe-deny");
}
