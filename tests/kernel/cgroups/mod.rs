//! Agent cgroup subtrees: cgroups an agent (or anyone) creates below an agent cgroup are the
//! agent's, whether made before or after the daemon started, at any depth; and an agent cannot
//! move a task into a cgroup outside its agent, by writing `cgroup.procs`/`cgroup.threads`
//! (opened itself or received) or by `clone3(CLONE_INTO_CGROUP)`; nor control cgroups that
//! are not its own, through files it opens or descriptors it is handed (procfs files of host
//! tasks too); nor write anything in a cgroup v1 hierarchy the host mounted.
//!
//! This file holds what the tests share: the probe programs that move tasks and act on
//! cgroups, and the helpers to read their output and the decisions. One file a subject:
//! `subtrees` (sub-cgroups are the agent), `moves` (no task moves out), `control` (no control
//! of other cgroups), `handed` (not through handed descriptors either), `v1` (cgroup v1).
//!
//! May import the test library (`governor_kernel_tests`); the kernel tests' folders import
//! nothing from each other.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, governor_bin, policy, require_bpf_lsm, run_in_cgroup,
    scratch, spawn_in_cgroup, write, Daemon,
};
use serde_json::Value;

mod control;
mod handed;
mod moves;
mod subtrees;
mod v1;

const CGROUP2: &str = "/sys/fs/cgroup";

/// Moves the running process by writing its pid to each argument: a path (opened for write
/// here) or `fd:N` (a descriptor it was given). Prints, per argument, the argument, the
/// outcome (`ok`, `open EPERM`, `write EPERM`, ...) and the process's cgroup afterwards.
const MOVE: &str = r#"
import errno, os, sys
def cgroup():
    return open("/proc/self/cgroup").read().strip().split("::", 1)[1]
def move(arg):
    pid = str(os.getpid()).encode()
    if arg.startswith("fd:"):
        fd = int(arg[3:])
    else:
        try:
            fd = os.open(arg, os.O_WRONLY)
        except OSError as e:
            return "open " + errno.errorcode[e.errno]
    try:
        os.write(fd, pid)
    except OSError as e:
        return "write " + errno.errorcode[e.errno]
    return "ok"
for arg in sys.argv[1:]:
    print(arg, move(arg), cgroup(), flush=True)
"#;

/// clone3(CLONE_INTO_CGROUP) into each argument (a cgroup directory). Prints the target and
/// `ok <the child's cgroup>` or `err <errno name>`.
const CLONE3: &str = r#"
import ctypes, errno, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_clone3, CLONE_INTO_CGROUP, SIGCHLD = 435, 0x200000000, 17
for target in sys.argv[1:]:
    dfd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    # struct clone_args (CLONE_ARGS_SIZE_VER2): flags, pidfd, child_tid, parent_tid,
    # exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup
    raw = struct.pack("11Q", CLONE_INTO_CGROUP, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, dfd)
    args = ctypes.create_string_buffer(raw, len(raw))
    r, w = os.pipe()
    pid = libc.syscall(SYS_clone3, args, ctypes.c_size_t(len(raw)))
    if pid == 0:
        os.write(w, open("/proc/self/cgroup").read().strip().split("::", 1)[1].encode())
        os._exit(0)
    os.close(w)
    if pid < 0:
        print(target, "err", errno.errorcode[ctypes.get_errno()], flush=True)
    else:
        child = os.read(r, 4096).decode()
        os.waitpid(pid, 0)
        print(target, "ok", child, flush=True)
    os.close(r)
    os.close(dfd)
"#;

/// The cgroup directory of `rel` (relative to the cgroup v2 mount).
fn cg(rel: &str) -> PathBuf {
    Path::new(CGROUP2).join(rel)
}

