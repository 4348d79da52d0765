//! Agent cgroup subtrees: cgroups an agent (or anyone) creates below an agent cgroup are the
//! agent's, whether made before or after the daemon started, at any depth; and an agent cannot
//! move a task into a cgroup outside its agent, by writing `cgroup.procs`/`cgroup.threads`
//! (opened itself or received) or by `clone3(CLONE_INTO_CGROUP)`; nor control cgroups that
//! are not its own, through files it opens or descriptors it is handed (procfs files of host
//! tasks too); nor write anything in a cgroup v1 hierarchy the host mounted.

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

#[test]
fn lsm_subcgroups_of_an_agent_are_the_agent() {
    require_bpf_lsm();
    let dir = scratch("cg-sub");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("prod/other.txt"), "precious");
    let agent = "cg-sub";
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    let own = cg(&format!("governor-test/{agent}"));
    let sub = own.join("sub");
    let deeper = sub.join("deeper");
    let db = s(&dir.join("prod/db.sqlite"));

    // The agent makes a cgroup below its own, moves in, and is still the agent; then once
    // more, one level further down.
    for (cgroup, depth) in [(&sub, "one level"), (&deeper, "two levels")] {
        let mark = d.mark();
        let script = format!(
            "mkdir -p '{c}' && echo $$ > '{c}/cgroup.procs' && grep -qx '0::{rel}' /proc/self/cgroup \
             && exec rm '{db}'",
            c = cgroup.display(),
            rel = cgroup.strip_prefix(CGROUP2).map(|r| format!("/{}", r.display())).unwrap_or_default(),
        );
        let out = d.as_agent(agent, &["sh", "-c", &script]);
        assert_eperm(&out, &format!("rm from a sub-cgroup ({depth})"));
        assert!(
            dir.join("prod/db.sqlite").exists(),
            "{depth}: target unchanged"
        );
        let ev = d.one_since(mark, "deny unlink from sub-cgroup", |v| {
            v["class"] == "unlink" && v["name"] == "db.sqlite"
        });
        assert_eq!(ev["decision"], "deny", "{ev}");
        assert_eq!(
            ev["agent"], agent,
            "{depth}: the event names the agent: {ev}"
        );
        assert_eq!(ev["comm"], "rm", "{ev}");
        assert_eq!(
            ev["cgroup_id"],
            id(cgroup),
            "{depth}: the event carries the sub-cgroup's own id: {ev}"
        );
    }

    // A non-agent's cgroup elsewhere, also with a sub-cgroup: unaffected.
    let plain = cg("governor-test/cg-sub-plain");
    let plain_sub = plain.join("sub");
    std::fs::create_dir_all(&plain_sub).expect("mkdir non-agent cgroups");
    let mark = d.mark();
    let out = run_in_cgroup(
        "governor-test/cg-sub-plain/sub",
        0,
        0,
        &["rm", &s(&dir.join("prod/other.txt"))],
    );
    assert_ok(&out, "non-agent rm from its own sub-cgroup");
    assert!(!dir.join("prod/other.txt").exists());
    d.none_since(mark, "non-agent sub-cgroup");

    // Removing the agent's sub-cgroups and making them again (new ids) works the same.
    remove(&[&deeper, &sub]);
    assert!(!sub.exists(), "sub-cgroups removed once empty");
    let mark = d.mark();
    let script = format!(
        "mkdir -p '{c}' && echo $$ > '{c}/cgroup.procs' && exec rm '{db}'",
        c = sub.display()
    );
    let out = d.as_agent(agent, &["sh", "-c", &script]);
    assert_eperm(&out, "rm from a re-made sub-cgroup");
    let ev = d.one_since(mark, "deny from re-made sub-cgroup", |v| {
        v["class"] == "unlink"
    });
    assert_eq!(ev["agent"], agent, "{ev}");
    assert_eq!(ev["cgroup_id"], id(&sub), "{ev}");
    remove(&[&sub, &plain_sub, &plain]);
}

