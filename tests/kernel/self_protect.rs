//! Self-protection: governor's own directories (state, config, runtime with the admin socket,
//! bpffs pins) are off limits to agents whatever the policy says, agents cannot connect to
//! the admin socket (the kernel refuses with unix-connect; the daemon refuses observe-mode
//! agents and unlisted uids itself), and `governor status` reports counters that move.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::{UnixDatagram, UnixListener, UnixStream},
    path::Path,
    process::{Command, Output},
};

use governor_kernel_tests::{
    as_host, as_host_user, assert_eperm, assert_ok, governor_bin, policy, require_bpf_lsm, scratch,
    write, Daemon, TEST_CONFIG_DIR,
};
use serde_json::Value;

const STATE: &str = "/var/lib/governor";
const RUNTIME: &str = "/run/governor";
const BPFFS: &str = "/sys/fs/bpf/governor";
const SOCKET: &str = "/run/governor/governor.sock";

/// Python: connect a unix stream socket to argv[1].
const PY_CONNECT: &str =
    "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')";
/// Python: a status request on the stream socket inherited as descriptor 3, and its reply.
const PY_SEND_ON_3: &str = "import socket; s = socket.socket(fileno=3); \
s.sendall(b'{\"version\":1,\"command\":\"status\"}\\n'); print(s.recv(4096))";
/// Python: send one datagram to the unix socket argv[1].
const PY_SENDTO: &str = "import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); \
s.sendto(b'hello', sys.argv[1]); print('sent')";

fn is_self(v: &Value) -> bool {
    v["protected"]
        .as_str()
        .is_some_and(|s| s.starts_with("(governor's own: "))
}

/// Runs `cmd` as the agent; asserts EPERM and one deny event of `class` against governor's
/// own directories naming `name`.
fn denied(d: &Daemon, agent: &str, class: &str, name: &str, cmd: &[&str]) {
    let mark = d.mark();
    let out = d.as_agent(agent, cmd);
    assert_eperm(&out, &format!("{class}: {cmd:?}"));
    // A directory that is a mount's root is named `/` (its dentry's name): its path says
    // which it is.
    let tail = format!("/{name}");
    let ev = d.wait_decision_after(mark, &format!("{class} {name} for {cmd:?}"), |v| {
        v["class"] == class
            && v["decision"] == "deny"
            && (v["name"] == name || v["path"].as_str().is_some_and(|p| p.ends_with(&tail)))
    });
    assert!(is_self(&ev), "{cmd:?}: {ev}");
    assert_eq!(ev["agent"], agent);
}

/// Python: set the immutable flag on descriptor 3 (FS_IOC_GETFLAGS, then FS_IOC_SETFLAGS).
const CHATTR_I: &str = "import array, fcntl\n\
     flags = array.array('l', [0])\n\
     fcntl.ioctl(3, 0x80086601, flags)\n\
     flags[0] |= 0x10\n\
     fcntl.ioctl(3, 0x40086602, flags)\n";

/// Agent `agent` runs Python `script` on descriptor 3, `file` opened for reading by the host
/// and handed over: refused, one deny of `class` by governor's own rule.
fn handed(d: &Daemon, agent: &str, class: &str, file: &str, script: &str) {
    let mark = d.mark();
    let out = d.as_agent_after(agent, &format!("exec 3<{file}"), &["python3", "-c", script]);
    assert_eperm(&out, &format!("agent {class} through a handed descriptor"));
    let ev = d.one_since(mark, &format!("{class} through a handed descriptor"), |v| {
        v["class"] == class && v["decision"] == "deny"
    });
    assert!(is_self(&ev), "{ev}");
}

/// `governor status` with `args`, run by `run` (host, agent, other uid).
fn status_cmd(args: &[&str]) -> Vec<String> {
    let mut cmd = vec![governor_bin().display().to_string(), "status".to_owned()];
    cmd.extend(args.iter().map(|s| (*s).to_owned()));
    cmd
}

