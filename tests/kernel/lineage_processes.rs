//! The lineage's process records: a denied `rm` run two shells deep in an agent links, through
//! the `processes` table, to its whole ancestry up to the agent's root process and the process
//! that launched the agent; exits are recorded; a process already running in the agent when
//! the daemon started is there too (the `/proc` snapshot).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use governor_kernel_tests::{
    governor_bin, policy, require_bpf_lsm, scratch, spawn_in_cgroup, state_dir_for, write, Daemon,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

const AGENT: &str = "agent-lproc";

/// One `processes` row.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    start_ns: i64,
    ppid: Option<u32>,
    parent_start_ns: Option<i64>,
    uid: Option<u32>,
    agent: Option<String>,
    exe: Option<String>,
    argv: Option<String>,
    cwd: Option<String>,
    exec_ns: Option<i64>,
    exit_ns: Option<i64>,
    exit_code: Option<i32>,
}

const COLUMNS: &str = "pid, start_ns, ppid, parent_start_ns, uid, agent, exe, argv, cwd, \
                       exec_ns, exit_ns, exit_code";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Proc> {
    Ok(Proc {
        pid: r.get(0)?,
        start_ns: r.get(1)?,
        ppid: r.get(2)?,
        parent_start_ns: r.get(3)?,
        uid: r.get(4)?,
        agent: r.get(5)?,
        exe: r.get(6)?,
        argv: r.get(7)?,
        cwd: r.get(8)?,
        exec_ns: r.get(9)?,
        exit_ns: r.get(10)?,
        exit_code: r.get(11)?,
    })
}

fn open(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()))
}

/// Polls `f` on the lineage database for up to 15 s (the writer commits in batches).
fn wait_for<T>(db: &Path, what: &str, f: impl Fn(&Connection) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if db.exists() {
            if let Some(v) = f(&open(db)) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "lineage: no {what} in {}",
            db.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The process `(pid, start_ns)`.
fn process(c: &Connection, pid: u32, start_ns: i64) -> Option<Proc> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM processes WHERE pid = ?1 AND start_ns = ?2"),
        rusqlite::params![pid, start_ns],
        row,
    )
    .optional()
    .expect("query processes")
}

/// The process `pid` that was running at boot time `at`.
fn process_at(c: &Connection, pid: u32, at: i64) -> Option<Proc> {
    c.query_row(
        &format!(
            "SELECT {COLUMNS} FROM processes WHERE pid = ?1 AND start_ns <= ?2 \
             ORDER BY start_ns DESC LIMIT 1"
        ),
        rusqlite::params![pid, at],
        row,
    )
    .optional()
    .expect("query processes")
}

/// The chain from `p` up through its parents, as far as rows exist.
fn ancestry(c: &Connection, p: &Proc) -> Vec<Proc> {
    let mut chain = vec![p.clone()];
    while let Some(last) = chain.last() {
        let (Some(ppid), Some(pstart)) = (last.ppid, last.parent_start_ns) else {
            break;
        };
        match process(c, ppid, pstart) {
            Some(parent) if chain.len() < 32 => chain.push(parent),
            _ => break,
        }
    }
    chain
}