#[test]
fn lsm_agent_cannot_move_tasks_out_of_its_cgroup() {
    require_bpf_lsm();
    let dir = scratch("cg-escape");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("move.py"), MOVE);
    write(&dir.join("clone3.py"), CLONE3);
    // A regular file that merely has the name.
    write(&dir.join("cgroup.procs"), "");
    let agent = "cg-esc";
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    let own = cg(&format!("governor-test/{agent}"));
    let own_rel = format!("/governor-test/{agent}");
    let sub = own.join("sub");
    let outside = cg("governor-test/cg-esc-outside");
    std::fs::create_dir_all(&outside).expect("mkdir non-agent cgroup");
    std::fs::create_dir_all(&sub).expect("mkdir the agent's sub-cgroup");
    let root = Path::new(CGROUP2);
    let mover = s(&dir.join("move.py"));

    // Writing its pid (opening cgroup.procs/threads for write) outside its agent: EPERM at
    // open, and it stays where it is. Inside its own subtree: allowed, both ways.
    let mark = d.mark();
    let targets = [
        root.join("cgroup.procs"),
        outside.join("cgroup.procs"),
        outside.join("cgroup.threads"),
        dir.join("cgroup.procs"),
        sub.join("cgroup.procs"),
        own.join("cgroup.procs"),
    ];
    let mut cmd = vec!["python3".to_owned(), mover.clone()];
    cmd.extend(targets.iter().map(|t| s(t)));
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let got = lines(&d.as_agent(agent, &cmd), "agent moves", targets.len());
    let want = [
        ("open EPERM", own_rel.clone()),
        ("open EPERM", own_rel.clone()),
        ("open EPERM", own_rel.clone()),
        ("ok", own_rel.clone()),
        ("ok", format!("{own_rel}/sub")),
        ("ok", own_rel.clone()),
    ];
    for ((line, t), (result, cgroup)) in got.iter().zip(&targets).zip(&want) {
        let result: Vec<&str> = result.split(' ').collect();
        assert_eq!(line[0], s(t), "{got:?}");
        assert_eq!(
            &line[1..line.len() - 1],
            result.as_slice(),
            "{}: {got:?}",
            t.display()
        );
        assert_eq!(line[line.len() - 1], *cgroup, "{}: {got:?}", t.display());
    }
    let ev = escape_event(&d, mark, agent, id(root));
    assert_eq!(ev["name"], "cgroup.procs", "{ev}");
    assert_eq!(ev["comm"], "python3", "{ev}");
    assert_eq!(ev["cgroup_id"], id(&own), "{ev}");
    let ev = escape_event(&d, mark, agent, id(&outside));
    assert!(
        ev["name"] == "cgroup.procs" || ev["name"] == "cgroup.threads",
        "{ev}"
    );
    let escapes = d
        .decisions()
        .into_iter()
        .skip(mark)
        .filter(|v| v["class"] == "cgroup-escape");
    assert_eq!(
        escapes.count(),
        3,
        "one event per refused open: {:#?}",
        d.decisions()
    );

    // Descriptors opened by a non-agent and handed to the agent: writing through them is
    // refused outside its agent (the kernel checks the common ancestor of source and
    // destination, the root here), allowed into its own sub-cgroup.
    let mark = d.mark();
    let open_then_run = format!(
        "exec 3>>'{}' 4>>'{}' 5>>'{}'; exec \"$@\"",
        root.join("cgroup.procs").display(),
        outside.join("cgroup.procs").display(),
        sub.join("cgroup.procs").display()
    );
    let out = Command::new("sh")
        .args(["-c", &open_then_run, "sh"])
        .arg(governor_bin())
        .args(["run", "--policy"])
        .arg(&d.policy)
        .args([
            "--agent", agent, "--", "python3", &mover, "fd:3", "fd:4", "fd:5",
        ])
        .output()
        .expect("spawn sh");
    let got = lines(&out, "writes through received descriptors", 3);
    let sub_rel = format!("{own_rel}/sub");
    let want = [
        ["fd:3", "write", "EPERM", own_rel.as_str()],
        ["fd:4", "write", "EPERM", own_rel.as_str()],
        ["fd:5", "ok", sub_rel.as_str(), ""],
    ];
    for (line, want) in got.iter().zip(&want) {
        let want: Vec<&str> = want.iter().copied().filter(|w| !w.is_empty()).collect();
        assert_eq!(line, &want, "{got:?}");
    }
    escape_event(&d, mark, agent, id(root));
    let escapes = d
        .decisions()
        .into_iter()
        .skip(mark)
        .filter(|v| v["class"] == "cgroup-escape");
    assert_eq!(
        escapes.count(),
        2,
        "one event per refused write: {:#?}",
        d.decisions()
    );

    // clone3(CLONE_INTO_CGROUP): refused outside its agent, allowed into its sub-cgroup.
    let mark = d.mark();
    let cloner = s(&dir.join("clone3.py"));
    let out = d.as_agent(
        agent,
        &["python3", &cloner, CGROUP2, &s(&outside), &s(&sub)],
    );
    let got = lines(&out, "agent clone3", 3);
    assert_eq!(got[0], [CGROUP2, "err", "EPERM"], "{got:?}");
    assert_eq!(got[1], [s(&outside).as_str(), "err", "EPERM"], "{got:?}");
    assert_eq!(
        got[2],
        [s(&sub).as_str(), "ok", sub_rel.as_str()],
        "{got:?}"
    );
    escape_event(&d, mark, agent, id(root));
    escape_event(&d, mark, agent, id(&outside));
    // The same clone3 from a non-agent works: the refusal above is governor's.
    let out = as_host(&["python3", &cloner, &s(&outside)]);
    let got = lines(&out, "host clone3", 1);
    assert_eq!(
        got[0],
        [s(&outside).as_str(), "ok", "/governor-test/cg-esc-outside"],
        "{got:?}"
    );
    remove(&[&sub, &outside]);
}

