//! The lineage of authority, end to end: after an agent's request, an operator's approval,
//! the agent's retry under the lease, a refused lease, a rejected request, a revoked lease,
//! and a halt and resume, the daemon's lineage database holds the policy with its owner,
//! the trusted key, the leases with their signers, each lease's and request's life in
//! order, the halts with their measured time to enforcement, and the allowed delete with
//! the lease that allowed it. One daemon start for all of it.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use governor_kernel_tests::{
    assert_eperm, assert_ok, governor_bin,
    operator::{err_stderr, governor, ok_stdout, submit, trusted_dir, Operator},
    pin_dir_for, require_bpf_lsm, scratch, state_dir_for, write, Daemon,
};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

const CGROUP: &str = "/sys/fs/cgroup/governor-test/lin";

fn policy(dir: &Path) -> String {
    format!(
        r#"
[policy]
name = "lineage-authority"
owner = "incident-owners@example.com"

[[agents]]
name = "lin"
cgroup = "governor-test/lin"
max_lease_ttl = "1h"

[classes.delete]
decision = "lease"
approvals = 1

[[protect]]
path = "{}"
lease = ["delete"]
"#,
        dir.join("prod").display()
    )
}

/// Thaws the agent's cgroup on drop, so a failed test cannot leave later tests frozen.
struct Thaw;

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("{CGROUP}/cgroup.freeze"), "0");
    }
}