/// The host's `governor status --json`, parsed.
fn status_json() -> Value {
    let out = Command::new(governor_bin())
        .args(["status", "--json"])
        .output()
        .expect("governor status");
    assert_ok(&out, "host governor status --json");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn lsm_own_dirs_are_off_limits_to_agents() {
    require_bpf_lsm();
    let dir = scratch("self-dirs");
    write(&dir.join("prod/x"), "x");
    let a = "agent-self";
    let d = Daemon::start(&dir, &policy(a, "enforce", &dir.join("prod")));
    // The daemon created what was missing; the host puts something in each.
    let files = [
        format!("{STATE}/state.db"),
        format!("{TEST_CONFIG_DIR}/keys.pub"),
        format!("{RUNTIME}/pidfile"),
    ];
    for f in &files {
        write(Path::new(f), "governor's");
    }
    let pin = format!("{BPFFS}/test-pins");
    let _ = std::fs::remove_dir(&pin);
    assert_ok(&as_host(&["mkdir", &pin]), "host mkdir in the bpffs dir");

    for f in &files {
        let parent = Path::new(f).parent().expect("parent").display().to_string();
        let name = Path::new(f)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        denied(&d, a, "unlink", name, &["rm", "-f", f]);
        denied(&d, a, "rename", name, &["mv", f, &format!("{f}.moved")]);
        denied(
            &d,
            a,
            "write",
            name,
            &["sh", "-c", &format!("echo agent >> {f}")],
        );
        denied(&d, a, "chmod", name, &["chmod", "600", f]);
        // Not even reading: no listing, no opening, no lock that would stall the daemon.
        denied(&d, a, "read", name, &["cat", f]);
        let dir_name = Path::new(&parent)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        denied(&d, a, "read", dir_name, &["ls", &parent]);
        denied(&d, a, "write", "new", &["touch", &format!("{parent}/new")]);
        // The remaining classes once (they take the same walk in every directory).
        if parent == STATE {
            denied(&d, a, "chown", name, &["chown", "65534", f]);
            denied(
                &d,
                a,
                "truncate",
                name,
                &[
                    "python3",
                    "-c",
                    &format!("import os; os.truncate({f:?}, 0)"),
                ],
            );
            denied(
                &d,
                a,
                "write",
                "new-dir",
                &["mkdir", &format!("{parent}/new-dir")],
            );
            denied(&d, a, "link", name, &["ln", f, &format!("{f}.link")]);
            // Inode flags (+i on the lease store, +a on the lineage database would break
            // the daemon) and timestamps.
            // `chattr` itself would be refused its open, as a read: the flags are set here
            // through a descriptor a non-agent opened and handed over.
            handed(&d, a, "chattr", f, CHATTR_I);
            denied(
                &d,
                a,
                "utimes",
                name,
                &[
                    "python3",
                    "-c",
                    &format!("import os; os.utime({f:?}, (946684800, 946684800))"),
                ],
            );
            // A handed descriptor gets no lock either.
            handed(
                &d,
                a,
                "read",
                f,
                "import fcntl; fcntl.flock(3, fcntl.LOCK_EX)",
            );
        }
        assert_eq!(
            std::fs::read_to_string(f).expect("still there"),
            "governor's",
            "{f}"
        );
        assert!(!Path::new(&format!("{parent}/new")).exists());
        // The directory itself cannot be removed or moved away.
        let base = Path::new(&parent)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        // rm cannot even list the directory (read is denied); the VM's state dir is a
        // mountpoint on a read-only /var, so removing it fails with EROFS there.
        let out = d.as_agent(a, &["rm", "-rf", &parent]);
        if parent == STATE {
            assert!(!out.status.success(), "rm -rf {parent} must fail");
        } else {
            assert_eperm(&out, &format!("rm -rf {parent}"));
        }
        // (The VM mounts a tmpfs on /var/lib/governor: a mountpoint cannot be renamed anyway.)
        if parent != STATE {
            denied(
                &d,
                a,
                "rename",
                base,
                &["mv", &parent, &format!("{parent}.moved")],
            );
        }
        assert!(
            Path::new(f).exists(),
            "{f} survives rm -rf of its directory"
        );
    }
    // The admin socket file itself.
    denied(&d, a, "unlink", "governor.sock", &["rm", "-f", SOCKET]);
    assert!(Path::new(SOCKET).exists());

    // bpffs: no removing, renaming or adding pins or directories.
    denied(&d, a, "rmdir", "test-pins", &["rmdir", &pin]);
    denied(
        &d,
        a,
        "rename",
        "test-pins",
        &["mv", &pin, &format!("{pin}2")],
    );
    denied(
        &d,
        a,
        "write",
        "new-dir",
        &["mkdir", &format!("{BPFFS}/new-dir")],
    );
    denied(&d, a, "chmod", "test-pins", &["chmod", "777", &pin]);
    assert!(Path::new(&pin).is_dir());

    // Moving an ancestor would move the (test) config directory.
    denied(
        &d,
        a,
        "rename",
        "governor-test",
        &["mv", "/tmp/governor-test", "/tmp/governor-test-moved"],
    );
    assert!(Path::new(TEST_CONFIG_DIR).is_dir());

    // A process outside agent cgroups is unaffected.
    let host_file = format!("{STATE}/host-ok");
    assert_ok(
        &as_host(&["touch", &host_file]),
        "host touch in the state dir",
    );
    assert_ok(&as_host(&["rm", &host_file]), "host rm in the state dir");
    assert_ok(&as_host(&["rmdir", &pin]), "host rmdir in the bpffs dir");
    for f in &files {
        assert_ok(&as_host(&["rm", f]), "host rm");
    }
    drop(d);
    assert!(
        !Path::new(SOCKET).exists(),
        "the daemon removes its socket when it stops"
    );
}

#[test]
fn lsm_admin_socket_refuses_agents_and_serves_admins() {
    require_bpf_lsm();
    let dir = scratch("self-socket");
    write(&dir.join("prod/db"), "precious");
    std::fs::create_dir_all(dir.join("free")).expect("mkdir");
    let a = "agent-sock";
    let d = Daemon::start(&dir, &policy(a, "enforce", &dir.join("prod")));

    // A non-agent root gets a status reply describing this daemon.
    let s = status_json();
    assert_eq!(s["daemon"]["pid"], d.pid(), "{s}");
    assert_eq!(s["policy"]["name"], format!("test-{a}"), "{s}");
    assert_eq!(s["policy"]["owner"], "kernel-tests@example.com", "{s}");
    assert_eq!(s["agents"][0]["name"], a, "{s}");
    assert_eq!(
        s["agents"][0]["cgroup"],
        format!("governor-test/{a}"),
        "{s}"
    );
    assert_eq!(s["agents"][0]["mode"], "enforce", "{s}");
    assert_eq!(s["kernel"]["mode"], "full", "{s}");
    let enforced: Vec<&str> = s["kernel"]["enforced"]
        .as_array()
        .expect("enforced")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        enforced.contains(&"unix-connect") && enforced.contains(&"unlink"),
        "{s}"
    );
    assert_eq!(s["kernel"]["not_enforced"], serde_json::json!([]), "{s}");
    for own in [STATE, TEST_CONFIG_DIR, RUNTIME, BPFFS] {
        assert!(
            s["own_dirs"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x == own)),
            "{own} in {s}"
        );
    }
    let table = as_host(
        &status_cmd(&[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_ok(&table, "host governor status");
    let text = String::from_utf8_lossy(&table.stdout);
    for want in [
        "daemon",
        "full mode",
        a,
        "denied",
        "kernel events dropped",
        "events received",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }

    // The agent (root) cannot connect: EPERM from connect(2), one unix-connect event.
    let mark = d.mark();
    let out = d.as_agent(a, &["python3", "-c", PY_CONNECT, SOCKET]);
    assert_eperm(&out, "agent connect to the admin socket");
    let ev = d.one_since(mark, "agent connect to the admin socket", |v| {
        v["class"] == "unix-connect" && v["decision"] == "deny"
    });
    assert_eq!(ev["name"], "governor.sock", "{ev}");
    assert!(is_self(&ev), "{ev}");
    assert_eq!(ev["uid"], 0, "{ev}");
    // A connection a non-agent made and handed over (inherited as descriptor 3) is useless
    // to the agent: every send on it is decided as a connect.
    let mark = d.mark();
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, socket, sys\n\
             s = socket.socket(socket.AF_UNIX)\n\
             s.connect(sys.argv[1])\n\
             fd = s.detach()\n\
             if fd != 3:\n\
             \x20   os.dup2(fd, 3)\n\
             os.set_inheritable(3, True)\n\
             os.execvp(sys.argv[2], sys.argv[2:])\n",
            SOCKET,
        ])
        .arg(governor_bin())
        .arg("run")
        .arg("--policy")
        .arg(&d.policy)
        .args(["--agent", a, "--", "python3", "-c", PY_SEND_ON_3])
        .output()
        .expect("spawn a host process handing a connection over");
    assert_eperm(&out, "agent sends on a handed admin connection");
    let ev = d.one_since(mark, "send on a handed admin connection", |v| {
        v["class"] == "unix-connect" && v["decision"] == "deny"
    });
    assert!(is_self(&ev), "{ev}");
    assert_eq!(ev["name"], "governor.sock", "{ev}");
    // ...and `governor status` from the agent cgroup fails with a clear error.
    let out = d.as_agent(a, &["governor", "status"]);
    assert!(!out.status.success(), "agent governor status must fail");
    assert!(
        stderr(&out).contains("permission denied connecting to"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("agent cgroups may never connect"),
        "{}",
        stderr(&out)
    );

    // Counters move: a denied rm shows up in status.
    let before = status_json();
    let out = d.as_agent(a, &["rm", &dir.join("prod/db").display().to_string()]);
    assert_eperm(&out, "agent rm prod/db");
    d.wait_decision("deny unlink db", |v| {
        v["name"] == "db" && v["class"] == "unlink"
    });
    let after = status_json();
    let n = |v: &Value, part: &str, k: &str| {
        v[part][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{part}.{k} in {v}"))
    };
    assert!(
        n(&after, "counters", "denied") > n(&before, "counters", "denied"),
        "{before}\n{after}"
    );
    assert!(
        n(&after, "events", "received") > n(&before, "events", "received"),
        "{before}\n{after}"
    );
    assert!(n(&after, "daemon", "uptime_secs") >= n(&before, "daemon", "uptime_secs"));
    for k in [
        "observed",
        "unresolved",
        "kernel_events_dropped",
        "lease_allowed",
        "lease_expired",
    ] {
        n(&after, "counters", k);
    }
    for k in ["malformed", "overflowed"] {
        assert_eq!(n(&after, "events", k), 0, "{after}");
    }

    // Datagram sockets in governor's runtime dir: sends are refused (unix_may_send); a
    // datagram socket elsewhere is not.
    let guarded = format!("{RUNTIME}/test-dgram.sock");
    let _ = std::fs::remove_file(&guarded);
    let guarded_sock = UnixDatagram::bind(&guarded).expect("bind a datagram socket");
    let free = dir.join("free/dgram.sock");
    let free_sock = UnixDatagram::bind(&free).expect("bind a datagram socket");
    let mark = d.mark();
    let out = d.as_agent(a, &["python3", "-c", PY_SENDTO, &guarded]);
    assert_eperm(&out, "agent sendto a datagram socket in the runtime dir");
    let ev = d.one_since(mark, "agent sendto in the runtime dir", |v| {
        v["class"] == "unix-connect" && v["name"] == "test-dgram.sock"
    });
    assert!(is_self(&ev), "{ev}");
    let out = d.as_agent(
        a,
        &["python3", "-c", PY_SENDTO, &free.display().to_string()],
    );
    assert_ok(&out, "agent sendto a datagram socket elsewhere");
    let mut buf = [0u8; 16];
    let n_read = free_sock.recv(&mut buf).expect("datagram arrives");
    assert_eq!(&buf[..n_read], b"hello");
    drop(guarded_sock);
    let _ = std::fs::remove_file(&guarded);

    // The protocol over the real socket: a malformed line gets an error reply, and the
    // connection still answers a good request afterwards.
    let mut conn = UnixStream::connect(SOCKET).expect("host connects");
    conn.write_all(b"not json\n{\"version\":1,\"command\":\"status\"}\n")
        .expect("write");
    let mut lines = BufReader::new(&conn).lines();
    let first: Value =
        serde_json::from_str(&lines.next().expect("a reply").expect("read")).expect("JSON reply");
    assert_eq!(first["ok"], false, "{first}");
    assert_eq!(first["error"]["code"], "malformed", "{first}");
    let second: Value =
        serde_json::from_str(&lines.next().expect("a reply").expect("read")).expect("JSON reply");
    assert_eq!(second["ok"], true, "{second}");
    assert_eq!(second["result"]["daemon"]["pid"], d.pid(), "{second}");

    // A second daemon refuses to start while this one listens.
    let out = Command::new(governor_bin())
        .args(["daemon", "--config-dir", TEST_CONFIG_DIR, "--policy"])
        .arg(&d.policy)
        .output()
        .expect("spawn a second daemon");
    assert!(!out.status.success(), "a second daemon must refuse");
    assert!(
        stderr(&out).contains("already listening on /run/governor/governor.sock"),
        "{}",
        stderr(&out)
    );
    // The first still answers.
    assert_eq!(status_json()["daemon"]["pid"], d.pid());

    drop(d);
    let out = Command::new(governor_bin())
        .arg("status")
        .output()
        .expect("status");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the governor daemon is not running"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn lsm_admin_socket_peer_checks_and_protected_sockets() {
    require_bpf_lsm();
    let dir = scratch("self-peer");
    let sockets = dir.join("sockets");
    std::fs::create_dir_all(&sockets).expect("mkdir");
    let text = format!(
        r#"
[policy]
name = "test-peer"
owner = "kernel-tests@example.com"

[[agents]]
name = "agent-obs"
cgroup = "governor-test/agent-obs"
mode = "observe"

[[agents]]
name = "agent-enf"
cgroup = "governor-test/agent-enf"
mode = "enforce"

[[protect]]
path = "{}"
deny = ["unix-connect"]
allow = ["delete", "rename", "truncate"]
"#,
        sockets.display()
    );
    let d = Daemon::start_with(&dir, &text, &["--admin-uid", "4242"]);

    // An observe-mode agent: the kernel records a would-be deny and lets the connect through;
    // the daemon's own peer check refuses it.
    let mark = d.mark();
    let out = d.as_agent("agent-obs", &["governor", "status"]);
    assert!(!out.status.success(), "observe agent's status must fail");
    assert!(stderr(&out).contains("Forbidden"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("agents may never use the admin socket"),
        "{}",
        stderr(&out)
    );
    let ev = d.wait_decision_after(mark, "observe-deny unix-connect", |v| {
        v["class"] == "unix-connect" && v["decision"] == "observe-deny"
    });
    assert_eq!(ev["agent"], "agent-obs", "{ev}");
    assert!(
        d.logged()
            .iter()
            .any(|v| v["message"] == "admin socket: peer refused"
                && v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("agent `agent-obs`"))),
        "the daemon logs the refused peer"
    );

    // uids: a listed one is served, another is refused.
    let cmd = status_cmd(&[]);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = as_host_user(4242, 4242, &cmd);
    assert_ok(&out, "uid 4242 (--admin-uid) governor status");
    let out = as_host_user(4343, 4343, &cmd);
    assert!(!out.status.success(), "uid 4343 must be refused");
    assert!(
        stderr(&out).contains("uid 4343 may not use the admin socket"),
        "{}",
        stderr(&out)
    );

    // `[[protect]]` with unix-connect guards any socket below the path.
    let app = sockets.join("app.sock");
    let listener = UnixListener::bind(&app).expect("bind app.sock");
    let app = app.display().to_string();
    let mark = d.mark();
    let out = d.as_agent("agent-enf", &["python3", "-c", PY_CONNECT, &app]);
    assert_eperm(&out, "agent connect to a protected socket");
    let ev = d.one_since(mark, "connect to app.sock", |v| {
        v["class"] == "unix-connect" && v["name"] == "app.sock"
    });
    assert_eq!(ev["protected"], sockets.display().to_string(), "{ev}");
    // Only unix-connect is denied there: files can still be made.
    let out = d.as_agent(
        "agent-enf",
        &["touch", &sockets.join("file").display().to_string()],
    );
    assert_ok(&out, "agent touch in a unix-connect-only tree");
    // A non-agent connects.
    let out = as_host(&["python3", "-c", PY_CONNECT, &app]);
    assert_ok(&out, "host connect to app.sock");
    drop(listener);
}