#[test]
fn lsm_subcgroups_made_before_the_daemon_are_the_agent() {
    require_bpf_lsm();
    let dir = scratch("cg-pre");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("move.py"), MOVE);
    let agent = "cg-pre";
    let inner_rel = format!("governor-test/{agent}/pre/inner");
    let inner = cg(&inner_rel);
    std::fs::create_dir_all(&inner).expect("mkdir sub-cgroups before the daemon");
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    let registered = d
        .logged()
        .into_iter()
        .find(|v| v["message"] == "cgroups below the agent cgroup count as the agent's")
        .expect("a line about the agent's existing sub-cgroups");
    assert_eq!(registered["agent"], agent, "{registered}");
    assert_eq!(registered["existing"], 2, "{registered}");
    assert_eq!(registered["registered"], 2, "{registered}");

    let mark = d.mark();
    let out = run_in_cgroup(&inner_rel, 0, 0, &["rm", &s(&dir.join("prod/db.sqlite"))]);
    assert_eperm(&out, "rm from a sub-cgroup made before the daemon");
    assert!(dir.join("prod/db.sqlite").exists());
    let ev = d.one_since(mark, "deny unlink", |v| v["class"] == "unlink");
    assert_eq!(ev["agent"], agent, "{ev}");
    assert_eq!(ev["cgroup_id"], id(&inner), "{ev}");

    // And it cannot leave for the root cgroup from there either.
    let mark = d.mark();
    let out = run_in_cgroup(
        &inner_rel,
        0,
        0,
        &[
            "python3",
            &s(&dir.join("move.py")),
            &format!("{CGROUP2}/cgroup.procs"),
        ],
    );
    let got = lines(&out, "move from inner", 1);
    assert_eq!(
        got[0][1..],
        ["open", "EPERM", &format!("/{inner_rel}")],
        "{got:?}"
    );
    escape_event(&d, mark, agent, id(Path::new(CGROUP2)));
    drop(d);
    remove(&[&inner, inner.parent().expect("pre")]);
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