#[test]
fn lsm_lineage_processes_link_a_denied_rm_to_its_ancestry() {
    require_bpf_lsm();
    let dir = scratch("lineage-proc");
    let target = dir.join("protected/file");
    write(&target, "precious");
    let target = target.display().to_string();

    // Started in the agent's cgroup before the daemon: only the snapshot can know it.
    let cgroup = format!("governor-test/{AGENT}");
    std::fs::create_dir_all(format!("/sys/fs/cgroup/{cgroup}")).expect("agent cgroup");
    let mut early = spawn_in_cgroup(&cgroup, 0, 0, &["sleep", "120"]);
    let early_pid = early.id();
    // Until it runs sleep (it execs once released into the cgroup).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{early_pid}/exe"))
        .map_or(true, |p| !p.to_string_lossy().ends_with("/sleep"))
    {
        assert!(Instant::now() < deadline, "sleep never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    let d = Daemon::start(&dir, &policy(AGENT, "enforce", &dir.join("protected")));
    let db = state_dir_for(&d.pin_dir).join("lineage.db");

    // Two shells deep; the trailing commands keep each shell from exec'ing its last command,
    // so that every level is a process of its own.
    let inner = format!("rm {target}; true");
    let outer = format!("sh -c '{inner}'; true");
    let out = Command::new(governor_bin())
        .args(["run", "--policy"])
        .arg(&d.policy)
        .args(["--agent", AGENT, "--", "sh", "-c", &outer])
        .current_dir(&dir)
        .output()
        .expect("spawn governor run");
    assert!(out.status.success(), "the shells end with `true`: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Operation not permitted"),
        "rm must be refused: {stderr}"
    );
    assert!(Path::new(&target).exists(), "target must be unchanged");

    // The denied rm's event...
    let (tgid, at): (u32, i64) = wait_for(&db, "deny event for rm", |c| {
        c.query_row(
            "SELECT tgid, boot_ns FROM events WHERE decision = 'deny' AND class = 'unlink' \
             AND path = ?1",
            [&target],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .expect("query events")
    });
    // ...joins its process, with the rm's exe, argv, cwd, uid and agent...
    let rm = wait_for(&db, "exit of rm", |c| {
        process_at(c, tgid, at).filter(|p| p.exit_ns.is_some())
    });
    let argv: Vec<String> =
        serde_json::from_str(rm.argv.as_deref().expect("argv")).expect("argv is JSON");
    assert_eq!(argv, ["rm", target.as_str()], "{rm:?}");
    assert!(
        rm.exe
            .as_deref()
            .is_some_and(|e| e.starts_with('/') && e.ends_with("/rm")),
        "{rm:?}"
    );
    assert_eq!(
        rm.cwd.as_deref(),
        Some(dir.display().to_string().as_str()),
        "{rm:?}"
    );
    assert_eq!(
        (rm.uid, rm.agent.as_deref()),
        (Some(0), Some(AGENT)),
        "{rm:?}"
    );
    assert!(
        rm.exec_ns.is_some_and(|t| t >= rm.start_ns && t <= at),
        "{rm:?}"
    );
    assert_eq!(rm.exit_code, Some(1), "rm fails: {rm:?}");

    // ...whose parents lead up through both shells to the agent's root process (the
    // `governor run` process that became the outer shell), whose parent is the process that
    // launched the agent: this test, recorded once, outside the agent.
    let chain = wait_for(&db, "exits of the shells", |c| {
        let chain = ancestry(c, &rm);
        let agent_rows = chain.iter().filter(|p| p.agent.is_some()).count();
        (agent_rows >= 3 && chain[..3].iter().all(|p| p.exit_ns.is_some())).then_some(chain)
    });
    let shown: Vec<String> = chain
        .iter()
        .map(|p| format!("{} {:?} {:?}", p.pid, p.exe, p.agent))
        .collect();
    assert_eq!(
        chain.len(),
        4,
        "rm, inner sh, outer sh, launcher: {shown:#?}"
    );
    for sh in &chain[1..3] {
        assert_eq!(sh.agent.as_deref(), Some(AGENT), "{sh:?}");
        let argv: Vec<String> =
            serde_json::from_str(sh.argv.as_deref().expect("argv")).expect("argv is JSON");
        assert_eq!(argv.first().map(String::as_str), Some("sh"), "{sh:?}");
        assert_eq!(sh.exit_code, Some(0), "{sh:?}");
    }
    let root = &chain[2];
    let argv: Vec<String> =
        serde_json::from_str(root.argv.as_deref().expect("argv")).expect("json");
    assert_eq!(argv, ["sh", "-c", outer.as_str()], "agent root: {root:?}");
    let launcher = &chain[3];
    assert_eq!(launcher.pid, std::process::id(), "launcher: {launcher:?}");
    assert_eq!(
        launcher.agent, None,
        "the launcher is not the agent's: {launcher:?}"
    );
    assert!(launcher.exe.is_some(), "{launcher:?}");

    // The process started before the daemon: recorded from /proc at start, with the same
    // launcher.
    let early_row = wait_for(&db, "the process running before the daemon", |c| {
        c.query_row(
            &format!("SELECT {COLUMNS} FROM processes WHERE pid = ?1"),
            [early_pid],
            row,
        )
        .optional()
        .expect("query processes")
    });
    assert_eq!(early_row.agent.as_deref(), Some(AGENT), "{early_row:?}");
    assert_eq!(
        early_row.argv.as_deref(),
        Some(r#"["sleep","120"]"#),
        "{early_row:?}"
    );
    assert!(
        early_row
            .exe
            .as_deref()
            .is_some_and(|e| e.ends_with("/sleep")),
        "{early_row:?}"
    );
    assert_eq!(
        early_row.exec_ns, None,
        "its exec predates the daemon: {early_row:?}"
    );
    assert_eq!(
        (early_row.ppid, early_row.parent_start_ns),
        (Some(launcher.pid), Some(launcher.start_ns)),
        "{early_row:?}"
    );
    let _ = early.kill();
    let _ = early.wait();
    // Its exit is seen by the kernel like any other agent process's.
    wait_for(&db, "exit of the early process", |c| {
        process(c, early_pid, early_row.start_ns).filter(|p| p.exit_code == Some(-9))
    });

    // One launcher row, however many agent processes it started.
    let launchers: i64 = open(&db)
        .query_row(
            "SELECT count(*) FROM processes WHERE pid = ?1",
            [std::process::id()],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(launchers, 1);

    // The responder's view of the same event: `governor lineage trace` walks rm → inner sh →
    // outer sh (the agent's root) to the launcher, names the rule and the policy's owner.
    let id: i64 = open(&db)
        .query_row(
            "SELECT id FROM events WHERE decision = 'deny' AND class = 'unlink' AND path = ?1",
            [&target],
            |r| r.get(0),
        )
        .expect("event id");
    let out = Command::new(governor_bin())
        .args(["lineage", "trace", &id.to_string(), "--json", "--db"])
        .arg(&db)
        .output()
        .expect("spawn governor lineage trace");
    assert!(out.status.success(), "lineage trace: {out:?}");
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).expect("trace is JSON");
    let chain = t["chain"].as_array().expect("chain");
    let exes: Vec<&str> = chain.iter().filter_map(|p| p["exe"].as_str()).collect();
    assert_eq!(chain.len(), 3, "rm and both shells: {t}");
    assert!(exes[0].ends_with("/rm"), "{t}");
    assert!(exes[1..].iter().all(|e| e.ends_with("sh")), "{t}");
    assert_eq!(chain[0]["argv"], serde_json::json!(["rm", target]), "{t}");
    assert_eq!(t["chain_end"], "launcher", "{t}");
    assert_eq!(t["launcher"]["pid"], std::process::id(), "{t}");
    assert_eq!(t["cause"]["kind"], "rule", "{t}");
    assert!(
        t["cause"]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("protected")),
        "the rule that denied: {t}"
    );
    assert_eq!(t["policy"]["owner"], "kernel-tests@example.com", "{t}");
    // Nothing was lost on the way: the kernel reserved every process record.
    let lines = d.stop();
    let stopped: serde_json::Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("stopped;"))
        })
        .expect("the daemon's stop line");
    assert_eq!(stopped["procs_dropped"], 0, "{stopped}");
}
