//! Signals (SIGIO through pipe ownership included) and ptrace outside the agent, above all at
//! the daemon, are denied; inside the agent and from the host they work.

use super::*;

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
