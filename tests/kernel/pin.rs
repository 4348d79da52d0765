//! Enforcement survives the daemon: SIGKILL and SIGTERM leave every program attached, a
//! restarted daemon adopts the pins with no gap and enforces its own policy, a pin set of
//! another build or layout is replaced whole, and only `governor unload` ends enforcement.
//! Recovery cannot be blocked: a lock on the pin directory held by a process that is not a
//! daemon does not stop the next daemon, and a generation whose pins vanished from view (its
//! bpf filesystem lazily unmounted while something held it) is found by the next daemon,
//! drained and retired, so that exactly one generation enforces.
//! (The network classes' side is `net::net_enforcement_survives_the_daemon_until_unload`.)

use std::{
    io::Read,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use governor_kernel_tests::paths::p;
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, governor_bin, require_bpf_lsm, scratch, state_dir_for,
    wait_for_ready, write, Daemon,
};

/// One agent; `prod/` protected against delete; `extra` protected too if given; connects to
/// 127.0.0.2 refused.
fn policy(agent: &str, dir: &Path, extra: Option<&str>) -> String {
    let mut text = format!(
        r#"
[policy]
name = "pin-{agent}"
owner = "kernel-tests@example.com"

[[agents]]
name = "{agent}"
cgroup = "governor-test/{agent}"

[[protect]]
path = "{}"
deny = ["delete"]
allow = ["rename", "truncate", "unix-connect"]

[[network]]
cidr = "127.0.0.2"
deny = ["connect"]
"#,
        p(dir, "prod")
    );
    if let Some(rel) = extra {
        text.push_str(&format!(
            "\n[[protect]]\npath = \"{}\"\ndeny = [\"delete\"]\n\
             allow = [\"rename\", \"truncate\", \"unix-connect\"]\n",
            p(dir, rel)
        ));
    }
    text
}

/// Runs `cmd` as `agent` of the policy file `policy`, with or without a daemon.
fn run_as(policy: &Path, agent: &str, cmd: &[&str]) -> std::process::Output {
    Command::new(governor_bin())
        .args(["run", "--policy"])
        .arg(policy)
        .args(["--agent", agent, "--"])
        .args(cmd)
        .output()
        .expect("governor run")
}

/// An agent's TCP connect to 127.0.0.2:9 (nothing listens: allowed means ECONNREFUSED).
fn connect_cmd() -> [&'static str; 3] {
    [
        "python3",
        "-c",
        "import socket; s = socket.socket(); s.settimeout(5); s.connect(('127.0.0.2', 9))",
    ]
}