/// Runs `query` (one integer) on the lineage database until it gives at least `want`, for
/// up to 30 s (the writer commits in batches).
fn wait_count(db: &Path, query: &str, want: i64) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).and_then(|c| {
            let n: i64 = c.query_row(query, [], |r| r.get(0))?;
            Ok((c, n))
        });
        match got {
            Ok((c, n)) if n >= want => return c,
            other => {
                let seen = other
                    .map(|(_, n)| n.to_string())
                    .unwrap_or_else(|e| e.to_string());
                assert!(
                    Instant::now() < deadline,
                    "{}: `{query}` gave {seen}, want at least {want}",
                    db.display()
                );
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// (state, actor, detail) of `where_`'s lifecycle rows, in the order they were recorded.
fn life(c: &Connection, where_: &str, arg: &str) -> Vec<(String, Option<String>, Option<String>)> {
    c.prepare(&format!(
        "SELECT state, actor, detail FROM lease_lifecycle WHERE {where_} ORDER BY id"
    ))
    .expect("prepare")
    .query_map([arg], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

fn states(rows: &[(String, Option<String>, Option<String>)]) -> Vec<&str> {
    rows.iter().map(|r| r.0.as_str()).collect()
}

#[test]
fn lsm_lineage_records_every_act_of_authority() {
    require_bpf_lsm();
    let dir = scratch("lineage-authority");
    for f in ["x", "y", "z"] {
        write(&dir.join("prod").join(f), "precious");
    }
    let _ = std::fs::remove_dir_all(trusted_dir());
    let alice = Operator::new(&dir, "alice", true);
    let mallory = Operator::new(&dir, "mallory", false);
    let d = Daemon::start(&dir, &policy(&dir));
    let _thaw = Thaw;
    let db = state_dir_for(&pin_dir_for(&dir)).join("lineage.db");
    let p = |f: &str| dir.join("prod").join(f).display().to_string();
    let gov = governor_bin().display().to_string();
    let request = |target: &str| {
        d.as_agent(
            "lin",
            &[
                &gov, "request", "--class", "delete", "--target", target, "--reason", "tidy up",
                "--ttl", "10m",
            ],
        )
    };

    // request → approve → retry under the lease.
    let out = ok_stdout(&request(&p("x")), "request delete x");
    assert!(out.contains("r-1"), "{out}");
    assert_eperm(&d.as_agent("lin", &["rm", &p("x")]), "rm x, only requested");
    ok_stdout(&alice.approve("r-1"), "approve r-1");
    assert_ok(&d.as_agent("lin", &["rm", &p("x")]), "rm x under the lease");
    let list: Value = serde_json::from_str(&ok_stdout(
        &governor(&["lease", "list", "--json"]),
        "lease list",
    ))
    .expect("json");
    let l1 = list["leases"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l["request"] == "r-1"))
        .and_then(|l| l["id"].as_str())
        .unwrap_or_else(|| panic!("no lease for r-1: {list}"))
        .to_owned();

    // A lease signed by an untrusted key is refused.
    let bad = mallory.issue(
        &dir.join("bad.lease"),
        "lin",
        &[&format!("delete:{}", p("y"))],
        "5m",
    );
    let refusal = err_stderr(&submit(&bad), "an untrusted issuer");
    // A rejected request.
    ok_stdout(&request(&p("y")), "request delete y");
    ok_stdout(
        &governor(&["lease", "reject", "r-2", "--reason", "not today"]),
        "reject r-2",
    );
    // A lease submitted and revoked.
    let l2_file = alice.issue(
        &dir.join("l2.lease"),
        "lin",
        &[&format!("delete:{}", p("z"))],
        "5m",
    );
    let l2: Value = serde_json::from_str(&ok_stdout(
        &governor(&["lease", "submit", &l2_file.display().to_string(), "--json"]),
        "submit l2",
    ))
    .expect("json");
    let l2 = l2["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {l2}"))
        .to_owned();
    ok_stdout(
        &governor(&["lease", "revoke", &l2, "--reason", "changed my mind"]),
        "revoke l2",
    );
    // Halt (revoking l1) and resume.
    ok_stdout(
        &governor(&["halt", "--agent", "lin", "--reason", "drill"]),
        "halt",
    );
    ok_stdout(&governor(&["resume", "--agent", "lin"]), "resume");

    let c = wait_count(&db, "SELECT count(*) FROM halts WHERE action = 'resume'", 1);

    // The policy, with its owner and text.
    let (owner, text): (String, String) = c
        .query_row(
            "SELECT owner, text FROM policies WHERE name = 'lineage-authority'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("policy row");
    assert_eq!(owner, "incident-owners@example.com");
    assert!(text.contains("incident-owners@example.com"), "{text}");
    // The trusted key (and not the untrusted one).
    let keys: Vec<String> = c
        .prepare("SELECT operator FROM keys")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(keys, ["alice <alice@example.com>"]);

    // The approved lease, its signer, and its life in order.
    let (request_id, scopes): (Option<String>, String) = c
        .query_row(
            "SELECT request_id, scopes FROM leases WHERE id = ?1",
            [&l1],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("lease row");
    assert_eq!(request_id.as_deref(), Some("r-1"));
    assert!(scopes.contains(&p("x")), "{scopes}");
    let signers: Vec<(String, String)> = c
        .prepare("SELECT operator, role FROM lease_signatures WHERE lease_id = ?1")
        .expect("prepare")
        .query_map([&l1], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        signers,
        [("alice <alice@example.com>".to_owned(), "issuer".to_owned())]
    );
    let r1 = life(&c, "request_id = ?1", "r-1");
    assert_eq!(
        states(&r1),
        // A delete scope: its snapshot is taken after the checks, before the entries.
        [
            "requested",
            "issued",
            "submitted",
            "snapshotted",
            "enforced",
            "revoked"
        ],
        "{r1:?}"
    );
    assert_eq!(r1[0].1.as_deref(), Some("agent:lin"));
    assert_eq!(r1[1].1.as_deref(), Some("alice <alice@example.com>"));
    assert_eq!(r1[2].1.as_deref(), Some("uid:0"));
    assert!(
        r1[5].2.as_deref().unwrap_or("").contains("halt: drill"),
        "{r1:?}"
    );
    // The rejected request, the refused lease, the revoked one.
    let r2 = life(&c, "request_id = ?1", "r-2");
    assert_eq!(states(&r2), ["requested", "rejected"], "{r2:?}");
    assert!(r2[1].2.as_deref().unwrap_or("").contains("not today"));
    let refused = life(&c, "state = ?1", "refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    let detail: Value =
        serde_json::from_str(refused[0].2.as_deref().unwrap_or("{}")).expect("json");
    let error = detail["error"].as_str().unwrap_or("");
    assert!(
        !error.is_empty() && refusal.contains(error),
        "{error:?} vs {refusal:?}"
    );
    let rev = life(&c, "lease_id = ?1", &l2);
    assert_eq!(
        states(&rev),
        ["issued", "submitted", "snapshotted", "enforced", "revoked"],
        "{rev:?}"
    );
    assert!(rev[4]
        .2
        .as_deref()
        .unwrap_or("")
        .contains("changed my mind"));
    assert_eq!(rev[4].1.as_deref(), Some("uid:0"));

    // The halt and the resume, with their measured time to enforcement.
    let halts: Vec<(String, String, i64, Option<i64>)> = c
        .prepare("SELECT action, agents, leases_revoked, enforce_ns FROM halts ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(halts.len(), 2, "{halts:?}");
    assert_eq!(
        (halts[0].0.as_str(), halts[0].1.as_str(), halts[0].2),
        ("freeze", r#"["lin"]"#, 1)
    );
    assert!(halts[0].3.is_some_and(|ns| ns > 0), "{halts:?}");
    assert_eq!(halts[1].0, "resume");

    // The delete the lease allowed, with the lease's id.
    let c = wait_count(
        &db,
        &format!(
            "SELECT count(*) FROM events WHERE decision = 'lease-allow' AND lease_id = '{l1}'"
        ),
        1,
    );
    let path: Option<String> = c
        .query_row("SELECT path FROM events WHERE lease_id = ?1", [&l1], |r| {
            r.get(0)
        })
        .expect("event");
    assert_eq!(path.as_deref(), Some(p("x").as_str()));

    // The responder's view: `governor lineage trace` of the leased rm names the lease, its
    // signer, its request's life and the policy's owner.
    let id: i64 = c
        .query_row("SELECT id FROM events WHERE lease_id = ?1", [&l1], |r| {
            r.get(0)
        })
        .expect("event id");
    let out = std::process::Command::new(governor_bin())
        .args(["lineage", "trace", &id.to_string(), "--json", "--db"])
        .arg(&db)
        .output()
        .expect("spawn governor lineage trace");
    assert!(out.status.success(), "lineage trace: {out:?}");
    let t: Value = serde_json::from_slice(&out.stdout).expect("trace is JSON");
    assert_eq!(t["cause"]["kind"], "lease", "{t}");
    assert_eq!(t["cause"]["lease"]["id"], l1.as_str(), "{t}");
    let signers: Vec<(&str, &str)> = t["cause"]["lease"]["signers"]
        .as_array()
        .expect("signers")
        .iter()
        .filter_map(|s| Some((s["operator"].as_str()?, s["role"].as_str()?)))
        .collect();
    assert_eq!(signers, [("alice <alice@example.com>", "issuer")], "{t}");
    let steps: Vec<&str> = t["cause"]["lease"]["lifecycle"]
        .as_array()
        .expect("lifecycle")
        .iter()
        .filter_map(|s| s["state"].as_str())
        .collect();
    // `issued` is dated by the issuer's signature, in whole seconds, so it may sort just
    // before the request it answers; the rest of the life is in order.
    for state in [
        "requested",
        "issued",
        "submitted",
        "snapshotted",
        "enforced",
        "revoked",
    ] {
        assert!(steps.contains(&state), "{state} missing: {t}");
    }
    let at = |s: &str| steps.iter().position(|x| *x == s);
    assert!(at("requested") < at("submitted"), "{t}");
    assert!(at("submitted") < at("snapshotted"), "{t}");
    assert!(at("snapshotted") < at("enforced"), "{t}");
    assert!(at("enforced") < at("revoked"), "{t}");
    assert_eq!(t["policy"]["owner"], "incident-owners@example.com", "{t}");
    drop(d);
}