#[test]
fn lsm_agent_cannot_control_cgroups_outside_its_own() {
    require_bpf_lsm();
    let dir = scratch("cg-ctl");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("control.py"), CONTROL);
    let script = dir.join("control.py");
    let agent = "cg-ctl";
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    let own = cg(&format!("governor-test/{agent}"));
    let outside = cg("governor-test/cg-ctl-outside");
    let child = outside.join("child");
    std::fs::create_dir_all(&child).expect("mkdir non-agent cgroups");
    enable_pids();
    assert!(
        outside.join("pids.max").exists() && own.join("pids.max").exists(),
        "the VM must offer the pids controller"
    );
    // A non-agent process lives in the outside cgroup's child.
    let mut sleeper = spawn_in_cgroup(
        "governor-test/cg-ctl-outside/child",
        0,
        0,
        &["sleep", "300"],
    );
    let w = |p: &Path, file: &str, v: &str| format!("w:{}:{v}", p.join(file).display());
    let on = |op: &str, p: &Path| format!("{op}:{}", p.display());

    // Outside its agent: every interface file, and making, removing or renaming cgroups.
    let mark = d.mark();
    let refused = [
        w(&outside, "cgroup.freeze", "1"),
        w(&child, "cgroup.kill", "1"),
        w(&outside, "pids.max", "1"),
        w(&outside, "cgroup.subtree_control", "-pids"),
        w(&outside, "cgroup.max.descendants", "0"),
        w(Path::new(CGROUP2), "cgroup.subtree_control", "-pids"),
        on("mkdir", &outside.join("new")),
        on("mkdir", &cg("cg-ctl-top")),
        on("rmdir", &child),
        // (cgroup v2 cannot rename at all; governor refuses before the kernel does: the
        // event below shows it.)
        format!("mv:{}:{}", child.display(), outside.join("moved").display()),
        // Its own top cgroup sits in governor-test: removing it is refused too.
        on("rmdir", &own),
        // Its top cgroup's interface files belong to governor and the operator.
        w(&own, "cgroup.freeze", "0"),
        w(&own, "cgroup.kill", "0"),
        w(&own, "pids.max", "1000"),
        w(&own, "cgroup.max.descendants", "0"),
        w(&own, "cgroup.subtree_control", "+pids"),
        w(&own, "cgroup.type", "domain"),
    ];
    let ops: Vec<(String, &str)> = refused
        .iter()
        .map(|op| {
            let want = if op.starts_with("w:") {
                "open-EPERM"
            } else {
                "EPERM"
            };
            (op.clone(), want)
        })
        .collect();
    control(&d, Some(agent), &script, &ops);
    // Nothing changed: the sleeper lives, unfrozen; limits and cgroups as they were.
    assert!(
        matches!(sleeper.try_wait(), Ok(None)),
        "cgroup.kill refused"
    );
    assert!(read(&outside.join("cgroup.events")).contains("frozen 0"));
    assert_eq!(read(&outside.join("pids.max")), "max");
    assert_eq!(read(&own.join("pids.max")), "max");
    assert_eq!(read(&outside.join("cgroup.max.descendants")), "max");
    assert_eq!(read(&own.join("cgroup.max.descendants")), "max");
    assert_eq!(read(&own.join("cgroup.type")), "domain");
    assert!(read(&outside.join("cgroup.subtree_control")).is_empty());
    assert!(child.exists() && own.exists());
    assert!(!outside.join("new").exists() && !outside.join("moved").exists());
    assert!(!cg("cg-ctl-top").exists());
    // One event per refusal, each naming the cgroup checked.
    let events = decisions_since(&d, mark, refused.len());
    assert_eq!(events.len(), refused.len(), "{events:#?}");
    for ev in &events {
        assert_eq!(ev["class"], "cgroup-control", "{ev}");
        assert_eq!(ev["decision"], "deny", "{ev}");
        assert_eq!(ev["agent"], agent, "{ev}");
        assert_eq!(ev["comm"], "python3", "{ev}");
        assert_eq!(ev["cgroup_id"], id(&own), "{ev}");
    }
    let find = |name: &str, cgroup: &Path| {
        let what = format!("cgroup id {}", id(cgroup));
        assert!(
            events
                .iter()
                .any(|v| v["name"] == name && v["what"] == what),
            "no event for {name} in {}: {events:#?}",
            cgroup.display()
        );
    };
    find("cgroup.freeze", &outside);
    find("cgroup.kill", &child);
    find("pids.max", &outside);
    // mkdir, rmdir and rename in it: the directory written is the cgroup itself.
    assert_eq!(
        events
            .iter()
            .filter(|v| v["name"] == "cg-ctl-outside"
                && v["what"] == format!("cgroup id {}", id(&outside)))
            .count(),
        3,
        "{events:#?}"
    );
    find("", Path::new(CGROUP2)); // mkdir in the root cgroup
    find("governor-test", &cg("governor-test")); // rmdir of its own top cgroup
    find("cgroup.freeze", &own);
    find("cgroup.kill", &own);

    // Its own subtree below the top: cgroups it makes are its to manage.
    let sub = own.join("sub");
    let mark = d.mark();
    let ops = [
        (on("mkdir", &sub), "ok"),
        (on("mkdir", &sub.join("deeper")), "ok"),
        (w(&sub, "cgroup.max.descendants", "3"), "ok"),
        (w(&sub, "cgroup.freeze", "1"), "ok"),
        (on("rmdir", &sub.join("deeper")), "ok"),
    ];
    let ops: Vec<(String, &str)> = ops.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control(&d, Some(agent), &script, &ops);
    assert_eq!(read(&sub.join("cgroup.max.descendants")), "3");
    assert!(read(&sub.join("cgroup.events")).contains("frozen 1"));
    assert!(!sub.join("deeper").exists());
    control(
        &d,
        Some(agent),
        &script,
        &[
            (w(&sub, "cgroup.freeze", "0"), "ok"),
            (on("rmdir", &sub), "ok"),
        ],
    );
    assert!(!sub.exists());
    d.none_since(mark, "the agent's own sub-cgroups");

    // A non-agent (root) does all of it, the refused writes included.
    let mark = d.mark();
    let host = [
        (w(&outside, "pids.max", "100"), "ok"),
        (w(&outside, "cgroup.max.descendants", "5"), "ok"),
        (w(&outside, "cgroup.freeze", "1"), "ok"),
        (w(&outside, "cgroup.freeze", "0"), "ok"),
        (w(&own, "pids.max", "1000"), "ok"),
        (on("mkdir", &outside.join("new")), "ok"),
        (on("rmdir", &outside.join("new")), "ok"),
        (w(&child, "cgroup.kill", "1"), "ok"),
    ];
    let host: Vec<(String, &str)> = host.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control(&d, None, &script, &host);
    assert_eq!(read(&outside.join("pids.max")), "100");
    assert_eq!(read(&own.join("pids.max")), "1000");
    let status = sleeper.wait().expect("wait for the sleeper");
    assert!(!status.success(), "killed through cgroup.kill: {status}");
    d.none_since(mark, "non-agent cgroup writes");
    std::fs::write(own.join("pids.max"), "max").expect("reset pids.max");
    drop(d);
    remove(&[&child, &outside]);
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

