//! A synthetic lineage database for the trace benchmark (`cargo xtask bench --group
//! lineage-trace`, through the hidden `governor lineage bench-trace`): agent sessions of
//! process trees with reused pids, leases with two signers, policy loads, and events spread
//! over them, written through [`record::insert`] like the daemon's. Built fast: one big
//! transaction per million rows, `synchronous=OFF` and no journal (this database only), and
//! the events' indexes dropped during the load and rebuilt after it, in one sort each.
//!
//! Benchmark-only: compiled with the governor crate's `bench` feature (off by default, on in
//! `cargo xtask bench`), so the shipped binary has neither this nor `lineage bench-trace`.
//! It stays in this crate rather than in `bench/` because governor is a binary crate: the
//! benchmark driver cannot reach [`record::insert`] or the schema from outside, and a copy
//! of them would measure something other than the daemon's own code.

use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{
    record::{insert, EventRow, KeyRow, LeaseRow, PolicyRow, ProcessRow, Record, SignerRow},
    schema,
};

/// Unix ns of boot time 0 of the synthetic boot.
pub const BOOT_OFFSET_NS: i64 = 1_790_000_000_000_000_000;
pub const BOOT_ID: &str = "00000000-bench-0000-0000-000000000000";
/// Processes per agent session: a launcher, the agent's root, and its descendants.
const SESSION: u64 = 64;
/// Boot-time spacing of process starts.
const STEP_NS: u64 = 1_000_000;
/// Pids cycle through this many values, so each is reused many times.
const PIDS: u64 = 30_000;
const AGENTS: u64 = 20;
const LEASES: u64 = 1000;
const BATCH: u64 = 1_000_000;

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn pid_of(j: u64) -> u32 {
    (300 + j % PIDS) as u32
}

fn start_of(j: u64) -> u64 {
    j * STEP_NS
}

/// A process lives for its session's span (so a pid is never reused while it runs).
fn exit_of(j: u64) -> u64 {
    (j / SESSION + 1) * SESSION * STEP_NS + STEP_NS / 2
}

/// Parent of process `j` (its session's launcher has none recorded).
fn parent_of(j: u64, rng: &mut Rng) -> Option<u64> {
    let first = j - j % SESSION;
    match j % SESSION {
        0 => None,
        1 => Some(first),
        k => Some(first + 1 + rng.below(k - 1)),
    }
}

/// What was written, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Built {
    pub events: u64,
    pub processes: u64,
    pub load: Duration,
    pub index: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error("writing the synthetic database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Fills `conn` (a new, empty database) with `events` events.
pub fn build(conn: &mut Connection, events: u64) -> Result<Built, SynthError> {
    let started = Instant::now();
    // The page size the daemon's writer gives a new database.
    conn.pragma_update(None, "page_size", super::writer::PAGE_SIZE)?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; \
         PRAGMA temp_store = MEMORY;",
    )?;
    schema::migrate(conn)?;
    // The events' indexes, to rebuild after the load.
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' \
             AND sql IS NOT NULL",
        )?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|(name, sql)| {
            conn.execute_batch(&format!("DROP INDEX {name}"))
                .map(|()| sql)
        })
        .collect::<Result<_, _>>()?;

    let processes = (events / 50).max(SESSION * 4);
    let mut rng = Rng(42);
    let tx = conn.transaction()?;
    insert_authority(&tx)?;
    for j in 0..processes {
        let agent = (j % SESSION != 0).then(|| format!("agent-{}", (j / SESSION) % AGENTS));
        let parent = parent_of(j, &mut rng);
        insert(
            &tx,
            &Record::Process(ProcessRow::Started {
                boot_id: BOOT_ID.into(),
                pid: pid_of(j),
                start_ns: start_of(j),
                ppid: parent.map_or(1, pid_of),
                parent_start_ns: parent.map_or(0, start_of),
                uid: 1000,
                cgroup_id: 100 + (j / SESSION) % AGENTS,
                agent,
            }),
        )?;
        insert(
            &tx,
            &Record::Process(ProcessRow::Exec {
                boot_id: BOOT_ID.into(),
                pid: pid_of(j),
                start_ns: start_of(j),
                exec_ns: Some(start_of(j) + 1000),
                argv_truncated: false,
                exe: "/usr/bin/bash".into(),
                argv: vec!["bash".into(), "-c".into(), format!("step {j}")],
                cwd: Some("/srv/work".into()),
                uid: 1000,
            }),
        )?;
        insert(
            &tx,
            &Record::Process(ProcessRow::Exited {
                boot_id: BOOT_ID.into(),
                pid: pid_of(j),
                start_ns: start_of(j),
                exit_ns: exit_of(j),
                exit_code: 0,
            }),
        )?;
    }
    tx.commit()?;

    let mut tx = conn.transaction()?;
    for i in 0..events {
        if i > 0 && i % BATCH == 0 {
            tx.commit()?;
            tx = conn.transaction()?;
        }
        // Events go to agent processes (not launchers), in time order.
        let mut j = i * processes / events;
        if j.is_multiple_of(SESSION) {
            j += 1;
        }
        let boot_ns = start_of(j) + 1 + (i % 997) * 10;
        let lease = (i % 10 == 0).then(|| format!("lease-{}", i % LEASES));
        let (decision, rule) = match i % 10 {
            0 => ("lease-allow", Some("/srv")),
            1 => ("observe-deny", Some("/srv")),
            _ => ("deny", Some("/etc")),
        };
        insert(
            &tx,
            &Record::Event(Box::new(EventRow {
                boot_id: BOOT_ID.into(),
                boot_ns,
                ts_ns: BOOT_OFFSET_NS + boot_ns as i64,
                agent: Some(format!("agent-{}", (j / SESSION) % AGENTS)),
                cgroup_id: 100 + (j / SESSION) % AGENTS,
                pid: pid_of(j),
                tgid: pid_of(j),
                uid: 1000,
                gid: 1000,
                comm: "rm".into(),
                exe: Some("/usr/bin/rm".into()),
                class: "unlink".into(),
                decision: decision.into(),
                target: format!("/srv/data/{}/{}", i % 1000, rng.below(100_000)),
                path: Some(format!("/srv/data/{}/{}", i % 1000, i)),
                inode: Some((8, i)),
                detail: 0,
                rule: rule.map(Into::into),
                lease_id: lease,
                policy_version: "bench-v1".into(),
                ring: 0,
            })),
        )?;
    }
    tx.commit()?;
    let load = started.elapsed();
    let t = Instant::now();
    for sql in &indexes {
        conn.execute_batch(sql)?;
    }
    conn.execute_batch("ANALYZE")?;
    Ok(Built {
        events,
        processes,
        load,
        index: t.elapsed(),
    })
}

