//! The lineage pipeline end to end: a decision the kernel makes shows up as a row of
//! `events` in the daemon's lineage database (default `<state-dir>/lineage.db`), with the
//! path and executable the kernel resolved, the agent, the decision and the policy version.
//! Across a daemon crash too: decisions made while the daemon was stopped, still in its
//! pinned ring when it was killed, become rows when the next daemon starts, attributed to
//! the policy they were decided under, and every loss is a number.

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
    let mut d = Daemon::start(&dir, &policy("agent-lin", "enforce", &dir.join("prod")));
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

    // The crash: the daemon is stopped, the agent is refused 1,000 times, the daemon is
    // killed. Its successor runs another policy version.
    let flood = dir.join("prod/flood.db");
    write(&flood, "precious");
    let flood_path = flood.display().to_string();
    let first_version = version.clone();
    let daemon = d.pid();
    // SAFETY: plain kill(2) on the daemon this test started.
    assert_eq!(
        unsafe { libc::kill(daemon as i32, libc::SIGSTOP) },
        0,
        "SIGSTOP"
    );
    assert_eq!(wait_state(daemon, 'T'), 'T', "the daemon is stopped");
    let code = format!(
        "import os\nn = 0\nfor _ in range(1000):\n    try:\n        os.unlink({flood_path:?})\n    \
         except PermissionError:\n        n += 1\nprint(n)"
    );
    let out = d.as_agent("agent-lin", &["python3", "-c", &code]);
    assert_ok(&out, "the flood of refused unlinks");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1000",
        "{out:?}"
    );
    assert_eq!(
        wait_state(daemon, 'T'),
        'T',
        "the daemon stayed stopped through the flood"
    );
    d.kill();
    let second = policy("agent-lin", "enforce", &dir.join("prod")) + "\n# the next version\n";
    let d = d.successor(&dir, "policy2.toml", &second, &[]);
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("db");
    let (rows, agents, rules, versions): (i64, String, String, String) = conn
        .query_row(
            "SELECT count(*), group_concat(DISTINCT agent), group_concat(DISTINCT rule), \
             group_concat(DISTINCT policy_version) FROM events WHERE path = ?1 AND \
             decision = 'deny' AND class = 'unlink'",
            [&flood_path],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("flood rows");
    assert_eq!(
        rows, 1000,
        "every refusal made while the daemon was stopped is a row"
    );
    assert_eq!(agents, "agent-lin");
    assert_eq!(rules, dir.join("prod").display().to_string());
    assert_eq!(
        versions, first_version,
        "decided under the first daemon's policy"
    );
    // The process that made them started while the daemon was stopped: its exec record too
    // came from the old generation's pinned process ring.
    let exe: String = conn
        .query_row(
            "SELECT p.exe FROM processes p JOIN events e ON p.boot_id = e.boot_id \
             AND p.pid = e.tgid WHERE e.path = ?1 LIMIT 1",
            [&flood_path],
            |r| r.get(0),
        )
        .expect("the refusing process's row");
    assert!(exe.contains("python3"), "{exe}");
    let mut st = conn
        .prepare("SELECT source, lost, detail FROM gaps WHERE source = 'downtime'")
        .expect("gaps");
    let gaps: Vec<(String, i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .expect("gap rows");
    assert_eq!(
        gaps.len(),
        1,
        "one downtime gap for the killed daemon: {gaps:?}"
    );
    let (_, lost, detail) = &gaps[0];
    assert_eq!(*lost, 0, "nothing was lost: {detail}");
    assert!(
        detail.contains(&format!("(pid {daemon}) did not stop cleanly: 0 decisions"))
            && detail.contains("drained 1000 decisions")
            && !detail.contains("unknown"),
        "{detail}"
    );
    let unnumbered: i64 = conn
        .query_row(
            "SELECT count(*) FROM gaps WHERE detail LIKE '%unknown%'",
            [],
            |r| r.get(0),
        )
        .expect("gaps");
    assert_eq!(unnumbered, 0, "every gap has a number");
    drop(st);
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
    assert_eq!(
        open, 1,
        "the killed daemon's run stays open; the clean stop marks its own"
    );
}

/// Waits up to 5 s for process `pid` to be in state `want` (`T`: stopped); returns the state
/// last seen.
fn wait_state(pid: u32, want: char) -> char {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .unwrap_or('?');
        if state == want || Instant::now() > deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
