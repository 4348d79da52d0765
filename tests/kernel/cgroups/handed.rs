//! Nor through descriptors it is handed: cgroup files a non-agent opened for write (and a
//! procfs file of a host task), or a sub-cgroup file another agent opened and wrote through;
//! a non-agent writes through the same kind of descriptors.

use super::*;

/// Removes cgroup directories on drop (deepest first), failure or not.
struct Cgroups(Vec<PathBuf>);

impl Drop for Cgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Agent A (argv[3]) opens two files (argv[5], argv[6]) for write and sends the descriptors
/// to agent B (argv[4]) over a socket pair this non-agent made; A writes `3` through the
/// second before sending it. B writes `7` through each and prints `ok` or `write-ERRNO`.
/// argv[1], argv[2]: the governor binary and the policy.
const PASS: &str = r#"
import subprocess, socket, sys
gov, pol, a, b, opened, written = sys.argv[1:7]
RECV = """
import array, errno, os, socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
s.send(b"r")
for _ in range(2):
    msg, anc, _, _ = s.recvmsg(1, socket.CMSG_SPACE(4))
    fd = array.array("i", anc[0][2][:4])[0]
    try:
        os.write(fd, b"7")
        print("ok", flush=True)
    except OSError as e:
        print("write-" + errno.errorcode[e.errno], flush=True)
"""
SEND = """
import array, os, socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
s.recv(1)
for path, write_first in ((sys.argv[2], False), (sys.argv[3], True)):
    fd = os.open(path, os.O_WRONLY)
    if write_first:
        os.write(fd, b"3")
    s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    os.close(fd)
"""
def run(agent, script, *args, **kw):
    cmd = [gov, "run", "--policy", pol, "--agent", agent, "--", "python3", "-c", script]
    return subprocess.Popen(cmd + list(args), **kw)
s1, s2 = socket.socketpair()
rb = run(b, RECV, str(s2.fileno()), pass_fds=[s2.fileno()], stdout=subprocess.PIPE)
ra = run(a, SEND, str(s1.fileno()), opened, written, pass_fds=[s1.fileno()])
s1.close()
s2.close()
ra.wait()
out = rb.communicate()[0]
sys.stdout.write(out.decode())
sys.exit(ra.returncode or rb.returncode)
"#;