/// A policy, three operators' keys and [`LEASES`] leases with two signers each.
fn insert_authority(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    insert(
        tx,
        &Record::Policy(Box::new(PolicyRow {
            version: "bench-v1".into(),
            name: "bench".into(),
            owner: "platform-team".into(),
            source: "/etc/governor/policy.toml".into(),
            loaded_ns: BOOT_OFFSET_NS,
            text: "# bench".into(),
        })),
    )?;
    for who in ["alice", "bob", "carol"] {
        insert(
            tx,
            &Record::Key(KeyRow {
                key_id: format!("key-{who}"),
                operator: format!("{who}@example.com"),
                public_key: "AAAA".into(),
                first_seen_ns: BOOT_OFFSET_NS,
            }),
        )?;
    }
    for l in 0..LEASES {
        let signer = |who: &str, role: &str| SignerRow {
            key_id: format!("key-{who}"),
            operator: format!("{who}@example.com"),
            role: role.into(),
            signed_at: (BOOT_OFFSET_NS / 1_000_000_000) as u64,
        };
        insert(
            tx,
            &Record::Lease(Box::new(LeaseRow {
                id: format!("lease-{l}"),
                agent: format!("agent-{}", l % AGENTS),
                host: "bench".into(),
                scopes: r#"[{"class":"delete","target":"/srv"}]"#.into(),
                not_before: 0,
                not_after: u64::MAX >> 2,
                reason: format!("bench lease {l}"),
                ticket: Some(format!("OPS-{l}")),
                request_id: Some(format!("req-{l}")),
                document: "{}".into(),
                policy_version: "bench-v1".into(),
                signers: vec![signer("alice", "issuer"), signer("bob", "approver")],
            })),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::trace::{trace, Cause, ChainEnd};

    #[test]
    fn every_event_traces_to_its_launcher() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        let b = build(&mut conn, 20_000).expect("build");
        assert_eq!(b.events, 20_000);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 20_000);
        for id in [1, 2, 11, 5_000, 19_999, 20_000] {
            let t = trace(&conn, id).expect("trace");
            assert_eq!(t.chain_end, ChainEnd::Launcher, "event {id}");
            assert!(t.launcher.expect("launcher").agent.is_none());
            assert!(t.policy.is_some());
            if let Cause::Lease { lease, .. } = &t.cause {
                assert_eq!(lease.as_ref().expect("lease").signers.len(), 2);
            }
        }
        // The indexes are back.
        let idx: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' \
                 AND sql IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(idx, 5);
    }
}
