//! The daemon's runs (`runs`): each daemon notes its start, the writer notes every commit,
//! a clean stop notes the stop. The next daemon reads the last run to say what the lineage
//! lacks: a `downtime` gap after a daemon that died, or for decisions the pinned programs made
//! while no daemon ran that could not be recorded, with their number (`Carried`, from the
//! kernel's own counts of what each generation emitted).

#[cfg(test)]
use rusqlite::Connection;
use rusqlite::{params, OptionalExtension, Transaction};

use super::{
    boot::BootClock,
    record::{self, GapRow, Record},
};

/// The run before this one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LastRun {
    pid: u32,
    started_ns: i64,
    last_commit_ns: Option<i64>,
    stopped_ns: Option<i64>,
}

/// What a starting daemon accounted for of the kernel generations before it
/// (`lineage::handover`): their decisions it drained into `events`, and those that are
/// neither rows nor counted in an earlier gap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    /// Generations found still in the kernel (pinned or orphaned).
    pub found: usize,
    /// Their decisions this daemon drained from their rings into `events`.
    pub drained: u64,
    /// Decisions earlier generations emitted that are neither rows nor in earlier gaps.
    pub lost: u64,
    /// Whether `lost` is exact (every count read after the generation stopped emitting) or a
    /// lower bound (a generation gone before its final count was recorded).
    pub exact: bool,
    /// Each generation's accounting, in words.
    pub detail: Vec<String>,
}

/// Notes this daemon's run (boot, clock offset, pid, start) and writes the `downtime` gap
/// since the previous run, if there is one to write, with the number of decisions lost
/// (`carried`). Returns the run's id and the gap. (The daemon does this inside its hand-over
/// transaction, [`begin_in`].)
#[cfg(test)]
pub fn begin(
    conn: &mut Connection,
    clock: &BootClock,
    pid: u32,
    carried: &Carried,
) -> rusqlite::Result<(i64, Option<GapRow>)> {
    let tx = conn.transaction()?;
    let begun = begin_in(&tx, clock, pid, carried)?;
    tx.commit()?;
    Ok(begun)
}

/// [`begin`] inside the caller's transaction.
pub fn begin_in(
    tx: &Transaction<'_>,
    clock: &BootClock,
    pid: u32,
    carried: &Carried,
) -> rusqlite::Result<(i64, Option<GapRow>)> {
    let now = BootClock::now_ns();
    let last = tx
        .query_row(
            "SELECT pid, started_ns, last_commit_ns, stopped_ns FROM runs ORDER BY id DESC \
             LIMIT 1",
            [],
            |r| {
                Ok(LastRun {
                    pid: r.get(0)?,
                    started_ns: r.get(1)?,
                    last_commit_ns: r.get(2)?,
                    stopped_ns: r.get(3)?,
                })
            },
        )
        .optional()?;
    let gap = downtime(last.as_ref(), now, carried);
    if let Some(g) = &gap {
        record::insert(tx, &Record::Gap(g.clone()))?;
    }
    tx.execute(
        "INSERT INTO runs (boot_id, offset_ns, pid, started_ns) VALUES (?1, ?2, ?3, ?4)",
        params![clock.boot_id, clock.offset_ns, pid, now],
    )?;
    Ok((tx.last_insert_rowid(), gap))
}

/// What is known to be missing between the last run and now.
fn downtime(last: Option<&LastRun>, now: i64, carried: &Carried) -> Option<GapRow> {
    let lost = if carried.exact {
        format!("{}", carried.lost)
    } else {
        format!("at least {}", carried.lost)
    };
    let accounts = if carried.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", carried.detail.join("; "))
    };
    let drained = if carried.found > 0 {
        format!(
            "; this daemon drained {} decisions from the rings of {} generation(s) it found \
             still in the kernel",
            carried.drained, carried.found
        )
    } else {
        String::new()
    };
    let (from_ns, detail) = match last {
        Some(l) if l.stopped_ns.is_none() => (
            l.last_commit_ns.unwrap_or(l.started_ns),
            format!(
                "the daemon (pid {}) did not stop cleanly: {lost} decisions its generations \
                 emitted were neither committed nor counted in an earlier gap{drained}{accounts}",
                l.pid
            ),
        ),
        _ if carried.lost == 0 => return None,
        Some(l) => (
            l.stopped_ns.unwrap_or(now),
            format!(
                "no daemon was running (pid {} stopped cleanly): {lost} decisions the pinned \
                 programs made were not recorded{drained}{accounts}",
                l.pid
            ),
        ),
        None => (
            now,
            format!(
                "this lineage has no earlier run, yet {lost} decisions of earlier generations \
                 were not recorded{drained}{accounts}"
            ),
        ),
    };
    Some(GapRow {
        source: "downtime",
        lost: carried.lost,
        from_ns,
        until_ns: now,
        detail,
        ring: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::schema::migrate;

    fn clock() -> BootClock {
        BootClock {
            boot_id: "b".into(),
            offset_ns: 7,
        }
    }

    fn gaps(conn: &Connection) -> Vec<(String, i64, String)> {
        let mut st = conn
            .prepare("SELECT source, lost, detail FROM gaps ORDER BY id")
            .expect("prepare");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn a_crash_and_a_clean_stop_with_losses_leave_downtime_gaps_with_numbers() {
        let mut conn = Connection::open_in_memory().expect("db");
        migrate(&mut conn).expect("schema");
        let none = Carried::default();
        let (first, gap) = begin(&mut conn, &clock(), 10, &none).expect("first");
        assert_eq!(gap, None, "no run before the first");
        conn.execute("UPDATE runs SET last_commit_ns = 5 WHERE id = ?1", [first])
            .expect("commit time");
        // The first daemon died: the second says so, from its last commit, with the count.
        let carried = Carried {
            found: 1,
            drained: 1000,
            lost: 3,
            exact: true,
            detail: vec!["generation 1: 1203 emitted".into()],
        };
        let (second, gap) = begin(&mut conn, &clock(), 11, &carried).expect("second");
        let gap = gap.expect("crash gap");
        assert_eq!((gap.source, gap.from_ns, gap.lost), ("downtime", 5, 3));
        assert!(
            gap.detail
                .contains("(pid 10) did not stop cleanly: 3 decisions")
                && gap.detail.contains("drained 1000 decisions")
                && gap.detail.contains("generation 1: 1203 emitted")
                && !gap.detail.contains("unknown"),
            "{}",
            gap.detail
        );
        // A clean stop with nothing lost: nothing missing.
        conn.execute("UPDATE runs SET stopped_ns = 6 WHERE id = ?1", [second])
            .expect("stop");
        let drained_all = Carried {
            found: 1,
            drained: 40,
            exact: true,
            ..Carried::default()
        };
        let (third, gap) = begin(&mut conn, &clock(), 12, &drained_all).expect("third");
        assert_eq!(gap, None);
        // A clean stop after which the ring overflowed unread: a lower bound is a number too.
        conn.execute("UPDATE runs SET stopped_ns = 8 WHERE id = ?1", [third])
            .expect("stop");
        let bound = Carried {
            lost: 7,
            exact: false,
            ..Carried::default()
        };
        let (_, gap) = begin(&mut conn, &clock(), 13, &bound).expect("fourth");
        assert_eq!(gap.expect("downtime").from_ns, 8);
        let rows = gaps(&conn);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[1].1, 7);
        assert!(rows[1].2.contains("at least 7 decisions"), "{rows:?}");
    }
}