/// A cgroup's id: its directory's inode number.
fn id(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

/// Removes cgroup directories, deepest first (they are empty once their processes exited).
fn remove(dirs: &[&Path]) {
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}

/// stdout as lines of words, checking that the script itself ran to the end.
fn lines(out: &Output, what: &str, n: usize) -> Vec<Vec<String>> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Vec<Vec<String>> = stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert!(
        out.status.success() && v.len() == n,
        "{what}: {} stdout={stdout:?} stderr={:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// The one cgroup-escape event logged after `mark` whose `what` names cgroup `id`.
fn escape_event(d: &Daemon, mark: usize, agent: &str, id: u64) -> Value {
    let ev = d.wait_decision_after(mark, "cgroup-escape", |v| {
        v["class"] == "cgroup-escape" && v["what"] == format!("cgroup id {id}")
    });
    assert_eq!(ev["decision"], "deny", "{ev}");
    assert_eq!(ev["agent"], agent, "{ev}");
    assert_eq!(
        ev["protected"], "(built-in: agents may never do this)",
        "{ev}"
    );
    ev
}

/// Acts on cgroups, one argument each: `w:PATH:VALUE` (open for write, write VALUE),
/// `fd:N:VALUE` (write VALUE through descriptor N, which it was given), `r:PATH` (read),
/// `mkdir:PATH`, `rmdir:PATH`, `mv:PATH:NEW`. Prints per argument the argument and `ok`,
/// `open-ERRNO`, `write-ERRNO` or `ERRNO`.
const CONTROL: &str = r#"
import errno, os, sys
def act(arg):
    op, path, *rest = arg.split(":")
    if op == "fd":
        try:
            os.write(int(path), rest[0].encode())
        except OSError as e:
            return "write-" + errno.errorcode[e.errno]
        return "ok"
    try:
        if op == "r":
            open(path).read()
        elif op == "w":
            fd = os.open(path, os.O_WRONLY)
        elif op == "mkdir":
            os.mkdir(path)
        elif op == "rmdir":
            os.rmdir(path)
        elif op == "mv":
            os.rename(path, rest[0])
    except OSError as e:
        return ("open-" if op == "w" else "") + errno.errorcode[e.errno]
    if op == "w":
        try:
            os.write(fd, rest[0].encode())
        except OSError as e:
            return "write-" + errno.errorcode[e.errno]
        finally:
            os.close(fd)
    return "ok"
for arg in sys.argv[1:]:
    print(arg, act(arg), flush=True)
"#;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// Opens each argument before `--` for write, as descriptors 20, 21, ..., then executes the
/// command after `--`, which inherits them: descriptors a non-agent opened, handed down.
const HAND: &str = r#"
import os, sys
i = sys.argv.index("--")
for n, path in enumerate(sys.argv[1:i]):
    fd = os.open(path, os.O_WRONLY)
    os.dup2(fd, 20 + n)
    os.close(fd)
os.execvp(sys.argv[i + 1], sys.argv[i + 1:])
"#;

/// Runs [`CONTROL`] with `args` (as the agent when `agent` is set, else as a plain host
/// process) and checks each result against `want`.
fn control(d: &Daemon, agent: Option<&str>, script: &Path, ops: &[(String, &str)]) {
    control_handed(d, agent, script, &[], ops);
}

/// [`control`], handed `files` as descriptors 20, 21, ... opened for write by a non-agent
/// ([`HAND`], which must sit next to `script` as `hand.py`).
fn control_handed(
    d: &Daemon,
    agent: Option<&str>,
    script: &Path,
    files: &[PathBuf],
    ops: &[(String, &str)],
) {
    let mut cmd = vec!["python3".to_owned(), s(script)];
    cmd.extend(ops.iter().map(|(op, _)| op.clone()));
    let out = if files.is_empty() {
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        match agent {
            Some(agent) => d.as_agent(agent, &cmd),
            None => as_host(&cmd),
        }
    } else {
        let mut hand = vec!["python3".to_owned(), s(&script.with_file_name("hand.py"))];
        hand.extend(files.iter().map(|f| s(f)));
        hand.push("--".to_owned());
        if let Some(agent) = agent {
            hand.extend([s(&governor_bin()), "run".to_owned(), "--policy".to_owned()]);
            hand.extend([
                s(&d.policy),
                "--agent".to_owned(),
                agent.to_owned(),
                "--".to_owned(),
            ]);
        }
        hand.extend(cmd);
        let hand: Vec<&str> = hand.iter().map(String::as_str).collect();
        as_host(&hand)
    };
    let who = agent.unwrap_or("host");
    let got = lines(&out, who, ops.len());
    for (line, (op, want)) in got.iter().zip(ops) {
        assert_eq!(line, &[op.as_str(), *want], "{who}: {got:?}");
    }
}

/// The decisions logged after `mark`, once there are `n` of them (or 5 s passed).
fn decisions_since(d: &Daemon, mark: usize, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let ev: Vec<Value> = d.decisions().into_iter().skip(mark).collect();
        if ev.len() >= n || std::time::Instant::now() > deadline {
            return ev;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Enables the pids controller for the test cgroups, so that `pids.max` exists.
fn enable_pids() {
    for parent in [Path::new(CGROUP2), &cg("governor-test")] {
        let ctl = parent.join("cgroup.subtree_control");
        if !read(&ctl).split(' ').any(|c| c == "pids") {
            std::fs::write(&ctl, "+pids").unwrap_or_else(|e| panic!("{}: {e}", ctl.display()));
        }
    }
}

/// Kills and reaps a process on drop, so that its cgroup can be removed even when the test
/// fails first.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
