//! Counting what the lineage lacks of each earlier kernel generation, when a starting daemon
//! has taken over (`super::handover`): in one transaction with the new run, each
//! generation's final counts from the kernel against what the lineage has of it (`rings`:
//! events committed from its ring, decisions counted in earlier gaps, drops counted). What is
//! left is lost, and counted: in the `downtime` gap the run notes (`super::runs`), and in a
//! `kernel-ring` gap for drops nobody counted. Generations whose rings are gone are counted
//! from their last recorded counts (a lower bound, unless those were final).

use rusqlite::{params, Connection, Transaction};

use super::{
    boot::BootClock,
    record::{self, GapRow, Record, RingKey, RingRow},
    runs::{self, Carried},
};
use crate::kernel::inherit::Counts;

/// What the hand-over took from one generation's rings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Decisions drained into `events`.
    pub drained: u64,
    /// Records that failed to decode.
    pub malformed: u64,
    /// Decisions the database refused (already in a `malformed` gap).
    pub refused: u64,
    /// Process records taken over.
    pub processes: u64,
    /// Why its agent and rule ids could not be named, if they could not.
    pub unnamed: Option<String>,
}

/// One generation the hand-over found in the kernel.
#[derive(Debug, Clone)]
pub struct Found {
    pub ring_id: u32,
    pub generation: Option<u64>,
    pub policy: Option<String>,
    pub orphan: bool,
    /// Its counts, read after its programs left the kernel; `None` if they cannot be read.
    pub counts: Option<Counts>,
    pub tally: Tally,
}

/// Reconciles `found` and every other generation `rings` has not reconciled, notes this
/// daemon's run (pid `pid`) with the `downtime` gap that counts what is lost, and registers
/// `own`, the new generation's ring, with the run: one transaction.
pub fn close(
    conn: &mut Connection,
    clock: &BootClock,
    found: &[Found],
    pid: u32,
    own: RingRow,
) -> rusqlite::Result<(i64, Carried, Option<GapRow>)> {
    let tx = conn.transaction()?;
    let mut carried = Carried {
        found: found.len(),
        exact: true,
        ..Carried::default()
    };
    let now = BootClock::now_ns();
    for ring in found {
        let key = RingKey {
            boot_id: clock.boot_id.clone(),
            ring_id: ring.ring_id,
        };
        let tally = &ring.tally;
        carried.drained += tally.drained;
        let known = record::ring_exists(&tx, &key)?;
        let counts = ring.counts;
        record::insert(
            &tx,
            &Record::Ring(Box::new(RingRow {
                generation: ring.generation,
                policy_version: ring.policy.clone(),
                emitted: counts.map(|c| c.emitted),
                kernel_dropped: counts.map(|c| c.dropped),
                emitted_final: counts.is_some(),
                ..RingRow::new(key.clone())
            })),
        )?;
        if tally.malformed > 0 {
            record::insert(
                &tx,
                &Record::Gap(GapRow {
                    source: "malformed",
                    lost: tally.malformed,
                    from_ns: now,
                    until_ns: now,
                    detail: format!(
                        "{} records of a taken-over ring failed to decode (wrong length, \
                         version or kind)",
                        tally.malformed
                    ),
                    ring: Some(key.clone()),
                }),
            )?;
        }
        let name = match (ring.orphan, ring.generation) {
            (true, _) => format!("orphaned generation (ring {})", ring.ring_id),
            (false, Some(g)) => format!("generation {g}"),
            (false, None) => format!("ring {}", ring.ring_id),
        };
        let mut text = if known {
            reconcile(&tx, &key, &name, &mut carried, now)?
        } else {
            // Loaded by a governor that kept no per-generation counts: what it committed
            // from this ring is not known, so neither is what it lost.
            carried.exact = false;
            mark_reconciled(&tx, &key, now)?;
            format!(
                "{name}: its daemon kept no per-generation counts (an older governor); \
                 {} of its decisions were drained now",
                tally.drained
            )
        };
        if let Some(why) = &tally.unnamed {
            text.push_str(&format!(
                "; its {} decisions taken over are recorded without agent names or rule \
                 paths: {why}",
                tally.drained
            ));
        }
        if tally.processes > 0 {
            text.push_str(&format!("; {} process records taken over", tally.processes));
        }
        carried.detail.push(text);
    }
    // Generations whose rings are gone: from their last recorded counts.
    let gone: Vec<(RingKey, Option<u64>)> = {
        let mut st = tx.prepare(
            "SELECT boot_id, ring_id, generation FROM rings WHERE reconciled_ns IS NULL",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                RingKey {
                    boot_id: r.get(0)?,
                    ring_id: r.get(1)?,
                },
                r.get::<_, Option<i64>>(2)?.map(|g| g as u64),
            ))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (key, generation) in gone {
        let name = match generation {
            Some(g) => format!(
                "generation {g} (ring {}, no longer in the kernel)",
                key.ring_id
            ),
            None => format!("ring {} (no longer in the kernel)", key.ring_id),
        };
        let name = if key.boot_id == clock.boot_id {
            name
        } else {
            format!("{name}, of an earlier boot")
        };
        let text = reconcile(&tx, &key, &name, &mut carried, now)?;
        carried.detail.push(text);
    }
    let (run, gap) = runs::begin_in(&tx, clock, pid, &carried)?;
    record::insert(
        &tx,
        &Record::Ring(Box::new(RingRow {
            run: Some(run),
            ..own
        })),
    )?;
    tx.commit()?;
    Ok((run, carried, gap))
}

