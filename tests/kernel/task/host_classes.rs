//! Host-wide classes: bpf() and kernel modules (finit, init from memory, delete, autoload)
//! denied to agents; and observe mode, which allows the task and host classes and records
//! each.

use super::*;

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
