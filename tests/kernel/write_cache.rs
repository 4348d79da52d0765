//! The per-file write cache (governor-ebpf `write_cache.rs`) never outlives what it rests on.
//! An agent holds a descriptor to an unprotected file and writes through it (the answer is
//! kept); then something moves the file under a protected directory — a rename of the file,
//! a rename of an ancestor, a move of the mount it lives on, all by a non-agent — and the next
//! write through the same descriptor is refused. A new policy (the daemon restarted) and a
//! revoked lease are decided again on the next write too. A file the agent's own open just
//! created is not walked at open, but an O_TMPFILE open in a protected directory still is,
//! and a freed file's kept answer never reaches a new file at its address.

use std::{
    io::{BufRead, BufReader, Write as _},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    thread,
    time::Duration,
};

use aya::maps::{HashMap, MapData};
use governor_common::{maps, Class, WriteStamp};
use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, daemon_map, governor_bin, lease::LeaseMap, mount_tmpfs,
    move_mount, policy_denying, require_bpf_lsm, scratch, unmount, write, Daemon,
};

const EPERM: i32 = 1;

/// An agent process holding one descriptor open for writing, writing on request.
struct Writer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Opens the file named by argv[1] for appending, reports, then for each `w` line writes one
/// byte through that same descriptor and reports `ok` or `err <errno>`.
const WRITER: &str = "import os,sys
try:
    fd=os.open(sys.argv[1], os.O_WRONLY|os.O_APPEND)
    print('ok', flush=True)
except OSError as e:
    print('err', e.errno, flush=True); sys.exit(1)
for line in sys.stdin:
    try:
        os.write(fd, b'x'); print('ok', flush=True)
    except OSError as e:
        print('err', e.errno, flush=True)
";

impl Writer {
    /// Starts the writer as `agent` of the policy at `policy` and waits for its open.
    fn open(policy: &Path, agent: &str, file: &Path) -> Writer {
        let mut child = Command::new(governor_bin())
            .args(["run", "--policy"])
            .arg(policy)
            .args(["--agent", agent, "--", "python3", "-c", WRITER])
            .arg(file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the writer");
        let stdin = child.stdin.take().expect("stdin piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut w = Writer {
            child,
            stdin,
            stdout,
        };
        assert_eq!(w.reply(), Ok(()), "open {} as {agent}", file.display());
        w
    }

    fn reply(&mut self) -> Result<(), i32> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the writer");
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["ok"] => Ok(()),
            ["err", n] => Err(n.parse().expect("errno")),
            other => panic!("writer said {other:?}"),
        }
    }

    /// One write(2) through the held descriptor.
    fn write(&mut self) -> Result<(), i32> {
        self.stdin.write_all(b"w\n").expect("ask the writer");
        self.stdin.flush().expect("flush");
        self.reply()
    }

    fn close(mut self) {
        drop(self.stdin);
        let status = self.child.wait().expect("writer exits");
        assert!(status.success(), "writer exited with {status}");
    }
}

/// The live `GOV_WRITE_CACHE` map of the running daemon.
fn cache() -> HashMap<MapData, u64, WriteStamp> {
    daemon_map(maps::WRITE_CACHE)
}

fn entries() -> usize {
    cache().keys().filter_map(Result::ok).count()
}

/// Writes through `w` until they are refused, and checks the refusal is EPERM and logged.
fn refused(d: &Daemon, w: &mut Writer, name: &str, what: &str) {
    let mark = d.mark();
    assert_eq!(w.write(), Err(EPERM), "{what}");
    d.one_since(mark, what, |v| {
        v["class"] == "write" && v["decision"] == "deny" && v["name"] == name
    });
}

