//! Abstract unix sockets: an agent may connect (stream) or send (datagram) to an abstract
//! socket only if that socket was created inside its own cgroup subtree, unless its policy
//! sets `allow_outside_abstract_unix`. Non-agents and socketpairs are unaffected.

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::fs::MetadataExt,
    path::Path,
    process::{Child, ChildStdout, Command, Stdio},
};

use governor_kernel_tests::{as_host, governor_bin, require_bpf_lsm, scratch, write, Daemon};
use serde_json::Value;

/// `listen NAME KIND`: binds the abstract name NAME (KIND `stream` or `dgram`), prints
/// `ready`, then `got MSG` for every message received. `send NAME KIND MSG`: connects and
/// sends (stream) or sends a datagram to NAME; prints `ok` or the errno name. `pair`: sends
/// over a stream and a datagram socketpair; prints `ok`.
const SCRIPT: &str = r#"
import errno, socket, sys
mode = sys.argv[1]
if mode == "pair":
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        a, b = socket.socketpair(socket.AF_UNIX, kind)
        a.send(b"x")
        assert b.recv(1) == b"x"
    print("ok", flush=True)
    sys.exit(0)
name, kind = "\0" + sys.argv[2], sys.argv[3]
typ = socket.SOCK_STREAM if kind == "stream" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_UNIX, typ)
if mode == "listen":
    s.bind(name)
    if kind == "stream":
        s.listen(8)
    print("ready", flush=True)
    while True:
        if kind == "stream":
            c, _ = s.accept()
            print("got", c.recv(64).decode(), flush=True)
            c.close()
        else:
            print("got", s.recv(64).decode(), flush=True)
try:
    if kind == "stream":
        s.connect(name)
        s.sendall(sys.argv[4].encode())
    else:
        s.sendto(sys.argv[4].encode(), name)
except OSError as e:
    print(errno.errorcode[e.errno], flush=True)
    sys.exit(1)
print("ok", flush=True)
"#;

/// A listener process and its output.
struct Listener {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Listener {
    /// Starts `cmd` (which runs [`SCRIPT`] `listen ...`) and waits for `ready`.
    fn start(mut cmd: Command) -> Listener {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn listener");
        let mut out = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        out.read_line(&mut line).expect("listener output");
        assert_eq!(line.trim(), "ready", "listener did not start");
        Listener { child, out }
    }

    /// The listener's cgroup id (the cgroup its socket was created in).
    fn cgroup_id(&self) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/cgroup", self.child.id()))
            .expect("listener's /proc/PID/cgroup");
        let rel = text.trim().split("::").nth(1).expect("a cgroup v2 line");
        std::fs::metadata(format!("/sys/fs/cgroup{rel}"))
            .expect("the listener's cgroup")
            .ino()
    }

    /// Stops the listener; returns every message it received.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
        rest.lines()
            .filter_map(|l| l.strip_prefix("got "))
            .map(str::to_owned)
            .collect()
    }
}

/// Agents `agent` and `other` (defaults), and `open` with `allow_outside_abstract_unix`.
fn policy(agent: &str, other: &str, open: &str) -> String {
    format!(
        r#"
[policy]
name = "test-abstract"
owner = "kernel-tests@example.com"

[[agents]]
name = "{agent}"
cgroup = "governor-test/{agent}"

[[agents]]
name = "{other}"
cgroup = "governor-test/{other}"

[[agents]]
name = "{open}"
cgroup = "governor-test/{open}"
allow_outside_abstract_unix = true
"#
    )
}

