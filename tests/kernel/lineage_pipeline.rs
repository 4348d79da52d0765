//! The lineage pipeline end to end: a decision the kernel makes shows up as a row of
//! `events` in the daemon's lineage database (default `<state-dir>/lineage.db`), with the
//! path and executable the kernel resolved, the agent, the decision and the policy version.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use governor_kernel_tests::{
    assert_eperm, assert_ok, governor_bin, pin_dir_for, policy, require_bpf_lsm, scratch,
    state_dir_for, write, Daemon,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// A denied row's columns.
type Row = (
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

fn denied_row(db: &Path, path: &str) -> Option<Row> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn.query_row(
        "SELECT agent, path, exe, decision, class, policy_version FROM events \
         WHERE path = ?1 AND decision = 'deny'",
        [path],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )
    .optional()
    .unwrap_or_else(|e| panic!("querying {}: {e}", db.display()))
}

#[test]
fn lsm_a_denied_rm_is_a_row_in_the_lineage_db() {
    require_bpf_lsm();
    let dir = scratch("lineage-pipeline");
    write(&dir.join("prod/db.sqlite"), "precious");
    let d = Daemon::start(&dir, &policy("agent-lin", "enforce", &dir.join("prod")));
    let db = state_dir_for(&pin_dir_for(&dir)).join("lineage.db");
    let target = dir.join("prod/db.sqlite").display().to_string();

    let out = d.as_agent("agent-lin", &["rm", &target]);
    assert_eperm(&out, "agent rm prod/db.sqlite");
    let logged = d.wait_decision("deny unlink db.sqlite", |v| {
        v["decision"] == "deny" && v["name"] == "db.sqlite"
    });

    // The writer commits within milliseconds; allow the VM's slowness.
    let deadline = Instant::now() + Duration::from_secs(10);
    let row = loop {
        if let Some(row) = denied_row(&db, &target) {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "no events row for the denied rm of {target} in {}",
            db.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (agent, path, exe, decision, class, version) = row;
    assert_eq!(agent, "agent-lin");
    assert_eq!(path.as_deref(), Some(target.as_str()));
    assert_eq!(exe.as_deref(), logged["exe"].as_str(), "{logged}");
    assert!(exe.is_some_and(|e| e.ends_with("/rm")), "exe of the row");
    assert_eq!(decision, "deny");
    assert_eq!(class, "unlink");
    let status = Command::new(governor_bin())
        .args(["status", "--json"])
        .output()
        .expect("governor status");
    assert_ok(&status, "governor status --json");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(version, status["policy"]["version"].as_str().unwrap_or("?"));
    assert!(!version.is_empty());
    // The daemon's run is noted; the decisions are not duplicated.
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("db");
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE path = ?1",
            [&target],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
    let runs: i64 = conn
        .query_row(
            "SELECT count(*) FROM runs WHERE stopped_ns IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("runs");
    assert_eq!(runs, 1, "this daemon's run is open");
    drop(conn);
    d.stop();
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("db");
    let open: i64 = conn
        .query_row(
            "SELECT count(*) FROM runs WHERE stopped_ns IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("runs");
    assert_eq!(open, 0, "a clean stop marks the run stopped");
}