/// The `rings` tallies of one ring.
struct Tallies {
    committed: u64,
    lost: u64,
    dropped: u64,
    emitted: Option<u64>,
    kernel_dropped: Option<u64>,
    exact: bool,
}

/// Counts what the lineage lacks of ring `key` (its final or last recorded counts against
/// its tallies), writes a `kernel-ring` gap for drops nobody counted, adds the lost decisions
/// to the ring's tally (the downtime gap counts them) and marks it reconciled. Returns the
/// ring's accounting in words.
fn reconcile(
    tx: &Transaction<'_>,
    key: &RingKey,
    name: &str,
    carried: &mut Carried,
    now: i64,
) -> rusqlite::Result<String> {
    let t = tx.query_row(
        "SELECT committed, lost, dropped, emitted, kernel_dropped, emitted_final FROM rings \
         WHERE boot_id = ?1 AND ring_id = ?2",
        params![key.boot_id, key.ring_id],
        |r| {
            Ok(Tallies {
                committed: r.get::<_, i64>(0)? as u64,
                lost: r.get::<_, i64>(1)? as u64,
                dropped: r.get::<_, i64>(2)? as u64,
                emitted: r.get::<_, Option<i64>>(3)?.map(|n| n as u64),
                kernel_dropped: r.get::<_, Option<i64>>(4)?.map(|n| n as u64),
                exact: r.get::<_, i64>(5)? == 1,
            })
        },
    )?;
    carried.exact &= t.exact;
    let bound = if t.exact { "" } else { "at least " };
    let emitted = t.emitted.unwrap_or(0);
    let lost = emitted.saturating_sub(t.committed + t.lost);
    carried.lost += lost;
    if lost > 0 {
        tx.prepare_cached("UPDATE rings SET lost = lost + ?1 WHERE boot_id = ?2 AND ring_id = ?3")?
            .execute(params![lost as i64, key.boot_id, key.ring_id])?;
    }
    let unseen = t.kernel_dropped.unwrap_or(0).saturating_sub(t.dropped);
    if unseen > 0 {
        record::insert(
            tx,
            &Record::Gap(GapRow {
                source: "kernel-ring",
                lost: unseen,
                from_ns: now,
                until_ns: now,
                detail: format!(
                    "{bound}{unseen} decisions of {name} the kernel could not put into its \
                     full ring buffer while no daemon counted (enforced, not recorded)"
                ),
                ring: Some(key.clone()),
            }),
        )?;
    }
    mark_reconciled(tx, key, now)?;
    let emitted = match t.emitted {
        Some(n) => format!("{bound}{n} emitted"),
        None => "its emitted count was never recorded".to_owned(),
    };
    Ok(format!(
        "{name}: {emitted}, {} committed, {} counted in earlier gaps, {bound}{lost} lost, \
         {bound}{} dropped by the kernel",
        t.committed,
        t.lost,
        t.kernel_dropped.unwrap_or(0)
    ))
}

