//! Nothing an agent does reaches past governor through the kernel or another task: the
//! kernel's tunables and helpers (`core_pattern`, `drop_caches`, sysrq, sysfs attributes,
//! binfmt_misc), also through a descriptor a non-agent handed over; the clock; how tasks
//! outside the agent run (nice, scheduler, I/O priority, resource limits: `RLIMIT_CPU` on the
//! daemon would have the kernel kill it); reading another task's secrets through procfs; raw
//! and packet sockets. For each: the agent gets EPERM, nothing changes, one event is
//! recorded, and a non-agent doing the same succeeds.

use std::{
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output},
};

use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, kernel_module, load_module, require_bpf_lsm, scratch, Daemon,
};
use serde_json::Value;

/// `Daemon::refused`, by a built-in rule.
fn refused(d: &Daemon, agent: &str, setup: &str, cmd: &[&str], class: &str) -> Value {
    let ev = d.refused(agent, setup, cmd, class);
    assert_eq!(
        ev["protected"], "(built-in: agents may never do this)",
        "{ev}"
    );
    ev
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `sleep` outside every agent, killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn new() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("600")
                .env("SLEEPER_SECRET", "hunter2")
                .spawn()
                .expect("spawn sleep"),
        )
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    /// Field `n` (1-based) of `/proc/PID/stat` (after the command name).
    fn stat(&self, n: usize) -> String {
        let stat = read(&format!("/proc/{}/stat", self.pid()));
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        after.split_whitespace().nth(n - 3).unwrap_or("").to_owned()
    }

    fn limits(&self) -> String {
        read(&format!("/proc/{}/limits", self.pid()))
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const POLICY: &str = r#"
[policy]
name = "test-no-way-out"
owner = "kernel-tests@example.com"

[[agents]]
name = "agent-out"
cgroup = "governor-test/agent-out"
mode = "enforce"

[[agents]]
name = "agent-raw"
cgroup = "governor-test/agent-raw"
mode = "enforce"
allow_raw_sockets = true
"#;

/// The control planes `policies/default.toml` keeps agents away from (its `optional`
/// `[[protect]]` entries denying unix-connect), as `[[protect]]` text, and the socket to
/// listen on for each: the path itself, or a socket inside it when it is a directory.
fn control_planes() -> (String, Vec<PathBuf>) {
    let text =
        std::fs::read_to_string("policies/default.toml").expect("read policies/default.toml");
    let policy: toml::Table = text.parse().expect("policies/default.toml is TOML");
    let mut entries = String::new();
    let mut sockets = Vec::new();
    for entry in policy["protect"].as_array().expect("[[protect]] entries") {
        let denies_connect = entry
            .get("deny")
            .and_then(toml::Value::as_array)
            .is_some_and(|d| d.iter().any(|c| c.as_str() == Some("unix-connect")));
        if entry.get("optional").and_then(toml::Value::as_bool) != Some(true) || !denies_connect {
            continue;
        }
        let path = entry["path"].as_str().expect("path");
        entries += &format!(
            "\n[[protect]]\npath = {path:?}\noptional = true\ndeny = [\"unix-connect\"]\n"
        );
        // Sockets have a name with a dot or end in `private`/`_socket`; the rest are directories.
        let is_dir =
            !path.ends_with(".sock") && !path.ends_with("private") && !path.ends_with("_socket");
        sockets.push(if is_dir {
            PathBuf::from(path).join("api.sock")
        } else {
            PathBuf::from(path)
        });
    }
    (entries, sockets)
}

/// Python: connect a unix stream socket to argv[1].
const CONNECT: &str = "import socket, sys\n\
     s = socket.socket(socket.AF_UNIX)\n\
     s.connect(sys.argv[1])\n";

/// Python: set the clock to what it reads now (nothing changes if it goes through).
const SETTIME: &str = "import time\ntime.clock_settime(time.CLOCK_REALTIME, time.time())\n";

/// Python: a socket of family argv[1] and type argv[2] (protocol argv[3]).
const SOCKET: &str = "import socket, sys\n\
     s = socket.socket(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))\n\
     print('made')\n";

/// Python: write argv[2] to the file argv[1] (one write(2), no shell redirection).
const WRITE_TO: &str = "import os, sys\n\
     fd = os.open(sys.argv[1], os.O_WRONLY)\n\
     os.write(fd, sys.argv[2].encode())\n";

#[test]
fn lsm_the_kernel_and_other_tasks_are_out_of_reach() {
    require_bpf_lsm();
    let dir = scratch("no-way-out");
    let a = "agent-out";
    // Deputies that would run a command outside the agent: a listener on each control-plane
    // path the shipped default policy names (this VM runs no systemd, Docker or cron).
    let (planes, sockets) = control_planes();
    assert!(
        sockets.len() >= 8,
        "the default policy names the control planes: {sockets:?}"
    );
    let mut listeners = Vec::new();
    for s in &sockets {
        std::fs::create_dir_all(s.parent().expect("parent")).expect("mkdir for a socket");
        let _ = std::fs::remove_file(s);
        listeners
            .push(UnixListener::bind(s).unwrap_or_else(|e| panic!("bind {}: {e}", s.display())));
    }
    let d = Daemon::start(&dir, &format!("{POLICY}{planes}"));
    for s in &sockets {
        let path = s.display().to_string();
        let mark = d.mark();
        let out = d.as_agent(a, &["python3", "-c", CONNECT, &path]);
        assert_eperm(&out, &format!("agent connects to {path}"));
        let ev = d.one_since(mark, &format!("connect to {path}"), |v| {
            v["class"] == "unix-connect" && v["decision"] == "deny"
        });
        assert_eq!(ev["path"], path, "{ev}");
        assert_ok(
            &as_host(&["python3", "-c", CONNECT, &path]),
            &format!("host connects to {path}"),
        );
    }
    let daemon = d.pid().to_string();

    // Kernel tunables whose helpers the kernel runs as root outside every cgroup, and other
    // procfs and sysfs files of no task.
    let core_pattern = read("/proc/sys/kernel/core_pattern");
    let ev = refused(
        &d,
        a,
        "",
        &[
            "python3",
            "-c",
            WRITE_TO,
            "/proc/sys/kernel/core_pattern",
            "|/bin/false %p",
        ],
        "kernel-tunable",
    );
    assert_eq!(ev["what"], "procfs", "{ev}");
    assert_eq!(ev["name"], "core_pattern", "{ev}");
    assert_eq!(read("/proc/sys/kernel/core_pattern"), core_pattern);
    // The whole chain: set a pipe pattern naming a helper, then crash. The pattern stays as
    // it was, so the kernel never runs the helper as root outside every cgroup.
    let marker = dir.join("the-helper-would-remove-this");
    std::fs::write(&marker, "x").expect("write marker");
    let mark = d.mark();
    let out = d.as_agent(
        a,
        &[
            "sh",
            "-c",
            &format!(
                "ulimit -c 0; echo '|/bin/rm -f {}' > /proc/sys/kernel/core_pattern; \
                 python3 -c 'import os, signal; os.kill(os.getpid(), signal.SIGSEGV)'; true",
                marker.display()
            ),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );
    d.one_since(mark, "core_pattern in the crash chain", |v| {
        v["class"] == "kernel-tunable" && v["decision"] == "deny"
    });
    assert_eq!(read("/proc/sys/kernel/core_pattern"), core_pattern);
    assert!(marker.exists(), "the core_pattern helper ran");
    for (file, value) in [
        ("/proc/sys/kernel/modprobe", "/bin/false"),
        ("/proc/sys/kernel/usermodehelper/bset", "0 0"),
        ("/proc/sys/vm/drop_caches", "1"),
        ("/proc/sysrq-trigger", "h"),
    ] {
        refused(
            &d,
            a,
            "",
            &["python3", "-c", WRITE_TO, file, value],
            "kernel-tunable",
        );
    }
    let ev = refused(
        &d,
        a,
        "",
        &[
            "python3",
            "-c",
            WRITE_TO,
            "/sys/kernel/mm/transparent_hugepage/defrag",
            "never",
        ],
        "kernel-tunable",
    );
    assert_eq!(ev["what"], "sysfs", "{ev}");
    // binfmt_misc: registering an interpreter the kernel would run for any matching file.
    let binfmt = "/proc/sys/fs/binfmt_misc";
    let mounted_binfmt = !Path::new(&format!("{binfmt}/register")).exists();
    if mounted_binfmt {
        // A module on the Debian kernels; the guest has no modprobe tree to load it from.
        load_module(&kernel_module(&dir, "kernel/fs/binfmt_misc.ko"), "");
        assert_ok(
            &as_host(&["mount", "-t", "binfmt_misc", "binfmt_misc", binfmt]),
            "host mounts binfmt_misc",
        );
    }
    let ev = refused(
        &d,
        a,
        "",
        &[
            "python3",
            "-c",
            WRITE_TO,
            &format!("{binfmt}/register"),
            ":governor-test:E::gvt::/bin/false:",
        ],
        "kernel-tunable",
    );
    assert_eq!(ev["what"], "binfmt_misc", "{ev}");
    assert!(!Path::new(&format!("{binfmt}/governor-test")).exists());
    // A descriptor a non-agent opened for writing: decided at the agent's write.
    refused(
        &d,
        a,
        "exec 3>/proc/sys/kernel/core_pattern",
        &["python3", "-c", "import os; os.write(3, b'|/bin/false')"],
        "kernel-tunable",
    );
    assert_eq!(read("/proc/sys/kernel/core_pattern"), core_pattern);

    // The clock.
    refused(&d, a, "", &["python3", "-c", SETTIME], "settime");

    // Tasks outside the agent: the daemon and a host process.
    let sleeper = Sleeper::new();
    let pid = sleeper.pid();
    let (nice, policy_field) = (sleeper.stat(19), sleeper.stat(41));
    let limits = sleeper.limits();
    let ev = refused(
        &d,
        a,
        "",
        &["prlimit", "--pid", &daemon, "--cpu=1:1"],
        "task-control",
    );
    assert_eq!(ev["what"], "prlimit RLIMIT_CPU", "{ev}");
    assert_eq!(ev["target_pid"], d.pid(), "{ev}");
    for (cmd, what) in [
        (
            vec!["prlimit", "--pid", &pid, "--nofile=16:16"],
            "prlimit RLIMIT_NOFILE",
        ),
        (vec!["renice", "-n", "19", "-p", &pid], "setpriority"),
        (vec!["chrt", "-i", "-p", "0", &pid], "sched_setscheduler"),
        (vec!["ionice", "-c", "3", "-p", &pid], "ioprio_set"),
    ] {
        let ev = refused(&d, a, "", &cmd, "task-control");
        assert_eq!(ev["what"], what, "{ev}");
    }
    assert_eq!((sleeper.stat(19), sleeper.stat(41)), (nice, policy_field));
    assert_eq!(sleeper.limits(), limits);
    // Its own tasks are the agent's to tune.
    let mark = d.mark();
    let out = d.as_agent(
        a,
        &[
            "sh",
            "-c",
            "sleep 30 & renice -n 5 -p $! && prlimit --pid $! --nofile=16:16; kill $!",
        ],
    );
    assert_ok(&out, "agent tunes its own child");
    d.none_since(mark, "tuning its own task");

    // Another task's secrets through procfs (ptrace read mode): the daemon's environment,
    // a host process's. Listing processes still works.
    // (procfs answers EACCES for a refused access check.)
    for target in [&daemon, &pid] {
        let mark = d.mark();
        let out = d.as_agent(a, &["cat", &format!("/proc/{target}/environ")]);
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "agent reads /proc/{target}/environ: {out:?}"
        );
        let ev = d.one_since(mark, "environ", |v| v["class"] == "ptrace");
        assert_eq!(ev["what"], "mode 0x9: read fscreds", "{ev}");
        assert_eq!(ev["decision"], "deny", "{ev}");
    }
    let mark = d.mark();
    // Listing processes still works: what `ps` asks with an audited read check of a task
    // outside the agent is refused and recorded (its output does not need it), nothing else.
    let out = d.as_agent(a, &["ps", "-e"]);
    assert_ok(&out, "agent ps -e");
    assert!(stdout(&out).contains("sleep"), "{}", stdout(&out));
    let since: Vec<_> = d.decisions().into_iter().skip(mark).collect();
    assert!(
        since
            .iter()
            .all(|v| v["class"] == "ptrace" && v["what"] == "mode 0x9: read fscreds"),
        "{since:#?}"
    );

    // Raw and packet sockets send around every network rule.
    for (family, ty, proto, what) in [
        ("17", "3", "0", "AF_PACKET SOCK_RAW"),
        ("2", "3", "1", "AF_INET SOCK_RAW"),
    ] {
        let ev = refused(
            &d,
            a,
            "",
            &["python3", "-c", SOCKET, family, ty, proto],
            "raw-socket",
        );
        assert_eq!(ev["what"], what, "{ev}");
    }
    // ...unless the policy allows them for the agent.
    let mark = d.mark();
    let out = d.as_agent("agent-raw", &["python3", "-c", SOCKET, "17", "3", "0"]);
    assert_ok(&out, "agent with allow_raw_sockets makes a packet socket");
    // An ordinary socket is nobody's business.
    let out = d.as_agent(a, &["python3", "-c", SOCKET, "2", "2", "0"]);
    assert_ok(&out, "agent UDP socket");

    // A non-agent does all of it.
    assert_ok(
        &as_host(&[
            "python3",
            "-c",
            WRITE_TO,
            "/proc/sys/kernel/core_pattern",
            &core_pattern,
        ]),
        "host writes core_pattern",
    );
    assert_ok(&as_host(&["python3", "-c", SETTIME]), "host sets the clock");
    assert_ok(&as_host(&["renice", "-n", "1", "-p", &pid]), "host renice");
    assert_ok(
        &as_host(&["cat", &format!("/proc/{pid}/environ")]),
        "host reads environ",
    );
    assert_ok(
        &as_host(&["python3", "-c", SOCKET, "17", "3", "0"]),
        "host packet socket",
    );
    d.none_since(mark, "the host's operations and allowed ones");
    drop(d);
    drop(listeners);
    for s in &sockets {
        let _ = std::fs::remove_file(s);
    }
    if mounted_binfmt {
        let _ = as_host(&["umount", binfmt]);
    }
}