#[test]
fn lsm_agent_cannot_write_cgroup_or_proc_files_through_handed_descriptors() {
    require_bpf_lsm();
    let dir = scratch("cg-hand");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("control.py"), CONTROL);
    write(&dir.join("hand.py"), HAND);
    write(&dir.join("pass.py"), PASS);
    let script = dir.join("control.py");
    let agent = "cg-hand";
    let other = "cg-hand-b";
    let policy_text = format!(
        "{}\n[[agents]]\nname = \"{other}\"\ncgroup = \"governor-test/{other}\"\n",
        policy(agent, "enforce", &dir.join("prod"))
    );
    let d = Daemon::start(&dir, &policy_text);
    let own = cg(&format!("governor-test/{agent}"));
    let sub = own.join("sub");
    let outside = cg("governor-test/cg-hand-outside");
    let child = outside.join("child");
    // Declared before the sleeper: dropped after it, once the cgroups are empty.
    let _cgroups = Cgroups(vec![sub.clone(), child.clone(), outside.clone()]);
    std::fs::create_dir_all(&child).expect("mkdir non-agent cgroups");
    // Made by the host below the agent's cgroup: the agent's (inherited).
    std::fs::create_dir_all(&sub).expect("mkdir the agent's sub-cgroup");
    enable_pids();
    assert!(
        outside.join("pids.max").exists() && own.join("pids.max").exists(),
        "the VM must offer the pids controller"
    );
    let mut sleeper = Reaped(spawn_in_cgroup(
        "governor-test/cg-hand-outside/child",
        0,
        0,
        &["sleep", "300"],
    ));
    let oom = PathBuf::from(format!("/proc/{}/oom_score_adj", sleeper.0.id()));
    let oom_before = read(&oom);
    let fd = |n: usize, v: &str| format!("fd:{}:{v}", 20 + n);

    // Descriptors a non-agent opened for write, handed to the agent: refused outside its
    // agent and on its top cgroup, as if it had opened them itself; and a procfs file of a
    // host task. Its own sub-cgroup's files work.
    let mark = d.mark();
    let files = [
        outside.join("cgroup.freeze"),
        child.join("cgroup.kill"),
        outside.join("pids.max"),
        own.join("cgroup.freeze"),
        own.join("pids.max"),
        oom.clone(),
        sub.join("cgroup.max.descendants"),
        sub.join("cgroup.freeze"),
        // Last: were it let through, the agent would be gone.
        own.join("cgroup.kill"),
    ];
    let ops = [
        (fd(0, "1"), "write-EPERM"),
        (fd(1, "1"), "write-EPERM"),
        (fd(2, "1"), "write-EPERM"),
        (fd(3, "0"), "write-EPERM"),
        (fd(4, "1000"), "write-EPERM"),
        (fd(5, "500"), "write-EPERM"),
        (fd(6, "3"), "ok"),
        (fd(7, "1"), "ok"),
        (fd(8, "1"), "write-EPERM"),
    ];
    let ops: Vec<(String, &str)> = ops.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control_handed(&d, Some(agent), &script, &files, &ops);
    // Nothing changed outside its own sub-cgroup.
    assert!(
        matches!(sleeper.0.try_wait(), Ok(None)),
        "cgroup.kill refused"
    );
    assert!(read(&outside.join("cgroup.events")).contains("frozen 0"));
    assert_eq!(read(&outside.join("pids.max")), "max");
    assert_eq!(read(&own.join("pids.max")), "max");
    assert_eq!(read(&oom), oom_before, "the host task's oom_score_adj");
    assert_eq!(read(&sub.join("cgroup.max.descendants")), "3");
    assert!(read(&sub.join("cgroup.events")).contains("frozen 1"));
    // One event per refused write.
    let events = decisions_since(&d, mark, 7);
    assert_eq!(events.len(), 7, "{events:#?}");
    for ev in &events {
        assert_eq!(ev["decision"], "deny", "{ev}");
        assert_eq!(ev["agent"], agent, "{ev}");
        assert_eq!(ev["comm"], "python3", "{ev}");
    }
    let control_events = |name: &str, cgroup: &Path| {
        let what = format!("cgroup id {}", id(cgroup));
        events
            .iter()
            .filter(|v| v["class"] == "cgroup-control" && v["name"] == name && v["what"] == what)
            .count()
    };
    assert_eq!(control_events("cgroup.freeze", &outside), 1, "{events:#?}");
    assert_eq!(control_events("cgroup.kill", &child), 1, "{events:#?}");
    assert_eq!(control_events("pids.max", &outside), 1, "{events:#?}");
    assert_eq!(control_events("cgroup.freeze", &own), 1, "{events:#?}");
    assert_eq!(control_events("pids.max", &own), 1, "{events:#?}");
    assert_eq!(control_events("cgroup.kill", &own), 1, "{events:#?}");
    let ptrace: Vec<&Value> = events.iter().filter(|v| v["class"] == "ptrace").collect();
    assert_eq!(ptrace.len(), 1, "{events:#?}");
    assert_eq!(ptrace[0]["what"], "write to /proc/PID", "{}", ptrace[0]);
    assert_eq!(ptrace[0]["target_pid"], sleeper.0.id(), "{}", ptrace[0]);
    std::fs::write(sub.join("cgroup.freeze"), "0").expect("thaw the sub-cgroup");

    // A sub-cgroup file the agent opened itself (and wrote through) is no pass for another
    // agent it hands the descriptor to: nothing about such a file is kept for the next
    // writer, neither from the open nor from a write.
    let mark = d.mark();
    let out = as_host(&[
        "python3",
        &s(&dir.join("pass.py")),
        &s(&governor_bin()),
        &s(&d.policy),
        agent,
        other,
        &s(&sub.join("cgroup.max.depth")),
        &s(&sub.join("cgroup.max.descendants")),
    ]);
    let got = lines(&out, "agent to agent", 2);
    assert_eq!(got, [["write-EPERM"], ["write-EPERM"]], "{got:?}");
    assert_eq!(read(&sub.join("cgroup.max.depth")), "max");
    assert_eq!(read(&sub.join("cgroup.max.descendants")), "3");
    let events = decisions_since(&d, mark, 2);
    assert_eq!(events.len(), 2, "{events:#?}");
    for ev in &events {
        assert_eq!(ev["class"], "cgroup-control", "{ev}");
        assert_eq!(ev["agent"], other, "{ev}");
        assert_eq!(ev["what"], format!("cgroup id {}", id(&sub)), "{ev}");
    }
    let _ = std::fs::remove_dir(cg(&format!("governor-test/{other}")));

    // A non-agent writes through the same kind of descriptors.
    let mark = d.mark();
    let files = [
        outside.join("pids.max"),
        own.join("pids.max"),
        oom.clone(),
        outside.join("cgroup.freeze"),
        child.join("cgroup.kill"),
    ];
    let ops = [
        (fd(0, "100"), "ok"),
        (fd(1, "1000"), "ok"),
        (fd(2, "300"), "ok"),
        (fd(3, "0"), "ok"),
        (fd(4, "1"), "ok"),
    ];
    let ops: Vec<(String, &str)> = ops.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control_handed(&d, None, &script, &files, &ops);
    assert_eq!(read(&outside.join("pids.max")), "100");
    assert_eq!(read(&own.join("pids.max")), "1000");
    assert_eq!(read(&oom), "300");
    let status = sleeper.0.wait().expect("wait for the sleeper");
    assert!(!status.success(), "killed through cgroup.kill: {status}");
    d.none_since(mark, "non-agent writes through descriptors");
    std::fs::write(own.join("pids.max"), "max").expect("reset pids.max");
}
