//! Retention (`--retain 30d`): deletes lineage rows older than a cutoff, never a row that an
//! unexpired lease still refers to (its events, its lifecycle, the lease and its signatures),
//! nor one of a lease whose snapshot is still kept (its `snapshotted` step's
//! `retain_until_ms` not passed: a rollback of it is still possible, and its restore needs
//! them to be told and timed), and never a process that a kept process or a kept event
//! descends from (ancestry stays whole). Policies, keys, halts and restores (`rollbacks`, with
//! the leases they name) are small and kept.

use rusqlite::{params, Connection};

/// Rows deleted, per table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub events: usize,
    pub lifecycle: usize,
    pub gaps: usize,
    pub leases: usize,
    pub processes: usize,
}

/// The leases whose rows are kept whatever their age (parameters: `?2` now in Unix seconds,
/// `?3` in Unix ms): unexpired, or with a snapshot still kept.
const KEPT_LEASES: &str = "SELECT id FROM leases WHERE not_after > ?2 \
    UNION SELECT lease_id FROM lease_lifecycle WHERE state = 'snapshotted' \
    AND lease_id IS NOT NULL AND json_extract(detail, '$.retain_until_ms') > ?3";

/// Deletes what ended before `cutoff_ns` (Unix ns), in one transaction. `now_secs` (Unix
/// seconds) says which leases are unexpired (`not_after > now_secs`) and which snapshots are
/// still kept.
pub fn prune(conn: &mut Connection, cutoff_ns: i64, now_secs: u64) -> rusqlite::Result<Pruned> {
    let now = now_secs as i64;
    let now_ms = now.saturating_mul(1000);
    let cutoff_secs = cutoff_ns.div_euclid(1_000_000_000);
    let tx = conn.transaction()?;
    let mut p = Pruned {
        events: tx.execute(
            &format!(
                "DELETE FROM events WHERE ts_ns < ?1 AND (lease_id IS NULL OR lease_id NOT IN \
                 ({KEPT_LEASES}))"
            ),
            params![cutoff_ns, now, now_ms],
        )?,
        lifecycle: tx.execute(
            &format!(
                "DELETE FROM lease_lifecycle WHERE ts_ns < ?1 AND (lease_id IS NULL OR \
                 lease_id NOT IN ({KEPT_LEASES}))"
            ),
            params![cutoff_ns, now, now_ms],
        )?,
        gaps: tx.execute("DELETE FROM gaps WHERE until_ns < ?1", [cutoff_ns])?,
        ..Pruned::default()
    };
    // Leases that expired before the cutoff and that no kept row names.
    let gone = "SELECT id FROM leases l WHERE l.not_after < ?1 AND l.not_after <= ?2 \
                AND NOT EXISTS (SELECT 1 FROM events e WHERE e.lease_id = l.id) \
                AND NOT EXISTS (SELECT 1 FROM lease_lifecycle c WHERE c.lease_id = l.id) \
                AND NOT EXISTS (SELECT 1 FROM rollbacks r WHERE r.lease_id = l.id)";
    tx.execute(
        &format!("DELETE FROM lease_signatures WHERE lease_id IN ({gone})"),
        params![cutoff_secs, now],
    )?;
    p.leases = tx.execute(
        &format!("DELETE FROM leases WHERE id IN ({gone})"),
        params![cutoff_secs, now],
    )?;
    // Processes: dated through their boot's clock offset (`runs`); only those known to have
    // ended (an exit seen, or a boot other than the latest run's) before the cutoff; a
    // process without a dated boot is kept. Leaves go first, so a process is deleted only
    // after every child it has; one that an event older than the cutoff (kept for its
    // lease) names is kept.
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS prunable (boot_id TEXT, pid INTEGER, \
         start_ns INTEGER, PRIMARY KEY (boot_id, pid, start_ns)); DELETE FROM prunable;",
    )?;
    tx.execute(
        "INSERT INTO prunable SELECT p.boot_id, p.pid, p.start_ns FROM processes p \
         JOIN (SELECT boot_id, min(offset_ns) AS offset_ns FROM runs GROUP BY boot_id) b \
           ON b.boot_id = p.boot_id \
         WHERE max(p.start_ns, coalesce(p.exec_ns, 0), coalesce(p.exit_ns, 0)) \
               + b.offset_ns < ?1 \
           AND (p.exit_ns IS NOT NULL \
                OR p.boot_id != (SELECT boot_id FROM runs ORDER BY id DESC LIMIT 1)) \
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.ts_ns < ?1 \
                AND e.boot_id = p.boot_id AND e.tgid = p.pid AND e.boot_ns >= p.start_ns)",
        [cutoff_ns],
    )?;
    loop {
        let n = tx.execute(
            "DELETE FROM processes WHERE (boot_id, pid, start_ns) IN \
             (SELECT boot_id, pid, start_ns FROM prunable q WHERE NOT EXISTS \
               (SELECT 1 FROM processes c WHERE c.boot_id = q.boot_id AND c.ppid = q.pid \
                AND c.parent_start_ns = q.start_ns))",
            [],
        )?;
        if n == 0 {
            break;
        }
        p.processes += n;
    }
    tx.execute_batch("DROP TABLE prunable")?;
    tx.commit()?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::{
        record::{insert, EventRow, LeaseRow, LifecycleRow, ProcessRow, Record},
        schema::migrate,
    };

    const DAY: i64 = 86_400 * 1_000_000_000;

    fn event(boot_ns: u64, ts_ns: i64, tgid: u32, lease: Option<&str>) -> Record {
        Record::Event(Box::new(EventRow {
            boot_ns,
            ts_ns,
            pid: tgid,
            tgid,
            class: "delete".into(),
            decision: if lease.is_some() {
                "lease-allow"
            } else {
                "deny"
            }
            .into(),
            lease_id: lease.map(str::to_owned),
            ..EventRow::sample()
        }))
    }

    fn lease(id: &str, not_after: u64) -> Record {
        Record::Lease(Box::new(LeaseRow {
            id: id.into(),
            agent: "a".into(),
            host: "h".into(),
            scopes: "[]".into(),
            not_before: 0,
            not_after,
            reason: "r".into(),
            ticket: None,
            request_id: None,
            document: "{}".into(),
            policy_version: "v".into(),
            signers: vec![],
        }))
    }

    fn process(pid: u32, ppid: u32, start_ns: u64, exit_ns: Option<u64>) -> Vec<Record> {
        let mut v = vec![Record::Process(ProcessRow::Started {
            boot_id: "b".into(),
            pid,
            start_ns,
            ppid,
            parent_start_ns: if ppid == 0 { 0 } else { 1 },
            uid: 0,
            cgroup_id: 1,
            agent: Some("a".into()),
        })];
        if let Some(exit_ns) = exit_ns {
            v.push(Record::Process(ProcessRow::Exited {
                boot_id: "b".into(),
                pid,
                start_ns,
                exit_ns,
                exit_code: 0,
            }));
        }
        v
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn old_rows_go_but_an_unexpired_lease_keeps_its_rows_and_ancestry_stays_whole() {
        let mut conn = Connection::open_in_memory().expect("db");
        migrate(&mut conn).expect("schema");
        // Boot time 0 is Unix day 100.
        let offset = 100 * DAY;
        conn.execute(
            "INSERT INTO runs (boot_id, offset_ns, pid, started_ns) VALUES ('b', ?1, 1, ?1)",
            [offset],
        )
        .expect("run");
        let day = |d: i64| (d * DAY) as u64;
        let now_secs = (150 * DAY / 1_000_000_000) as u64;
        let tx = conn.transaction().expect("tx");
        let mut rows = vec![
            lease("live", now_secs + 3600),
            lease("expired", (105 * DAY / 1_000_000_000) as u64),
            // Old events: plain, under the live lease, under the expired lease; and a new one.
            event(day(1), offset + DAY, 20, None),
            event(day(2), offset + 2 * DAY, 20, Some("live")),
            event(day(3), offset + 3 * DAY, 30, Some("expired")),
            event(day(45), offset + 45 * DAY, 40, None),
            Record::Lifecycle(LifecycleRow {
                ts_ns: offset + DAY,
                lease_id: Some("live".into()),
                request_id: None,
                state: "enforced",
                actor: None,
                detail: None,
            }),
            Record::Lifecycle(LifecycleRow {
                ts_ns: offset + DAY,
                lease_id: Some("expired".into()),
                request_id: None,
                state: "enforced",
                actor: None,
                detail: None,
            }),
        ];
        // 10 (root, exited day 5) -> 20 (exited day 4: its event is kept by the live lease)
        // 10 -> 30 (exited day 4, its event goes) ; 10 -> 40 (still running) -> 41 (exited
        // day 2, no events)
        rows.extend(process(10, 0, 1, Some(day(5))));
        rows.extend(process(20, 10, day(1), Some(day(4))));
        rows.extend(process(30, 10, day(1), Some(day(4))));
        rows.extend(process(40, 10, day(1), None));
        rows.extend(process(41, 40, day(1), Some(day(2))));
        for r in &rows {
            insert(&tx, r).expect("insert");
        }
        tx.commit().expect("commit");
        // Keep 30 days.
        let p = prune(&mut conn, 120 * DAY, now_secs).expect("prune");
        assert_eq!(p.events, 2, "{p:?}");
        assert_eq!(p.lifecycle, 1, "{p:?}");
        assert_eq!(p.leases, 1, "{p:?}");
        let live: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE lease_id = 'live'",
                [],
                |r| r.get(0),
            )
            .expect("live");
        assert_eq!(live, 1);
        assert_eq!(count(&conn, "leases"), 1);
        // 30 and 41 go; 20 stays (its event stays), 10 stays (parent of 20 and 40).
        let pids: Vec<i64> = conn
            .prepare("SELECT pid FROM processes ORDER BY pid")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(pids, vec![10, 20, 40]);
        assert_eq!(p.processes, 2);
        // Once the lease has expired and the cutoff passes it, its rows go too.
        let later = now_secs + 40 * 86_400;
        let p = prune(&mut conn, 170 * DAY, later).expect("prune again");
        assert_eq!((p.events, p.lifecycle, p.leases), (2, 1, 1), "{p:?}");
        assert_eq!(count(&conn, "lease_signatures"), 0);
    }

    /// A lease long expired whose snapshot is still kept keeps its events, its life (the
    /// snapshot and the restore steps) and itself; its restore is never deleted. Once the
    /// snapshot's retention passes, all but the restore (and the lease it names) go.
    #[test]
    fn a_snapshot_in_retention_keeps_its_lease_rows_and_restores_stay() {
        use crate::lineage::{
            authority::{rollback_row, snapshotted, RestoreFacts, SnapshotFacts, Trigger},
            boot::Stamp,
        };
        let mut conn = Connection::open_in_memory().expect("db");
        migrate(&mut conn).expect("schema");
        let (day_secs, now_secs) = (86_400u64, 200 * 86_400u64);
        let ns = |d: u64| (d * DAY as u64) as i64;
        let targets = [std::path::PathBuf::from("/srv")];
        let snap = |retain_until_days: u64| {
            let mut r = snapshotted(
                "kept",
                None,
                None,
                &SnapshotFacts {
                    files: 1,
                    entries: 1,
                    bytes: 1,
                    method: "copy",
                    took_ms: 1,
                    targets: &targets,
                    retain_until_ms: retain_until_days * day_secs * 1000,
                },
            );
            if let Record::Lifecycle(c) = &mut r {
                c.ts_ns = ns(101);
            }
            r
        };
        let at = |d: u64| Stamp {
            boot_ns: d * DAY as u64,
            unix_ns: ns(d),
        };
        let restore = rollback_row(&RestoreFacts {
            lease_id: "kept",
            agent: "a",
            uid: 0,
            trigger: Trigger::Rollback,
            boot_id: "b",
            started: at(103),
            ended: at(103),
            restored: &targets,
            recreated: &[],
            removed: &[],
            unchanged: 0,
            conflicts: &[],
            forced: false,
        });
        let tx = conn.transaction().expect("tx");
        for r in [
            lease("kept", 102 * day_secs),
            snap(205),
            event(1, ns(101), 20, Some("kept")),
            restore,
        ] {
            insert(&tx, &r).expect("insert");
        }
        tx.commit().expect("commit");
        // Keep 30 days: everything of "kept" is older, its snapshot kept until day 205.
        let p = prune(&mut conn, ns(170), now_secs).expect("prune");
        assert_eq!(p, Pruned::default(), "nothing of a lease still restorable");
        assert_eq!(
            count(&conn, "lease_lifecycle"),
            2,
            "snapshotted, rolled-back"
        );
        // Day 210: the snapshot's retention passed.
        let p = prune(&mut conn, ns(180), 210 * day_secs).expect("prune");
        assert_eq!((p.events, p.lifecycle, p.leases), (1, 2, 0), "{p:?}");
        assert_eq!(count(&conn, "rollbacks"), 1, "restores are kept");
        assert_eq!(count(&conn, "leases"), 1, "with the lease they name");
    }
}
