//! The simulate rung for policies: an agent that records everything (`record = "all"`) has
//! its allowed file changes in the lineage beside its refusals; `governor simulate` re-decides
//! that history under a candidate policy and reports exactly what the candidate would now
//! refuse, nothing for a candidate identical to the live policy; `governor policy reload
//! --simulate` shows the same before it swaps. An agent that records decisions only (the
//! default) leaves no allowed operation behind.

use std::path::Path;

use governor_kernel_tests::{
    assert_eperm, assert_ok,
    operator::{governor, ok_stdout},
    pin_dir_for, require_bpf_lsm, scratch, state_dir_for, write, Daemon,
};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// The live policy: agent `sim` records everything, `quiet` only decisions; `data` allows
/// chmod and write (delete and rename keep their built-in deny). With `chmod_denied`, the
/// candidate that also denies chmod there.
fn policy(dir: &Path, chmod_denied: bool) -> String {
    let lists = if chmod_denied {
        r#"allow = ["write"]
deny = ["chmod"]"#
    } else {
        r#"allow = ["write", "chmod"]"#
    };
    format!(
        r#"[policy]
name = "simulate"
owner = "kernel-tests@example.com"

[[agents]]
name = "sim"
cgroup = "governor-test/sim"
record = "all"

[[agents]]
name = "quiet"
cgroup = "governor-test/quiet"

[[protect]]
path = "{}"
{lists}
"#,
        dir.join("data").display()
    )
}

/// (decision, class, path, rule) of agent `agent`'s events, in order.
fn events(db: &Path, agent: &str) -> Vec<(String, String, String, String)> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("db");
    let mut st = c
        .prepare(
            "SELECT decision, class, coalesce(path, ''), coalesce(rule, '') FROM events \
             WHERE agent = ?1 ORDER BY id",
        )
        .expect("prepare");
    st.query_map([agent], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .and_then(|rows| rows.collect())
    .expect("events")
}

fn simulate(db: &Path, candidate: &Path) -> Value {
    let out = governor(&[
        "simulate",
        "--policy",
        &candidate.display().to_string(),
        "--db",
        &db.display().to_string(),
        "--json",
    ]);
    serde_json::from_str(&ok_stdout(&out, "simulate")).expect("simulate --json")
}