/// `SCRIPT send NAME KIND MSG` from `out`'s command: its single line of output.
fn result(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn lsm_abstract_unix_sockets_outside_the_agent_are_refused() {
    require_bpf_lsm();
    let dir = scratch("abstract-unix");
    let script = dir.join("abstract.py");
    write(&script, SCRIPT);
    let script = script.display().to_string();
    let agent = "abs-agent";
    let other = "abs-other";
    let open = "abs-open";
    let d = Daemon::start(&dir, &policy(agent, other, open));
    let sub = Path::new("/sys/fs/cgroup/governor-test")
        .join(agent)
        .join("listeners");

    for kind in ["stream", "dgram"] {
        // A non-agent listens on an abstract name.
        let host_name = format!("governor-test-host-{kind}");
        let mut cmd = Command::new("python3");
        cmd.args([&script, "listen", &host_name, kind]);
        let host = Listener::start(cmd);
        let host_cgroup = host.cgroup_id();

        // The agent is refused, with one event naming the socket's cgroup.
        let mark = d.mark();
        let out = d.as_agent(
            agent,
            &["python3", &script, "send", &host_name, kind, "agent"],
        );
        assert_eq!(result(&out), "EPERM", "{kind}: agent to a host socket");
        let ev: Value = d.one_since(mark, "agent to an abstract host socket", |v| {
            v["class"] == "unix-connect"
        });
        assert_eq!(ev["decision"], "deny", "{ev}");
        assert_eq!(ev["agent"], agent, "{ev}");
        assert_eq!(ev["comm"], "python3", "{ev}");
        assert_eq!(
            ev["what"],
            format!("abstract socket of cgroup id {host_cgroup}"),
            "{ev}"
        );
        assert_eq!(
            ev["protected"], "(built-in: agents may never do this)",
            "{ev}"
        );

        // A non-agent gets through; an agent allowed outside abstract sockets too.
        let out = as_host(&["python3", &script, "send", &host_name, kind, "host"]);
        assert_eq!(result(&out), "ok", "{kind}: host to a host socket");
        let mark = d.mark();
        let out = d.as_agent(
            open,
            &["python3", &script, "send", &host_name, kind, "open"],
        );
        assert_eq!(result(&out), "ok", "{kind}: {open} to a host socket");
        d.none_since(mark, "allow_outside_abstract_unix");

        // A listener the agent started in a sub-cgroup of its own is reachable from it, and
        // from a non-agent, not from another agent (unless it may reach any).
        let agent_name = format!("governor-test-agent-{kind}");
        let mut cmd = Command::new(governor_bin());
        cmd.args(["run", "--policy"])
            .arg(&d.policy)
            .args(["--agent", agent, "--", "sh", "-c"])
            .arg(format!(
                "mkdir -p '{sub}' && echo $$ > '{sub}/cgroup.procs' && exec python3 \"$@\"",
                sub = sub.display()
            ))
            .args(["sh", &script, "listen", &agent_name, kind]);
        let inside = Listener::start(cmd);
        assert_eq!(
            inside.cgroup_id(),
            std::fs::metadata(&sub).expect("sub").ino()
        );
        let mark = d.mark();
        let out = d.as_agent(
            agent,
            &["python3", &script, "send", &agent_name, kind, "self"],
        );
        assert_eq!(result(&out), "ok", "{kind}: agent to its own socket");
        let out = as_host(&["python3", &script, "send", &agent_name, kind, "host"]);
        assert_eq!(result(&out), "ok", "{kind}: host to the agent's socket");
        let out = d.as_agent(agent, &["python3", &script, "pair"]);
        assert_eq!(result(&out), "ok", "agent socketpairs");
        d.none_since(mark, "the agent's own abstract socket");
        let mark = d.mark();
        let out = d.as_agent(
            other,
            &["python3", &script, "send", &agent_name, kind, "no"],
        );
        assert_eq!(result(&out), "EPERM", "{kind}: {other} to {agent}'s socket");
        let ev = d.one_since(mark, "another agent's abstract socket", |v| {
            v["class"] == "unix-connect"
        });
        assert_eq!(ev["agent"], other, "{ev}");
        assert_eq!(
            ev["what"],
            format!("abstract socket of cgroup id {}", inside.cgroup_id()),
            "{ev}"
        );
        let mark = d.mark();
        let out = d.as_agent(
            open,
            &["python3", &script, "send", &agent_name, kind, "other"],
        );
        assert_eq!(
            result(&out),
            "ok",
            "{kind}: {open} may reach any abstract socket"
        );
        d.none_since(mark, "allow_outside_abstract_unix to another agent");

        // What arrived: nothing from the refused agent.
        assert_eq!(host.stop(), ["host", "open"], "{kind}: host listener");
        assert_eq!(
            inside.stop(),
            ["self", "host", "other"],
            "{kind}: agent listener"
        );
    }
    let _ = std::fs::remove_dir(&sub);
}