/// How many loaded BPF programs carry `name` (the kernel keeps 15 bytes of a name), once
/// that count settles at `want` (programs leave the kernel when their last reference goes);
/// returns the last count seen after 3 s otherwise.
fn loaded_programs_named(name: &str, want: usize) -> usize {
    let count = || {
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .filter(|p| p.name_as_str() == Some(name))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let n = count();
        if n == want || std::time::Instant::now() > deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn manifest(pin_dir: &Path) -> String {
    std::fs::read_link(pin_dir.join("manifest"))
        .unwrap_or_else(|e| panic!("{}/manifest: {e}", pin_dir.display()))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn pin_sigkill_keeps_enforcing_and_a_restart_adopts_without_gap() {
    require_bpf_lsm();
    let dir = scratch("pin-kill");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("prod2/second.txt"), "precious too");
    let agent = "agent-pin";
    let mut d = Daemon::start(&dir, &policy(agent, &dir, None));
    let first = d.policy.clone();
    let first_pid = d.pid();
    let pin_dir = d.pin_dir.clone();
    assert!(
        pin_dir.join("gen-000001/links/lsm-path_unlink").exists(),
        "the LSM links are pinned"
    );
    assert!(pin_dir.join("gen-000001/maps/GOV_AGENTS").exists());
    assert!(pin_dir.join("gen-000001/progs/path_unlink").exists());
    let m = manifest(&pin_dir);
    assert!(
        m.starts_with("governor-pins format=1 generation=1 ")
            && m.contains(&format!(" pid={} ", d.pid())),
        "{m}"
    );
    assert_eperm(
        &run_as(&first, agent, &["rm", &p(&dir, "prod/db.sqlite")]),
        "while enforcing",
    );

    // An agent hammers the protected file from before the kill until the successor is ready;
    // it makes `hammering` after its first try, and the kill waits for that.
    let (stop, hammering) = (dir.join("stop-hammer"), dir.join("hammering"));
    let script = format!(
        "n=0; until [ -e '{stop}' ]; do n=$((n+1)); rm -f '{target}' 2>/dev/null && echo REMOVED; \
         [ $n = 1 ] && : > '{hammering}'; sleep 0.05; done; echo TRIES $n",
        stop = stop.display(),
        target = p(&dir, "prod/db.sqlite"),
        hammering = hammering.display()
    );
    let mut hammer = Command::new(governor_bin())
        .args(["run", "--policy"])
        .arg(&first)
        .args(["--agent", agent, "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the hammer");
    wait_for_ready(&mut hammer, &hammering, "the hammer's first try");

    d.kill();
    assert!(!d.alive());
    // Dead daemon: the agent is still refused, a non-agent is not, the network rule holds.
    assert_eperm(
        &run_as(&first, agent, &["rm", &p(&dir, "prod/db.sqlite")]),
        "after SIGKILL",
    );
    write(&dir.join("prod/host-made"), "x");
    assert_ok(
        &as_host(&["rm", &p(&dir, "prod/host-made")]),
        "non-agent rm after SIGKILL",
    );
    assert_eperm(
        &run_as(&first, agent, &connect_cmd()),
        "agent connect after SIGKILL",
    );
    let out = run_as(&first, agent, &["rm", &p(&dir, "prod2/second.txt")]);
    assert_ok(&out, "prod2 is not protected by the first policy");
    write(&dir.join("prod2/second.txt"), "precious too");

    // The successor enforces its own policy, which adds prod2.
    let d = d.successor(
        &dir,
        "policy2.toml",
        &policy(agent, &dir, Some("prod2")),
        &[],
    );
    write(&stop, "");
    let mut out = String::new();
    let mut stdout = hammer.stdout.take().expect("hammer stdout");
    stdout.read_to_string(&mut out).expect("hammer output");
    assert!(hammer.wait().expect("hammer").success());
    let tries: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("TRIES "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        !out.contains("REMOVED"),
        "the agent removed the file during the restart: {out}"
    );
    assert!(
        tries >= 5,
        "the hammer ran through the kill and restart: {out}"
    );
    assert!(dir.join("prod/db.sqlite").exists());

    let adopted = d.wait_logged("adopted pinned enforcement");
    assert_eq!(adopted["previous_generation"], 1, "{adopted}");
    assert_eq!(adopted["generation"], 2, "{adopted}");
    assert_eq!(adopted["same_build"], true, "{adopted}");
    assert_eq!(adopted["previous_pid"], first_pid, "{adopted}");
    let lsm_links = adopted["lsm_links"].as_u64().unwrap_or(0);
    assert!(lsm_links >= 30, "{adopted}");
    assert!(
        adopted["retired_links"]
            .as_u64()
            .is_some_and(|n| n > lsm_links),
        "the old LSM and network links were removed: {adopted}"
    );
    assert!(
        !pin_dir.join("gen-000001").exists(),
        "old generation unpinned"
    );
    assert!(manifest(&pin_dir).contains(" generation=2 "));
    // Exactly one generation attached.
    assert_eq!(
        loaded_programs_named("path_unlink", 1),
        1,
        "one path_unlink program"
    );
    assert_eq!(
        loaded_programs_named("connect4", 1),
        1,
        "one connect4 program"
    );

    let second = d.policy.clone();
    let mark = d.mark();
    assert_eperm(
        &run_as(&second, agent, &["rm", &p(&dir, "prod2/second.txt")]),
        "prod2 now",
    );
    let ev = d.wait_decision_after(mark, "the successor's event", |v| v["name"] == "second.txt");
    assert_eq!(ev["protected"], p(&dir, "prod2"), "{ev}");
    assert_eperm(
        &run_as(&second, agent, &connect_cmd()),
        "agent connect after restart",
    );

    // `governor unload` (the harness's stop) ends it all.
    d.stop();
    assert!(!pin_dir.exists());
    assert_eq!(
        loaded_programs_named("path_unlink", 0),
        0,
        "no governor program left"
    );
    assert_eq!(
        loaded_programs_named("connect4", 0),
        0,
        "no governor program left"
    );
    assert_ok(
        &run_as(&second, agent, &["rm", &p(&dir, "prod2/second.txt")]),
        "after unload",
    );
    assert_ok(
        &run_as(&second, agent, &["rm", &p(&dir, "prod/db.sqlite")]),
        "after unload",
    );
}

#[test]
fn pin_sigterm_keeps_enforcing_and_unload_waits_for_the_daemon() {
    require_bpf_lsm();
    let dir = scratch("pin-term");
    write(&dir.join("prod/db.sqlite"), "precious");
    let agent = "agent-pin-term";
    let mut d = Daemon::start(&dir, &policy(agent, &dir, None));
    let pol = d.policy.clone();

    // While the daemon runs, unload refuses (its open links would keep enforcing) and a
    // second daemon on the same pin directory refuses too.
    let out = Command::new(governor_bin())
        .args(["unload", "--pin-dir"])
        .arg(&d.pin_dir)
        .output()
        .expect("governor unload");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by a running governor daemon"),
        "{stderr}"
    );
    let out = Command::new(governor_bin())
        .args([
            "daemon",
            "--config-dir",
            governor_kernel_tests::TEST_CONFIG_DIR,
            "--policy",
        ])
        .arg(&pol)
        .arg("--pin-dir")
        .arg(&d.pin_dir)
        .output()
        .expect("second daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // It stops at the first resource the running daemon holds: the admin socket (bound
    // first), or the pin directory's lock.
    assert!(
        stderr.contains("another governor daemon is already listening")
            || stderr.contains("in use by a running governor daemon"),
        "{stderr}"
    );
    assert_eq!(
        loaded_programs_named("path_unlink", 1),
        1,
        "the refused daemon left nothing"
    );

    let log = d.stop_keeping_pins();
    assert!(
        log.iter()
            .any(|l| l.contains("stopped; enforcement stays pinned")),
        "{log:#?}"
    );
    assert_eperm(
        &run_as(&pol, agent, &["rm", &p(&dir, "prod/db.sqlite")]),
        "after SIGTERM",
    );
    assert_eperm(
        &run_as(&pol, agent, &connect_cmd()),
        "connect after SIGTERM",
    );

    let pin_dir = d.pin_dir.clone();
    drop(d); // `governor unload`, which must succeed now
    assert!(!pin_dir.exists());
    assert_ok(
        &run_as(&pol, agent, &["rm", &p(&dir, "prod/db.sqlite")]),
        "after unload",
    );
    // A second unload finds nothing, and says so.
    let out = governor_kernel_tests::unload(&pin_dir);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing pinned"));
}

#[test]
fn pin_other_builds_and_layouts_are_replaced_whole() {
    require_bpf_lsm();
    let dir = scratch("pin-foreign");
    write(&dir.join("prod/db.sqlite"), "precious");
    let agent = "agent-pin-foreign";
    let text = policy(agent, &dir, None);
    let mut d = Daemon::start(&dir, &text);
    let pol = d.policy.clone();
    let pin_dir = d.pin_dir.clone();
    let rewrite_manifest = |from: &str, to: &str| {
        let m = manifest(&pin_dir).replace(from, to);
        std::fs::remove_file(pin_dir.join("manifest")).expect("remove manifest");
        std::os::unix::fs::symlink(&m, pin_dir.join("manifest")).expect("write manifest");
    };

    // Another build of governor pinned this (its build id differs).
    d.kill();
    let m = manifest(&pin_dir);
    let build = m
        .split_whitespace()
        .find_map(|w| w.strip_prefix("build="))
        .expect("a build word")
        .to_owned();
    rewrite_manifest(&format!("build={build}"), "build=0123456789abcdef");
    let mut d = d.successor(&dir, "policy.toml", &text, &[]);
    let adopted = d.wait_logged("adopted pinned enforcement");
    assert_eq!(adopted["same_build"], false, "{adopted}");
    assert!(
        adopted["message"]
            .as_str()
            .is_some_and(|m| m.contains("replaced whole, nothing of it reused")),
        "{adopted}"
    );
    assert_eq!(loaded_programs_named("path_unlink", 1), 1);

    // A layout this governor cannot read (a future format): replaced, with a warning.
    d.kill();
    rewrite_manifest("format=1", "format=99");
    let d = d.successor(&dir, "policy.toml", &text, &[]);
    let replaced = d.wait_logged("replaced a pin set this governor cannot read");
    assert_eq!(replaced["level"], "WARN", "{replaced}");
    assert!(
        replaced["reason"]
            .as_str()
            .is_some_and(|r| r.contains("format 99")),
        "{replaced}"
    );
    assert!(
        replaced["retired_links"].as_u64().is_some_and(|n| n > 30),
        "{replaced}"
    );
    assert_eq!(loaded_programs_named("path_unlink", 1), 1);
    assert!(
        manifest(&pin_dir).contains(" generation=3 "),
        "{}",
        manifest(&pin_dir)
    );
    assert_eperm(
        &run_as(&pol, agent, &["rm", &p(&dir, "prod/db.sqlite")]),
        "still enforced",
    );

    // A process that is not a daemon (here a non-agent, as one that handed an agent the
    // descriptor would be) takes the pin directory's lock the moment the daemon dies. The
    // next daemon starts all the same, and says who held it.
    let mut d = d;
    let mut holder = hold(
        &pin_dir,
        "flock -x \"$0\" sh -c 'echo HELD; exec sleep 600'",
    );
    d.kill();
    wait_line(&mut holder, "HELD");
    let locks = std::fs::read_to_string("/proc/locks").expect("/proc/locks");
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&pin_dir).expect("pin dir"));
    assert!(
        locks
            .lines()
            .any(|l| l.contains("FLOCK") && l.contains(&format!(":{ino} "))),
        "the non-daemon holds the pin directory's flock: {locks}"
    );
    let d = d.successor(&dir, "policy.toml", &text, &[]);
    let bypassed = d.wait_logged("the pin directory's lock was held by");
    assert!(
        bypassed["holder"]
            .as_str()
            .is_some_and(|h| h.starts_with("pid ")),
        "{bypassed}"
    );
    assert_eq!(loaded_programs_named("path_unlink", 1), 1);
    assert_eperm(
        &run_as(&pol, agent, &["rm", &p(&dir, "prod/db.sqlite")]),
        "enforced by the daemon that started past the held lock",
    );
    // Two daemons stay exclusive: the recorded owner is alive, so unload refuses.
    let out = governor_kernel_tests::try_unload_output(&pin_dir);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("in use by a running governor daemon"),
        "{out:?}"
    );
    drop(holder);
}