#[test]
fn lsm_write_cache_is_dropped_when_the_file_moves_under_protection() {
    require_bpf_lsm();
    let dir = scratch("write-cache-moves");
    let prod = dir.join("prod");
    let free = dir.join("free");
    for f in ["a.txt", "deep/b.txt", "c.txt"] {
        write(&free.join(f), "junk");
    }
    write(&prod.join("keep.txt"), "precious");
    // A tmpfs on free/mnt, to be moved (as a mount) under prod.
    std::fs::create_dir_all(free.join("mnt")).expect("mkdir mnt");
    std::fs::create_dir_all(prod.join("mnt")).expect("mkdir prod/mnt");
    mount_tmpfs("wc-inner", &free.join("mnt"));
    write(&free.join("mnt/m.txt"), "junk");
    let agent = "agent-wc";
    let d = Daemon::start(&dir, &policy_denying(agent, "enforce", &prod, "modify"));
    d.wait_logged("write cache on");
    assert_eq!(entries(), 0, "nothing kept before any agent writes");

    // The file itself is renamed into the protected directory.
    let mut w = Writer::open(&d.policy, agent, &free.join("a.txt"));
    assert_eq!(w.write(), Ok(()), "write a.txt where it is free");
    assert_eq!(w.write(), Ok(()), "again, from the cache");
    assert!(entries() >= 1, "the plain allow was kept");
    assert_ok(
        &as_host(&["mv", &s(&free.join("a.txt")), &s(&prod.join("a.txt"))]),
        "host renames a.txt into prod",
    );
    refused(
        &d,
        &mut w,
        "a.txt",
        "write a.txt after it was moved into prod",
    );
    w.close();

    // An ancestor directory is renamed into the protected directory.
    let mut w = Writer::open(&d.policy, agent, &free.join("deep/b.txt"));
    assert_eq!(w.write(), Ok(()), "write deep/b.txt");
    assert_eq!(w.write(), Ok(()), "again, from the cache");
    assert_ok(
        &as_host(&["mv", &s(&free.join("deep")), &s(&prod.join("deep"))]),
        "host renames deep/ into prod",
    );
    refused(&d, &mut w, "b.txt", "write b.txt after its directory moved");
    w.close();

    // The mount the file lives on is moved under the protected directory.
    let mut w = Writer::open(&d.policy, agent, &free.join("mnt/m.txt"));
    assert_eq!(w.write(), Ok(()), "write mnt/m.txt");
    assert_eq!(w.write(), Ok(()), "again, from the cache");
    move_mount(&free.join("mnt"), &prod.join("mnt"));
    refused(&d, &mut w, "m.txt", "write m.txt after its mount moved");
    w.close();
    unmount(&prod.join("mnt"));

    // A file the agent's open just created, renamed into prod afterwards.
    let created = free.join("new.txt");
    let script = format!(
        "import os,sys,time\nfd=os.open({:?}, os.O_WRONLY|os.O_CREAT|os.O_EXCL, 0o644)\nos.write(fd,b'x')\nprint('ok',flush=True)\nsys.stdin.readline()\ntry:\n    os.write(fd,b'y'); print('ok',flush=True)\nexcept OSError as e:\n    print('err',e.errno,flush=True)",
        s(&created)
    );
    let mut child = Command::new(governor_bin())
        .args(["run", "--policy"])
        .arg(&d.policy)
        .args(["--agent", agent, "--", "python3", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the creator");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("creator reply");
    assert_eq!(line.trim(), "ok", "create and write new.txt");
    assert_ok(
        &as_host(&["mv", &s(&created), &s(&prod.join("new.txt"))]),
        "host renames new.txt into prod",
    );
    let mark = d.mark();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"w\n").expect("go");
    line.clear();
    out.read_line(&mut line).expect("creator reply");
    assert_eq!(
        line.trim(),
        format!("err {EPERM}"),
        "write new.txt after the move"
    );
    d.one_since(mark, "created file moved into prod", |v| {
        v["class"] == "write" && v["name"] == "new.txt"
    });
    drop(stdin);
    assert!(child.wait().expect("creator exits").success());

    // The created-file shortcut does not cover O_TMPFILE: in prod it is still refused.
    let tmpfile = format!(
        "import os; os.open({:?}, os.O_TMPFILE|os.O_WRONLY, 0o600)",
        s(&prod)
    );
    assert_eperm(
        &d.as_agent(agent, &["python3", "-c", &tmpfile]),
        "O_TMPFILE in prod",
    );
    // ...and created files in prod are refused at creation, as before.
    assert_eperm(
        &d.as_agent(
            agent,
            &["sh", "-c", &format!("echo x > '{}'", s(&prod.join("n")))],
        ),
        "create in prod",
    );
    assert!(!prod.join("n").exists());

    reused_address_finds_nothing(&d, agent, &free.join("c.txt"), &prod.join("keep.txt"));
    assert_eq!(
        std::fs::read_to_string(prod.join("keep.txt")).expect("read keep"),
        "precious"
    );
}

/// Opens `prod_file` for writing this many times as a non-agent, hoping to take the address of
/// a freed file whose answer the kernel kept.
const HOLDER_FILES: usize = 256;

/// A freed file's kept answer never reaches a new file at the same address. An agent's
/// descriptor to `free_file` is kept as a plain allow and closed; a non-agent, ready
/// beforehand, at once opens `prod_file` (protected) for writing many times, so that one of
/// those files is very likely allocated where the freed one was (if none was, it opens them
/// again a little later: 6.1 frees files after an RCU grace period). That address's entry
/// must be void (every open voids the entry at its address), and an agent handed all those
/// descriptors must be refused on every one.
fn reused_address_finds_nothing(d: &Daemon, agent: &str, free_file: &Path, prod_file: &Path) {
    let holder_py = format!(
        "import os,sys,subprocess\nfds=[]\nwhile sys.stdin.readline().strip()=='open':\n    for f in fds: os.close(f)\n    fds=[os.open({:?}, os.O_WRONLY|os.O_APPEND) for _ in range({HOLDER_FILES})]\n    print('held',flush=True)\nw='import os,sys\\nn=0\\nfor fd in map(int,sys.argv[1:]):\\n    try: os.write(fd,b\\'x\\')\\n    except OSError as e: n+=e.errno=={EPERM}\\nprint(n,flush=True)'\nsubprocess.run([{:?},'run','--policy',{:?},'--agent',{agent:?},'--','python3','-c',w]+[str(f) for f in fds],pass_fds=fds,check=True)",
        s(prod_file),
        governor_bin().display().to_string(),
        s(&d.policy),
    );
    let mut holder = Command::new("python3")
        .args(["-c", &holder_py])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the holder");
    let mut stdin = holder.stdin.take().expect("stdin");
    let mut out = BufReader::new(holder.stdout.take().expect("stdout"));

    let before: Vec<(u64, WriteStamp)> = cache().iter().filter_map(Result::ok).collect();
    let mut w = Writer::open(&d.policy, agent, free_file);
    assert_eq!(w.write(), Ok(()), "write the free file");
    assert_eq!(w.write(), Ok(()), "again, from the cache");
    // The writer's file, and its stdout pipe (its replies are writes too): entries new since
    // `before`, or refilled in place (a voided entry stays in the map, and a new file at its
    // address fills it again).
    let kept: Vec<u64> = cache()
        .iter()
        .filter_map(Result::ok)
        .filter(|(k, v)| v.not_after_ns != 0 && !before.contains(&(*k, *v)))
        .map(|(k, _)| k)
        .collect();
    assert!(!kept.is_empty(), "the writer's file was kept");
    w.close();
    // 6.12's file slab is type-safe by RCU and hands a freed file out again at once; 6.1
    // frees it only after an RCU grace period (`call_rcu`). So the holder opens its files
    // again, a little later each time, until one open has taken a kept address.
    let mut line = String::new();
    let mut voided = false;
    for attempt in 0..6u64 {
        stdin.write_all(b"open\n").expect("holder: open");
        line.clear();
        out.read_line(&mut line).expect("holder reply");
        assert_eq!(
            line.trim(),
            "held",
            "the holder opened {HOLDER_FILES} files"
        );
        // An open voids the entry at its address in place (its time is set to 0).
        let map = cache();
        if kept
            .iter()
            .any(|k| map.get(k, 0).map_or(true, |v| v.not_after_ns == 0))
        {
            voided = true;
            break;
        }
        thread::sleep(Duration::from_millis(100 << attempt));
    }
    assert!(
        voided,
        "no freed file's address was taken by a new open, which would have voided its entry"
    );
    stdin.write_all(b"go\n").expect("holder: go");
    line.clear();
    out.read_line(&mut line).expect("agent's count");
    assert_eq!(
        line.trim(),
        HOLDER_FILES.to_string(),
        "every write through a protected file's descriptor handed to the agent is refused"
    );
    drop(stdin);
    assert!(holder.wait().expect("holder exits").success());
}

fn lease_policy(dir: &Path, agent: &str) -> String {
    format!(
        r#"
[policy]
name = "write-cache-lease"
owner = "kernel-tests@example.com"

[[agents]]
name = "{agent}"
cgroup = "governor-test/{agent}"

[[protect]]
path = "{}"
lease = ["write"]
"#,
        s(&dir.join("prod"))
    )
}

#[test]
fn lsm_write_cache_rechecks_after_lease_revoke_and_policy_change() {
    require_bpf_lsm();
    let dir = scratch("write-cache-policy");
    let agent = "agent-wcp";
    write(&dir.join("prod/w.txt"), "precious");
    write(&dir.join("free/f.txt"), "junk");
    let mut d = Daemon::start(&dir, &lease_policy(&dir, agent));
    d.wait_logged("write cache on");

    // A descriptor opened under a lease writes while the lease lasts, not after.
    let mut leases = LeaseMap::open();
    leases.grant(
        0,
        Class::Write,
        &dir.join("prod/w.txt"),
        Duration::from_secs(600),
        21,
    );
    let mut leased = Writer::open(&d.policy, agent, &dir.join("prod/w.txt"));
    assert_eq!(leased.write(), Ok(()), "write under the lease");
    assert_eq!(leased.write(), Ok(()), "and again");
    leases.revoke(0, Class::Write, &dir.join("prod/w.txt"));
    assert_eq!(leased.write(), Err(EPERM), "write after the revoke");

    // A descriptor to a free file, kept, then the daemon is replaced by one whose policy
    // protects that file's directory: the next write is decided under the new policy.
    let mut w = Writer::open(&d.policy, agent, &dir.join("free/f.txt"));
    assert_eq!(w.write(), Ok(()), "write f.txt");
    assert_eq!(w.write(), Ok(()), "again, from the cache");
    assert!(entries() >= 1, "the plain allow was kept");
    d.stop_keeping_pins();
    let d = d.successor(
        &dir,
        "policy-2.toml",
        &policy_denying(agent, "enforce", &dir.join("free"), "modify"),
        &[],
    );
    refused(&d, &mut w, "f.txt", "write f.txt under the new policy");
    w.close();
    leased.close();
    assert_eq!(
        std::fs::read_to_string(dir.join("free/f.txt")).expect("read f"),
        "junkxx"
    );
}