fn mark_reconciled(tx: &Transaction<'_>, key: &RingKey, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE rings SET reconciled_ns = ?1 WHERE boot_id = ?2 AND ring_id = ?3")?
        .execute(params![now, key.boot_id, key.ring_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::{record::EventRow, schema::migrate, writer};

    fn clock() -> BootClock {
        BootClock {
            boot_id: "boot".into(),
            offset_ns: 0,
        }
    }

    fn key(ring_id: u32) -> RingKey {
        RingKey {
            boot_id: "boot".into(),
            ring_id,
        }
    }

    fn event(n: u64, ring: u32) -> Record {
        Record::Event(Box::new(EventRow {
            boot_id: "boot".into(),
            boot_ns: n,
            ts_ns: n as i64,
            pid: 7,
            tgid: 7,
            target: "/p".into(),
            path: Some("/p".into()),
            ring,
            ..EventRow::sample()
        }))
    }

    fn gap(source: &'static str, lost: u64, ring: u32) -> Record {
        Record::Gap(GapRow {
            source,
            lost,
            from_ns: 0,
            until_ns: 0,
            detail: format!("{lost} test"),
            ring: Some(key(ring)),
        })
    }

    fn one(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// A daemon that died: what its pinned ring still held was drained (rows committed
    /// against the ring), some of its decisions were already counted in gaps, the rest it
    /// had taken out of the ring and not committed. The successor counts exactly that rest,
    /// and the drops nobody counted; a generation whose ring is gone counts as a lower bound.
    /// Afterwards, per ring, rows + counted losses = what the kernel emitted.
    #[test]
    fn every_emitted_decision_is_a_row_or_counted_in_a_gap() {
        let mut conn = Connection::open_in_memory().expect("db");
        migrate(&mut conn).expect("schema");
        let (dead, _) =
            runs::begin(&mut conn, &clock(), 10, &Carried::default()).expect("first run");
        let mut records: Vec<Record> = (0..10).map(|n| event(n, 7)).collect();
        records.push(gap("queue", 2, 7));
        records.push(gap("kernel-ring", 3, 7));
        // Ring 9: retired by a reload of the dead daemon; last seen emitting 20.
        records.extend((100..118).map(|n| event(n, 9)));
        records.push(Record::Ring(Box::new(RingRow {
            run: Some(dead),
            generation: Some(1),
            emitted: Some(20),
            ..RingRow::new(key(9))
        })));
        records.push(Record::Ring(Box::new(RingRow {
            run: Some(dead),
            generation: Some(2),
            ..RingRow::new(key(7))
        })));
        writer::write_now(&mut conn, &records).expect("write");
        let found = [Found {
            ring_id: 7,
            generation: Some(2),
            policy: Some("v".into()),
            orphan: false,
            counts: Some(Counts {
                emitted: 15,
                dropped: 5,
            }),
            tally: Tally {
                drained: 4,
                unnamed: Some("policy v is not in the lineage's policies".into()),
                ..Tally::default()
            },
        }];
        let own = RingRow {
            generation: Some(3),
            ..RingRow::new(key(11))
        };
        let (run, carried, gap) = close(&mut conn, &clock(), &found, 11, own).expect("close");
        // Ring 7: 15 emitted - 10 committed - 2 counted = 3; ring 9: at least 20 - 18 = 2.
        assert_eq!(carried.lost, 5);
        assert!(!carried.exact, "ring 9's count was not final");
        let gap = gap.expect("the dead daemon's downtime gap");
        assert_eq!(gap.lost, 5);
        assert!(
            gap.detail.contains("at least 5 decisions"),
            "{}",
            gap.detail
        );
        assert!(
            gap.detail.contains(
                "its 4 decisions taken over are recorded without agent names or rule paths: \
                 policy v is not in the lineage's policies"
            ),
            "what is not certain is said: {}",
            gap.detail
        );
        assert!(
            gap.detail.contains(
                "generation 2: 15 emitted, 10 committed, 2 counted in \
            earlier gaps, 3 lost, 5 dropped by the kernel"
            ),
            "{}",
            gap.detail
        );
        assert_eq!(
            one(
                &conn,
                "SELECT lost FROM gaps WHERE source = 'kernel-ring' AND ring = \
                (SELECT id FROM rings WHERE ring_id = 7) ORDER BY id DESC LIMIT 1"
            ),
            2,
            "the drops nobody counted"
        );
        for ring in [7, 9] {
            let (emitted, accounted): (i64, i64) = conn
                .query_row(
                    "SELECT emitted, committed + lost FROM rings WHERE ring_id = ?1",
                    [ring],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("ring");
            assert_eq!(emitted, accounted, "ring {ring}");
        }
        assert_eq!(
            one(
                &conn,
                "SELECT count(*) FROM rings WHERE reconciled_ns IS NULL"
            ),
            1,
            "only the new generation's ring is open"
        );
        assert_eq!(
            one(&conn, "SELECT run FROM rings WHERE ring_id = 11"),
            run,
            "the new ring belongs to the new run"
        );
        // Nothing is counted twice: the next start takes over ring 11 (which emitted
        // nothing) and finds nothing more to count.
        let next = [Found {
            ring_id: 11,
            generation: Some(3),
            policy: None,
            orphan: false,
            counts: Some(Counts {
                emitted: 0,
                dropped: 0,
            }),
            tally: Tally::default(),
        }];
        let (_, again, gap) =
            close(&mut conn, &clock(), &next, 12, RingRow::new(key(12))).expect("again");
        assert_eq!((again.lost, again.exact), (0, true));
        let gap = gap.expect("the second daemon did not stop either");
        assert_eq!(gap.lost, 0);
        assert!(gap.detail.contains(": 0 decisions"), "{}", gap.detail);
    }
}
