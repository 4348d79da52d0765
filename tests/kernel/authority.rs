//! Authority end to end: operators' keys, signed lease files, the daemon's checks on submit,
//! the kernel enforcing exactly what was signed, expiry and revocation, agents' requests
//! (which grant nothing until an operator signs), and the kill switch, which with `status`
//! stays within its time bounds under a flood of refusals. Time: a lease's start
//! and end are on the boot clock, so moving the wall clock neither starts a scheduled lease
//! early nor extends one, and neither does a daemon restart with the clock set back. Keys:
//! a secret key made on a host with a live daemon is registered with it and off limits to
//! agents, restarts included.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, governor_bin,
    operator::{err_stderr, governor, ok_stdout, submit, trusted_dir, Operator},
    pin_dir_for, require_bpf_lsm, scratch, state_dir_for, write, Daemon, DEFAULT_STATE_DIR,
};
use serde_json::Value;

const OPS_CGROUP: &str = "/sys/fs/cgroup/governor-test/ops";
/// A local "database" port whose connects the policy leases.
const DB_PORT: u16 = 15432;

fn policy(dir: &Path) -> String {
    format!(
        r#"
[policy]
name = "authority"
owner = "platform-team@example.com"

[[agents]]
name = "ops"
cgroup = "governor-test/ops"
max_lease_ttl = "1h"

[[agents]]
name = "other"
cgroup = "governor-test/other"

# Deletes here are reversible enough (backups): one operator may approve them.
[classes.delete]
decision = "lease"
approvals = 1

[classes.chmod]
reversibility = "reversible"
blast_radius = "high"
decision = "lease"
approvals = 2

[[protect]]
path = "{prod}"
lease = ["delete"]
deny = ["truncate"]

[[protect]]
path = "{vault}"
lease = ["chmod"]

[[network]]
cidr = "127.0.0.1"
ports = [{port}]
lease = ["connect"]
"#,
        port = DB_PORT,
        prod = dir.join("prod").display(),
        vault = dir.join("vault").display(),
    )
}

/// The `id` of lease file `file`.
fn lease_id(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("read lease");
    text.lines()
        .find_map(|l| {
            let v = l
                .trim()
                .strip_prefix("id")?
                .trim_start()
                .strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no id in {text}"))
}

/// The daemon's view of lease `id` (`governor lease list --all --json`).
fn lease_state(id: &str) -> Value {
    let out = ok_stdout(
        &governor(&["lease", "list", "--all", "--json"]),
        "lease list",
    );
    let v: Value = serde_json::from_str(&out).expect("lease list json");
    v["leases"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l["id"] == id).cloned())
        .unwrap_or_else(|| panic!("lease {id} not listed: {v}"))
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sleeps until the wall clock reads `ms` (unix milliseconds).
fn sleep_until_wall(ms: u64) {
    let now = wall_ms();
    if ms > now {
        thread::sleep(Duration::from_millis(ms - now));
    }
}

/// Refusals the halt test's flood must have caused before it measures.
const FLOOD: u64 = 2000;

/// Sends one request line to the daemon's admin socket; the reply line and the time from
/// the connect to the reply.
fn admin_round_trip(request: &str) -> (String, Duration) {
    use std::io::{BufRead, Write};
    let started = Instant::now();
    let mut conn =
        std::os::unix::net::UnixStream::connect("/run/governor/governor.sock").expect("connect");
    conn.write_all(format!("{request}\n").as_bytes())
        .expect("send");
    let mut reply = String::new();
    std::io::BufReader::new(&conn)
        .read_line(&mut reply)
        .expect("reply");
    (reply, started.elapsed())
}

/// `governor status --json`.
fn status_json() -> Value {
    let out = ok_stdout(&governor(&["status", "--json"]), "status");
    serde_json::from_str(&out).expect("status json")
}

/// Thaws the ops cgroup on drop, so a failed halt test cannot leave later tests frozen.
struct Thaw;

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("{OPS_CGROUP}/cgroup.freeze"), "0");
    }
}