/// A non-agent process holding something of governor's; killed when dropped (a failed
/// test must not leave it holding a bpf filesystem for the next one).
struct Holder(std::process::Child);

impl Holder {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `script` (`sh -c`, with `$0` = `path`) as a non-agent, stdout piped.
fn hold(path: &Path, script: &str) -> Holder {
    Holder(
        Command::new("sh")
            .args(["-c", script])
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the holder"),
    )
}

/// Reads the holder's stdout until a line `want`.
fn wait_line(holder: &mut Holder, want: &str) {
    use std::io::BufRead;
    let out = holder.0.stdout.as_mut().expect("stdout piped");
    let mut lines = std::io::BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.trim() == want => return,
            Some(Ok(_)) => {}
            other => panic!("the holder stopped before `{want}`: {other:?}"),
        }
    }
}

#[test]
fn pin_a_lazily_unmounted_pin_dir_leaves_exactly_one_generation() {
    require_bpf_lsm();
    let dir = scratch("pin-orphan");
    write(&dir.join("prod/db.sqlite"), "precious");
    let agent = "agent-pin-orphan";
    let text = policy(agent, &dir, None);
    let mut d = Daemon::start(&dir, &text);
    let pol = d.policy.clone();
    let pin_dir = d.pin_dir.clone();
    let bpffs = pin_dir.parent().expect("bpffs mount").to_path_buf();
    assert_eq!(bpffs, Path::new("/sys/fs/bpf"), "the default pin directory");
    // Something holds the bpf filesystem open: a non-agent's descriptor on the pin directory.
    let mut holder = hold(&pin_dir, "exec 3<\"$0\"; echo HELD; exec sleep 600");
    wait_line(&mut holder, "HELD");
    d.kill();
    assert_ok(
        &as_host(&["umount", "-l", &bpffs.display().to_string()]),
        "lazy unmount of the bpf filesystem",
    );
    // The pins are out of view; the held filesystem keeps the links attached.
    assert!(!pin_dir.exists(), "the pins vanished from view");
    assert_eq!(loaded_programs_named("path_unlink", 1), 1, "still attached");
    let out = run_as(&pol, agent, &["rm", &p(&dir, "prod/db.sqlite")]);
    assert_eperm(&out, "the orphaned generation still enforces");

    // The next daemon mounts a new bpf filesystem, finds the orphan, takes its ring over
    // and retires it: one generation is left, its own.
    let d = d.successor(&dir, "policy.toml", &text, &[]);
    assert_eq!(
        loaded_programs_named("path_unlink", 1),
        1,
        "one path_unlink program"
    );
    assert_eq!(
        loaded_programs_named("connect4", 1),
        1,
        "one connect4 program"
    );
    assert_eq!(
        loaded_programs_named("cgroup_mkdir", 1),
        1,
        "one cgroup_mkdir program"
    );
    let found = d.wait_logged("found an orphaned generation");
    assert!(
        found["links"]
            .as_str()
            .is_some_and(|l| l.contains("(path_unlink)")),
        "{found}"
    );
    let retired = d.wait_logged("orphaned generations retired");
    assert!(
        retired["message"]
            .as_str()
            .is_some_and(|m| m.contains("none left attached")),
        "{retired}"
    );
    assert!(
        retired["detached"].as_u64().is_some_and(|n| n > 0),
        "the network links were detached: {retired}"
    );
    assert!(
        retired["holders"]
            .as_str()
            .is_some_and(|h| h.contains(&format!("pid {}", holder.id()))),
        "the holder was named: {retired}"
    );
    // The refusal the orphan made while no daemon ran is in the lineage, named.
    let db = state_dir_for(&pin_dir).join("lineage.db");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("lineage db");
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE agent = ?1 AND path = ?2 AND decision = 'deny'",
            [agent, &p(&dir, "prod/db.sqlite")],
            |r| r.get(0),
        )
        .expect("rows");
    assert_eq!(
        rows, 1,
        "the refusal the orphan made, drained from its ring"
    );
    let mark = d.mark();
    assert_eperm(
        &run_as(&pol, agent, &["rm", &p(&dir, "prod/db.sqlite")]),
        "enforced by the new generation",
    );
    d.wait_decision_after(mark, "the new generation's event", |v| {
        v["name"] == "db.sqlite"
    });
    assert_eperm(&run_as(&pol, agent, &connect_cmd()), "agent connect");
    drop(holder);
}