#[test]
fn lsm_simulate_reports_what_a_candidate_policy_would_refuse() {
    require_bpf_lsm();
    let dir = scratch("simulate");
    for f in ["a", "b", "c", "q"] {
        write(&dir.join("data").join(f), "precious");
    }
    write(&dir.join("free/f"), "scratch");
    let d = Daemon::start(&dir, &policy(&dir, false));
    let p = |f: &str| dir.join(f).display().to_string();

    assert_ok(
        &d.as_agent("sim", &["chmod", "600", &p("data/a")]),
        "chmod data/a",
    );
    assert_ok(
        &d.as_agent(
            "sim",
            &["sh", "-c", &format!("echo more >> {}", p("data/b"))],
        ),
        "append to data/b",
    );
    assert_ok(
        &d.as_agent("sim", &["chmod", "600", &p("free/f")]),
        "chmod free/f",
    );
    assert_eperm(&d.as_agent("sim", &["rm", &p("data/c")]), "rm data/c");
    // Allowed at its source, refused at its destination: recorded as the refusal.
    write(&dir.join("free/g"), "moving");
    assert_eperm(
        &d.as_agent("sim", &["mv", "-T", &p("free/g"), &p("data/c")]),
        "mv free/g over data/c",
    );
    assert_ok(
        &d.as_agent("quiet", &["chmod", "600", &p("data/q")]),
        "quiet chmod",
    );
    // A clean stop commits every record before the daemon exits; the history is copied out,
    // as the next daemon of a test starts from a fresh state directory.
    let lines = d.stop();
    let live = state_dir_for(&pin_dir_for(&dir)).join("lineage.db");
    let db = dir.join("history.db");
    Connection::open_with_flags(&live, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.execute("VACUUM INTO ?1", [db.display().to_string()]))
        .expect("copy the lineage");

    let sim = events(&db, "sim");
    let has = |decision: &str, class: &str, path: &str, rule: &str| {
        sim.iter()
            .any(|e| e.0 == decision && e.1 == class && e.2 == path && e.3.starts_with(rule))
    };
    assert!(has("allow", "chmod", &p("data/a"), &p("data")), "{sim:#?}");
    assert!(has("allow", "write", &p("data/b"), &p("data")), "{sim:#?}");
    assert!(has("allow", "chmod", &p("free/f"), "(none:"), "{sim:#?}");
    assert!(has("deny", "unlink", &p("data/c"), &p("data")), "{sim:#?}");
    let renames: Vec<_> = sim.iter().filter(|e| e.1 == "rename").collect();
    assert!(
        !renames.is_empty() && renames.iter().all(|e| e.0 == "deny"),
        "the refused rename is recorded as refused, never as allowed: {sim:#?}"
    );
    let lost: i64 = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT (SELECT coalesce(sum(kernel_dropped), 0) FROM rings) + \
                 (SELECT coalesce(sum(lost), 0) FROM gaps)",
                [],
                |r| r.get(0),
            )
        })
        .expect("gaps");
    assert_eq!(
        lost, 0,
        "an allow giving way to a refusal is not a lost event"
    );
    let chmods = sim.iter().filter(|e| e.1 == "chmod").count();
    assert_eq!(chmods, 2, "one record per chmod: {sim:#?}");
    let quiet = events(&db, "quiet");
    assert!(
        quiet.is_empty(),
        "`quiet` records decisions only: {quiet:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("the agent records everything")),
        "recorded allows go to the lineage, not the log"
    );

    // The candidate identical to the live policy changes nothing.
    let same = dir.join("same.toml");
    write(&same, &policy(&dir, false));
    let r = simulate(&db, &same);
    assert_eq!(r["changes"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["without_recorded_policy"], 0, "{r:#}");
    let total = r["operations"].as_u64().expect("operations");
    assert_eq!(total as usize, sim.len(), "{r:#}");
    assert_eq!(
        r["unchanged"].as_u64().unwrap() + r["fixed"].as_u64().unwrap(),
        total
    );

    // The candidate that denies chmod on data reports exactly the chmod of data/a.
    let tighter = dir.join("tighter.toml");
    write(&tighter, &policy(&dir, true));
    let r = simulate(&db, &tighter);
    let changes = r["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{r:#}");
    let c = &changes[0];
    assert_eq!(
        (
            &c["agent"],
            &c["class"],
            &c["before"],
            &c["after"],
            &c["count"]
        ),
        (
            &Value::from("sim"),
            &Value::from("chmod"),
            &Value::from("allow"),
            &Value::from("deny"),
            &Value::from(1)
        ),
        "{r:#}"
    );
    assert_eq!(c["examples"], serde_json::json!([p("data/a")]), "{r:#}");

    // `policy reload --simulate` shows the same, then swaps: the chmod is refused from then on.
    let d = Daemon::start(&dir, &policy(&dir, false));
    let out = governor(&[
        "policy",
        "reload",
        "--policy",
        &tighter.display().to_string(),
        "--simulate",
        "--db",
        &db.display().to_string(),
    ]);
    let text = ok_stdout(&out, "policy reload --simulate");
    let row = text
        .lines()
        .find(|l| l.starts_with("sim ") && l.contains("chmod"))
        .unwrap_or_else(|| panic!("no chmod line in {text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols, ["sim", "chmod", "allow", "deny", "1"], "{text}");
    assert!(text.contains("policy reloaded from"), "{text}");
    assert_eperm(
        &d.as_agent("sim", &["chmod", "644", &p("data/a")]),
        "chmod after reload",
    );
    d.stop();
}