#[test]
fn lsm_signed_leases_grant_exactly_what_was_signed_until_they_end() {
    require_bpf_lsm();
    let dir = scratch("authority-leases");
    for f in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        write(&dir.join("prod").join(f), "precious");
    }
    for d in ["sub1", "sub2"] {
        std::fs::create_dir_all(dir.join("vault").join(d)).expect("mkdir vault");
    }
    let _ = std::fs::remove_dir_all(trusted_dir());
    let alice = Operator::new(&dir, "alice", true);
    let bob = Operator::new(&dir, "bob", true);
    let mallory = Operator::new(&dir, "mallory", false);
    let d = Daemon::start(&dir, &policy(&dir));
    let prod = dir.join("prod");
    let p = |f: &str| s(&prod.join(f));

    // An operator's key made on this host while the daemon runs: the command warns that keys
    // belong elsewhere, and the daemon protects the secret file from agents at once (and
    // after the restart below).
    let carol = generate_here(&dir, "carol");
    let append_to = |f: &Path| format!("echo forged >> '{}'", f.display());
    assert_eperm(
        &d.as_agent("ops", &["sh", "-c", &append_to(&carol)]),
        "append to a registered secret key",
    );
    assert_eperm(
        &d.as_agent("ops", &["rm", &s(&carol)]),
        "rm a registered secret key",
    );
    assert_ok(
        &as_host(&["cat", &s(&carol)]),
        "the operator reads their key",
    );

    // Without a lease: refused, and the operator is shown the command that would allow it.
    assert_eperm(&d.as_agent("ops", &["rm", &p("a")]), "rm a without a lease");
    let ev = d.wait_decision("unlink a refused", |v| {
        v["path"] == p("a").as_str() && v["decision"] == "deny"
    });
    assert_eq!(ev["lease_required"], true, "{ev}");
    let hint = ev["lease_hint"].as_str().unwrap_or_default();
    assert!(
        hint.starts_with("governor lease issue")
            && hint.contains(&format!("--agent ops --scope unlink:{}", p("a"))),
        "{ev}"
    );

    // A key the daemon does not trust grants nothing.
    let m = mallory.issue(
        &dir.join("m.lease"),
        "ops",
        &[&format!("delete:{}", p("a"))],
        "5m",
    );
    let e = err_stderr(&submit(&m), "submit an untrusted lease");
    assert!(e.contains("trusted"), "{e}");
    assert_eperm(
        &d.as_agent("ops", &["rm", &p("a")]),
        "rm a after the untrusted lease",
    );

    // Alice's lease on `a`: exactly that agent, class and file.
    let l1 = alice.issue(
        &dir.join("l1.lease"),
        "ops",
        &[&format!("delete:{}", p("a"))],
        "5m",
    );
    let id1 = lease_id(&l1);
    let out = ok_stdout(&submit(&l1), "submit l1");
    assert!(
        out.contains(&format!("lease {id1} for agent ops: enforced since")),
        "{out}"
    );
    let e = err_stderr(&submit(&l1), "submit l1 again");
    assert!(
        e.contains("already submitted"),
        "replay must be refused: {e}"
    );
    assert_eperm(
        &d.as_agent("ops", &["rm", &p("b")]),
        "rm b: not in the scope",
    );
    assert_eperm(&d.as_agent("other", &["rm", &p("a")]), "another agent");
    assert_eperm(
        &d.as_agent("ops", &["truncate", "-s", "0", &p("a")]),
        "truncate: another class",
    );
    assert_ok(&d.as_agent("ops", &["rm", &p("a")]), "rm a under the lease");
    assert!(!prod.join("a").exists());
    let ev = d.wait_decision("lease-allow a", |v| {
        v["decision"] == "lease-allow" && v["path"] == p("a").as_str()
    });
    assert_eq!(ev["lease"], id1.as_str(), "{ev}");
    let status = ok_stdout(&governor(&["status"]), "status");
    assert!(
        status.contains(&id1),
        "status lists the live lease: {status}"
    );

    // Leases that could not grant anything are refused with the reason.
    let t = alice.issue(
        &dir.join("t.lease"),
        "ops",
        &[&format!("truncate:{}", p("b"))],
        "5m",
    );
    let e = err_stderr(&submit(&t), "a lease on a denied class");
    assert!(e.contains("cannot lift a deny"), "{e}");
    let n = alice.issue(
        &dir.join("n.lease"),
        "ops",
        &[&format!("delete:{}", s(&dir))],
        "5m",
    );
    let e = err_stderr(&submit(&n), "a lease above the protected path");
    assert!(e.contains("nothing to grant"), "{e}");
    let long = alice.issue(
        &dir.join("long.lease"),
        "ops",
        &[&format!("delete:{}", p("b"))],
        "2h",
    );
    let e = err_stderr(&submit(&long), "a lease longer than max_lease_ttl");
    assert!(e.to_lowercase().contains("ttl"), "{e}");

    // Expiry: refused again within a second of not_after (the kernel checks boot time). The
    // lifetime leaves room for a slow TCG guest between issue and the first use.
    let l2 = alice.issue(
        &dir.join("l2.lease"),
        "ops",
        &[&format!("delete:{}", s(&prod))],
        "10s",
    );
    ok_stdout(&submit(&l2), "submit l2");
    let not_after = lease_state(&lease_id(&l2))["not_after"]
        .as_u64()
        .expect("not_after");
    assert_ok(
        &d.as_agent("ops", &["rm", &p("c")]),
        "rm c under the directory lease",
    );
    sleep_until_wall(not_after * 1000 + 500);
    assert_eperm(
        &d.as_agent("ops", &["rm", &p("d")]),
        "rm d 0.5 s after expiry",
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while lease_state(&lease_id(&l2))["state"] != "expired" {
        assert!(
            Instant::now() < deadline,
            "the daemon did not record the expiry"
        );
        thread::sleep(Duration::from_millis(100));
    }

    // Revocation blocks again at once.
    let l3 = alice.issue(
        &dir.join("l3.lease"),
        "ops",
        &[&format!("delete:{}", s(&prod))],
        "10m",
    );
    ok_stdout(&submit(&l3), "submit l3");
    assert_ok(&d.as_agent("ops", &["rm", &p("d")]), "rm d under l3");
    let id3 = lease_id(&l3);
    let out = ok_stdout(
        &governor(&["lease", "revoke", &id3, "--reason", "done"]),
        "revoke",
    );
    assert!(out.contains("revoked"), "{out}");
    assert_eperm(
        &d.as_agent("ops", &["rm", &p("e")]),
        "rm e right after the revoke",
    );
    assert_eq!(lease_state(&id3)["state"], "revoked");

    // Two approvals for chmod in the vault: the issuer alone is not enough.
    let vault = dir.join("vault");
    let l4 = alice.issue(
        &dir.join("l4.lease"),
        "ops",
        &[&format!("chmod:{}", s(&vault.join("sub1")))],
        "5m",
    );
    let e = err_stderr(&submit(&l4), "one approval of two");
    assert!(e.contains("cosign"), "{e}");
    assert_eperm(
        &d.as_agent("ops", &["chmod", "700", &s(&vault.join("sub1"))]),
        "chmod with one approval",
    );
    bob.cosign(&l4);
    ok_stdout(&submit(&l4), "submit l4 with two approvals");
    assert_ok(
        &d.as_agent("ops", &["chmod", "700", &s(&vault.join("sub1"))]),
        "chmod sub1 with two approvals",
    );
    assert_eperm(
        &d.as_agent("ops", &["chmod", "700", &s(&vault.join("sub2"))]),
        "chmod sub2: not in the scope",
    );
    let signers = lease_state(&lease_id(&l4))["signers"].to_string();
    assert!(
        signers.contains("alice") && signers.contains("bob"),
        "{signers}"
    );

    // Network scopes name what a [[network]] rule covers; the lease is on that rule.
    let _db = std::net::TcpListener::bind(("127.0.0.1", DB_PORT)).expect("listen");
    let connect = format!("import socket; socket.create_connection(('127.0.0.1', {DB_PORT}))");
    assert_eperm(
        &d.as_agent("ops", &["python3", "-c", &connect]),
        "connect without a lease",
    );
    let ln = alice.issue(
        &dir.join("net.lease"),
        "ops",
        &[&format!("connect:127.0.0.1:{DB_PORT}")],
        "5m",
    );
    ok_stdout(&submit(&ln), "submit a network lease");
    assert_ok(
        &d.as_agent("ops", &["python3", "-c", &connect]),
        "connect under the network lease",
    );
    let stray = alice.issue(
        &dir.join("stray.lease"),
        "ops",
        &["connect:10.9.9.9:80"],
        "5m",
    );
    let e = err_stderr(&submit(&stray), "a network lease no rule covers");
    assert!(e.contains("no [[network]] rule"), "{e}");

    // Setting the wall clock back a day does not extend a lease: the kernel's deadline is on
    // the boot-time clock, fixed when the lease was installed.
    let start = Instant::now();
    let l5 = alice.issue(
        &dir.join("l5.lease"),
        "ops",
        &[&format!("delete:{}", s(&prod))],
        "8s",
    );
    ok_stdout(&submit(&l5), "submit l5");
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let set = |secs: u64| {
        let out = Command::new("date")
            .args(["-s", &format!("@{secs}")])
            .output()
            .expect("date -s");
        assert!(out.status.success(), "date -s: {out:?}");
    };
    set(before - 86_400);
    let allowed = d.as_agent("ops", &["rm", &p("f")]);
    // Issued after `start`, so its deadline lies at most 8 s after it.
    thread::sleep((start + Duration::from_millis(8500)).saturating_duration_since(Instant::now()));
    let refused = d.as_agent("ops", &["rm", &p("g")]);
    set(before + start.elapsed().as_secs() + 1);
    assert_ok(&allowed, "rm f under l5, with the clock a day back");
    assert_eperm(&refused, "rm g after l5 ran out, with the clock a day back");
    assert!(prod.join("g").exists());

    // A scheduled lease does not start early when the wall clock jumps forward: its start
    // is on the boot clock too, fixed at submit.
    let clock = WallClock::save();
    let starts = wall_ms() / 1000 + 20;
    let l6 = alice.issue_with(
        &dir.join("l6.lease"),
        "ops",
        &[&format!("delete:{}", p("g"))],
        "10m",
        &["--not-before", &rfc3339(starts)],
    );
    let id6 = lease_id(&l6);
    ok_stdout(&submit(&l6), "submit l6");
    assert_eq!(lease_state(&id6)["state"], "scheduled");
    // A root outside every agent moves the clock 2 minutes forward: past l6's not_before,
    // well before its not_after.
    clock.set(120);
    let jumped_ms = wall_ms();
    // Wait for the daemon's tick to have seen the jump: it raises its wall-clock mark (or,
    // without the boot-clock start, it installs l6).
    let deadline = Instant::now() + Duration::from_secs(10);
    while wall_mark_ms() < jumped_ms && lease_state(&id6)["state"] == "scheduled" {
        assert!(
            Instant::now() < deadline,
            "no lease tick after the clock jump"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let early = d.as_agent("ops", &["rm", &p("g")]);
    let state = lease_state(&id6)["state"].clone();
    clock.set(0);
    assert_eperm(
        &early,
        "rm g before l6's start, the wall clock 2 minutes ahead",
    );
    assert_eq!(state, "scheduled", "l6 before its start");
    // At its start on the boot clock it grants.
    sleep_until_wall(starts * 1000 + 300);
    assert_ok(&d.as_agent("ops", &["rm", &p("g")]), "rm g once l6 started");
    let deadline = Instant::now() + Duration::from_secs(3);
    while lease_state(&id6)["state"] != "enforced" {
        assert!(
            Instant::now() < deadline,
            "the daemon did not record l6's start"
        );
        thread::sleep(Duration::from_millis(100));
    }

    // A restart never extends a lease: l7 ends while no daemon runs, the wall clock is set
    // back an hour (by wall time l7 has an hour left), and the restarted daemon keeps it
    // expired.
    let l7 = alice.issue(
        &dir.join("l7.lease"),
        "ops",
        &[&format!("delete:{}", s(&prod))],
        "6s",
    );
    let id7 = lease_id(&l7);
    ok_stdout(&submit(&l7), "submit l7");
    assert_ok(&d.as_agent("ops", &["rm", &p("e")]), "rm e under l7");
    let not_after = lease_state(&id7)["not_after"].as_u64().expect("not_after");
    let mut d = d;
    d.stop_keeping_pins();
    sleep_until_wall(not_after * 1000 + 500);
    clock.set(-3600);
    let d = d.successor(&dir, "policy.toml", &policy(&dir), &[]);
    let revived = d.as_agent("ops", &["rm", &p("b")]);
    let key_write = d.as_agent("ops", &["sh", "-c", &append_to(&carol)]);
    let state = lease_state(&id7);
    clock.set(0);
    assert_eperm(
        &revived,
        "rm b after l7 ended, restarted with the clock an hour back",
    );
    assert_eperm(&key_write, "append to the registered key after a restart");
    assert!(prod.join("b").exists());
    assert_eq!(state["state"], "expired", "{state}");
    let last = &state["history"][state["history"].as_array().map_or(0, Vec::len) - 1];
    assert!(
        last["what"] == "expired"
            && last["detail"]
                .as_str()
                .is_some_and(|d| d.contains("same boot")),
        "{state}"
    );
    // The lineage has its end, and nothing after it.
    let db = state_dir_for(&pin_dir_for(&dir)).join("lineage.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let life = lifecycle(&db, &id7);
        if life.last().map(String::as_str) == Some("expired") {
            assert_eq!(life, ["issued", "submitted", "enforced", "expired"]);
            break;
        }
        assert!(Instant::now() < deadline, "lineage of {id7}: {life:?}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// The wall clock as it would read had nobody moved it, restored on drop (also when the test
/// fails): tests move it as a root outside every agent.
struct WallClock {
    at: SystemTime,
    since: Instant,
}

impl WallClock {
    fn save() -> WallClock {
        WallClock {
            at: SystemTime::now(),
            since: Instant::now(),
        }
    }

    /// Sets the wall clock `offset_secs` away from the true time.
    fn set(&self, offset_secs: i64) {
        let truth = self.at + self.since.elapsed();
        let t = if offset_secs >= 0 {
            truth + Duration::from_secs(offset_secs.unsigned_abs())
        } else {
            truth - Duration::from_secs(offset_secs.unsigned_abs())
        };
        let d = t.duration_since(UNIX_EPOCH).expect("after the epoch");
        let ts = libc::timespec {
            tv_sec: d.as_secs() as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        };
        // SAFETY: clock_settime reads the timespec we own.
        let rc = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) };
        assert_eq!(rc, 0, "clock_settime: {}", std::io::Error::last_os_error());
    }
}

impl Drop for WallClock {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// `secs` (unix) as RFC 3339 in UTC, as `lease issue --not-before` takes it.
fn rfc3339(secs: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    assert!(out.status.success(), "date: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The daemon's wall-clock high-water mark (unix ms; 0 if it has none).
fn wall_mark_ms() -> u64 {
    let file = Path::new(DEFAULT_STATE_DIR).join("wall-clock.json");
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["wall_ms"].as_u64())
        .unwrap_or(0)
}

/// The states of lease `id`'s lineage rows, in order.
fn lifecycle(db: &Path, id: &str) -> Vec<String> {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    c.prepare("SELECT state FROM lease_lifecycle WHERE lease_id = ?1 ORDER BY id")
        .and_then(|mut q| {
            q.query_map([id], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .unwrap_or_default()
}

#[test]
fn lsm_agent_requests_grant_nothing_until_signed_and_halt_freezes() {
    require_bpf_lsm();
    let dir = scratch("authority-requests");
    for f in ["x", "y", "z"] {
        write(&dir.join("prod").join(f), "precious");
    }
    std::fs::create_dir_all(dir.join("vault")).expect("mkdir vault");
    let _ = std::fs::remove_dir_all(trusted_dir());
    let alice = Operator::new(&dir, "alice", true);
    let d = Daemon::start(&dir, &policy(&dir));
    let _thaw = Thaw;
    let p = |f: &str| s(&dir.join("prod").join(f));
    let gov = s(&governor_bin());
    let request = |class: &str, target: &str| {
        d.as_agent(
            "ops",
            &[
                &gov, "request", "--class", class, "--target", target, "--reason", "clean up",
                "--ttl", "5m",
            ],
        )
    };

    // The agent asks; nothing is granted.
    let out = ok_stdout(&request("delete", &p("x")), "request delete x");
    assert!(out.contains("request r-1 filed"), "{out}");
    assert_eperm(
        &d.as_agent("ops", &["rm", &p("x")]),
        "rm x with only a request",
    );
    // Asking for what no lease can give is refused at once.
    let e = err_stderr(&request("truncate", &p("x")), "request a denied class");
    assert!(e.contains("cannot lift a deny"), "{e}");
    // Only agents file requests.
    let e = err_stderr(
        &governor(&[
            "request",
            "--class",
            "delete",
            "--target",
            &p("x"),
            "--reason",
            "r",
        ]),
        "request from outside every agent",
    );
    assert!(e.contains("only processes in agent cgroups"), "{e}");
    let out = ok_stdout(&governor(&["lease", "pending"]), "lease pending");
    assert!(
        out.contains("r-1") && out.contains("governor lease approve r-1 --key"),
        "{out}"
    );
    assert_eperm(
        &d.as_agent("ops", &["rm", &p("x")]),
        "rm x still only requested",
    );

    // An operator signs: now it is allowed.
    let out = ok_stdout(&alice.approve("r-1"), "approve r-1");
    assert!(out.contains("request r-1 approved"), "{out}");
    assert_ok(
        &d.as_agent("ops", &["rm", &p("x")]),
        "rm x after the approval",
    );
    let out = ok_stdout(&governor(&["lease", "list", "--json"]), "lease list");
    let leases: Value = serde_json::from_str(&out).expect("json");
    let approved = leases["leases"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l["request"] == "r-1").cloned())
        .unwrap_or_else(|| panic!("no lease for r-1: {leases}"));

    // A rejected request stays without effect.
    let out = ok_stdout(&request("delete", &p("y")), "request delete y");
    assert!(out.contains("r-2"), "{out}");
    ok_stdout(
        &governor(&["lease", "reject", "r-2", "--reason", "no"]),
        "reject r-2",
    );
    assert_eperm(
        &d.as_agent("ops", &["rm", &p("y")]),
        "rm y after the rejection",
    );
    let e = err_stderr(&alice.approve("r-2"), "approve a rejected request");
    assert!(e.contains("already rejected"), "{e}");

    // The kill switch: leases revoked and the cgroup frozen in one step.
    let ticks = dir.join("ticks");
    let mut ticker: Child = Command::new(governor_bin())
        .args(["run", "--policy"])
        .arg(&d.policy)
        .args(["--agent", "ops", "--", "sh", "-c"])
        .arg(format!(
            "while :; do echo t >> {}; sleep 0.05; done",
            s(&ticks)
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn ticker");
    let count = || {
        std::fs::read_to_string(&ticks)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() < 3 {
        assert!(Instant::now() < deadline, "the ticker does not tick");
        thread::sleep(Duration::from_millis(50));
    }
    // ...under a flood of refusals: the agent also loops on a denied unlink, each refusal an
    // event through the ring buffer, the decision sink and the lineage.
    let flood = format!(
        "import os\nwhile True:\n    try:\n        os.unlink({:?})\n    except OSError:\n        \
         pass\n",
        p("y")
    );
    let mut flooder: Child = Command::new(governor_bin())
        .args(["run", "--policy"])
        .arg(&d.policy)
        .args(["--agent", "ops", "--", "python3", "-c", &flood])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn flooder");
    let denied = || status_json()["counters"]["denied"].as_u64().unwrap_or(0);
    let before = denied();
    let deadline = Instant::now() + Duration::from_secs(60);
    while denied() < before + FLOOD {
        assert!(Instant::now() < deadline, "the flood does not flow");
        thread::sleep(Duration::from_millis(200));
    }
    // The admin socket answers `status` within 1 s: measured from this test's connect to
    // the reply, three times. The `governor status` command as a whole gets 5 s: under
    // QEMU TCG, with the flood on the one vCPU, the start of a debug build alone has taken
    // most of a second.
    for _ in 0..3 {
        let (reply, took) = admin_round_trip(r#"{"version":1,"command":"status"}"#);
        assert!(reply.contains(r#""ok":true"#), "{reply}");
        assert!(
            took <= Duration::from_secs(1),
            "status took {took:?} under the flood"
        );
    }
    let started = Instant::now();
    let st = status_json();
    let took = started.elapsed();
    assert!(
        st["counters"]["denied"].as_u64().unwrap_or(0) > before,
        "{st}"
    );
    assert!(
        took <= Duration::from_secs(5),
        "`governor status` took {took:?}"
    );
    // The kill switch: from the command's send to the agent frozen within 100 ms, as the
    // daemon reports it from the client's stamp; the whole command, process start and exit
    // included, within 5 s (as for `status` above: QEMU TCG).
    let started = Instant::now();
    let out = ok_stdout(
        &governor(&["halt", "--agent", "ops", "--reason", "incident"]),
        "halt",
    );
    let took = started.elapsed();
    let events = std::fs::read_to_string(format!("{OPS_CGROUP}/cgroup.events")).expect("events");
    assert!(events.contains("frozen 1"), "{events}");
    assert!(
        out.contains("halted ops: 1 leases revoked") && out.contains("cgroup frozen"),
        "{out}"
    );
    let reported_ms: f64 = out
        .split("cgroup frozen ")
        .nth(1)
        .and_then(|r| r.split(" ms after the command was sent").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no time from the send in {out:?}"));
    assert!(
        reported_ms <= 100.0,
        "frozen {reported_ms} ms after the command was sent: {out}"
    );
    assert!(
        reported_ms <= took.as_secs_f64() * 1000.0,
        "the report ({reported_ms} ms) cannot exceed the command ({took:?})"
    );
    assert!(took <= Duration::from_secs(5), "halt took {took:?}: {out}");
    flooder.kill().expect("kill the flooder");
    flooder.wait().expect("reap the flooder");
    let frozen_at = count();
    thread::sleep(Duration::from_millis(700));
    assert_eq!(count(), frozen_at, "a frozen agent must not run");
    assert_eq!(
        lease_state(approved["id"].as_str().unwrap_or("?"))["state"],
        "revoked"
    );
    let status = ok_stdout(&governor(&["status"]), "status");
    assert!(status.contains("HALTED"), "{status}");
    let l = alice.issue(
        &dir.join("h.lease"),
        "ops",
        &[&format!("delete:{}", p("z"))],
        "5m",
    );
    let e = err_stderr(&submit(&l), "a lease for a halted agent");
    assert!(e.contains("halted"), "{e}");

    let out = ok_stdout(&governor(&["resume", "--agent", "ops"]), "resume");
    assert!(out.contains("resumed ops"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() <= frozen_at {
        assert!(
            Instant::now() < deadline,
            "the ticker did not run again after resume"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eperm(
        &d.as_agent("ops", &["rm", &p("z")]),
        "the halt revoked the lease",
    );

    // --kill empties the cgroup.
    let out = ok_stdout(
        &governor(&["halt", "--agent", "ops", "--kill"]),
        "halt --kill",
    );
    assert!(out.contains("cgroup emptied"), "{out}");
    let status = ticker.wait().expect("ticker ends");
    assert!(!status.success(), "the ticker was killed: {status}");
    ok_stdout(
        &governor(&["resume", "--agent", "ops"]),
        "resume after kill",
    );

    // A registered secret key cannot even be read by an agent; its operator reads it.
    let dave = generate_here(&dir, "dave");
    assert_ok(
        &as_host(&["cat", &s(&dave)]),
        "the operator reads their key",
    );
    assert_eperm(
        &d.as_agent("ops", &["cat", &s(&dave)]),
        "an agent reads a registered secret key",
    );
}

/// `governor key generate` for `name` while the daemon runs: checks its warning and that
/// the daemon took the secret key under protection; the secret key's path.
fn generate_here(dir: &Path, name: &str) -> std::path::PathBuf {
    let secrets = dir.join(format!("keys-{name}"));
    let out = governor(&[
        "key",
        "generate",
        "--operator",
        &format!("{name} <{name}@example.com>"),
        "--secret-dir",
        &s(&secrets),
        "--trusted-dir",
        &s(&dir.join(format!("untrusted-{name}"))),
    ]);
    ok_stdout(&out, &format!("key generate for {name}"));
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("a governor daemon runs on this host")
            && warning.contains("Operator keys belong on a machine where no agent runs")
            && warning.contains("the daemon protects"),
        "{warning}"
    );
    std::fs::read_dir(&secrets)
        .expect("secret dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .unwrap_or_else(|| panic!("no .key file in {}", secrets.display()))
}