/// Where the cgroup v1 test mounts its hierarchy (outside the scratch directories, which
/// tests remove wholesale).
const V1_MOUNT: &str = "/tmp/governor-test-cgroup-v1";

/// A named cgroup v1 hierarchy with no controllers, mounted by the host; on drop its child
/// cgroups are removed and it is unmounted, failure or not.
struct V1Hierarchy {
    root: PathBuf,
    children: Vec<PathBuf>,
}

impl V1Hierarchy {
    fn mount() -> V1Hierarchy {
        let root = PathBuf::from(V1_MOUNT);
        // Left mounted by an interrupted run: start over.
        let _ = as_host(&["umount", V1_MOUNT]);
        std::fs::create_dir_all(&root).expect("mkdir the v1 mountpoint");
        let out = as_host(&[
            "mount",
            "-t",
            "cgroup",
            "-o",
            "none,name=govtest",
            "cgroup",
            V1_MOUNT,
        ]);
        assert!(
            out.status.success(),
            "this test needs a kernel that can mount a cgroup v1 hierarchy \
             (`mount -t cgroup -o none,name=govtest cgroup {V1_MOUNT}` failed: {} {:?})",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        V1Hierarchy {
            root,
            children: Vec::new(),
        }
    }
}

impl Drop for V1Hierarchy {
    fn drop(&mut self) {
        for c in self.children.iter().rev() {
            let _ = std::fs::remove_dir(c);
        }
        let _ = as_host(&["umount", V1_MOUNT]);
        let _ = std::fs::remove_dir(&self.root);
    }
}

/// The line of `/proc/PID/cgroup` for the `govtest` v1 hierarchy (`N:name=govtest:/PATH`).
fn v1_line(pid: u32) -> String {
    let file = format!("/proc/{pid}/cgroup");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .lines()
        .find(|l| l.contains(":name=govtest:"))
        .unwrap_or_else(|| panic!("{file} names no govtest hierarchy"))
        .to_owned()
}

#[test]
fn lsm_agent_cannot_write_cgroup_v1_hierarchies() {
    require_bpf_lsm();
    let dir = scratch("cg-v1");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("control.py"), CONTROL);
    write(&dir.join("hand.py"), HAND);
    let script = dir.join("control.py");
    let agent = "cg-v1";
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    // Declared before the sleeper: dropped after it, once its cgroups are empty.
    let mut v1 = V1Hierarchy::mount();
    let root = v1.root.clone();
    let child = root.join("child");
    let made = root.join("made");
    v1.children.extend([child.clone(), made.clone()]);
    std::fs::create_dir(&child).expect("mkdir a v1 cgroup as the host");
    let sleeper = Reaped(
        Command::new("sleep")
            .arg("300")
            .spawn()
            .expect("spawn sleep"),
    );
    let pid = sleeper.0.id();
    let before = v1_line(pid);
    assert!(before.ends_with(":name=govtest:/"), "{before}");
    let w = |p: &Path, file: &str, v: &str| format!("w:{}:{v}", p.join(file).display());
    let on = |op: &str, p: &Path| format!("{op}:{}", p.display());
    let fd = |n: usize, v: &str| format!("fd:{}:{v}", 20 + n);
    let pid_s = pid.to_string();

