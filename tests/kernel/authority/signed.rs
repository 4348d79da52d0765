//! Signed leases end to end: the daemon's checks on submit, the kernel enforcing exactly what
//! was signed, expiry and revocation, and time on the boot clock (moving the wall clock neither
//! starts a scheduled lease early nor extends one, nor does a restart with the clock set back).

use super::*;

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
            // Its scope deletes files: the snapshot is taken before the entries go in.
            assert_eq!(
                life,
                ["issued", "submitted", "snapshotted", "enforced", "expired"]
            );
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