    // The agent (root) may read, but not make or remove cgroups, move any task (the sleeper
    // here) or write any other file, whether it opens the file or is handed a descriptor.
    let mark = d.mark();
    let handed = [
        child.join("cgroup.procs"),
        child.join("tasks"),
        child.join("notify_on_release"),
    ];
    let ops = [
        (on("r", &child.join("cgroup.procs")), "ok"),
        (on("r", &root.join("tasks")), "ok"),
        (on("mkdir", &made), "EPERM"),
        (on("rmdir", &child), "EPERM"),
        (w(&child, "cgroup.procs", &pid_s), "open-EPERM"),
        (w(&child, "tasks", &pid_s), "open-EPERM"),
        (w(&child, "notify_on_release", "1"), "open-EPERM"),
        (fd(0, &pid_s), "write-EPERM"),
        (fd(1, &pid_s), "write-EPERM"),
        (fd(2, "1"), "write-EPERM"),
    ];
    let ops: Vec<(String, &str)> = ops.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control_handed(&d, Some(agent), &script, &handed, &ops);
    assert_eq!(v1_line(pid), before, "the sleeper was not moved");
    assert!(child.exists() && !made.exists());
    assert_eq!(read(&child.join("notify_on_release")), "0");
    let events = decisions_since(&d, mark, 8);
    assert_eq!(events.len(), 8, "{events:#?}");
    for ev in &events {
        assert_eq!(ev["decision"], "deny", "{ev}");
        assert_eq!(ev["agent"], agent, "{ev}");
        assert_eq!(ev["comm"], "python3", "{ev}");
    }
    let count = |class: &str, name: &str, cgroup: &Path| {
        let what = format!("cgroup v1 id {}", id(cgroup));
        events
            .iter()
            .filter(|v| v["class"] == class && v["name"] == name && v["what"] == what)
            .count()
    };
    // mkdir and rmdir write the hierarchy's root directory (its name is empty).
    assert_eq!(count("cgroup-control", "", &root), 2, "{events:#?}");
    assert_eq!(
        count("cgroup-escape", "cgroup.procs", &child),
        2,
        "{events:#?}"
    );
    assert_eq!(count("cgroup-escape", "tasks", &child), 2, "{events:#?}");
    assert_eq!(
        count("cgroup-control", "notify_on_release", &child),
        2,
        "{events:#?}"
    );

    // A non-agent does all of it.
    let mark = d.mark();
    let ops = [
        (on("mkdir", &made), "ok"),
        (on("rmdir", &made), "ok"),
        (fd(0, &pid_s), "ok"),
    ];
    let ops: Vec<(String, &str)> = ops.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control_handed(&d, None, &script, &handed[..1], &ops);
    assert!(
        v1_line(pid).ends_with(":name=govtest:/child"),
        "{}",
        v1_line(pid)
    );
    control(
        &d,
        None,
        &script,
        &[(w(&root, "cgroup.procs", &pid_s), "ok")],
    );
    assert_eq!(v1_line(pid), before);
    d.none_since(mark, "non-agent v1 writes");
}
