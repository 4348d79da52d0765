//! The daemon's runs (`runs`): each daemon notes its start, the writer notes every commit,
//! a clean stop notes the stop. The next daemon reads the last run to say honestly what the
//! lineage may lack: a `downtime` gap for the time no daemon recorded while the pinned
//! programs kept enforcing, and for records a daemon that died had not committed.

use rusqlite::{params, Connection, OptionalExtension};

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

/// Notes this daemon's run (boot, clock offset, pid, start) and writes the `downtime` gap
/// since the previous run, if there is one to write. `enforced_meanwhile` says whether a
/// previous generation's pinned programs were found enforcing (their decisions since the
/// previous daemon stopped are not in the lineage). Returns the run's id and the gap.
pub fn begin(
    conn: &mut Connection,
    clock: &BootClock,
    pid: u32,
    enforced_meanwhile: bool,
) -> rusqlite::Result<(i64, Option<GapRow>)> {
    let now = BootClock::now_ns();
    let tx = conn.transaction()?;
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
    let gap = last.and_then(|l| downtime(&l, now, enforced_meanwhile));
    if let Some(g) = &gap {
        record::insert(&tx, &Record::Gap(g.clone()))?;
    }
    tx.execute(
        "INSERT INTO runs (boot_id, offset_ns, pid, started_ns) VALUES (?1, ?2, ?3, ?4)",
        params![clock.boot_id, clock.offset_ns, pid, now],
    )?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok((id, gap))
}

/// What is known to be missing between the last run and now.
fn downtime(last: &LastRun, now: i64, enforced_meanwhile: bool) -> Option<GapRow> {
    let meanwhile = if enforced_meanwhile {
        "; until this daemon started, the pinned programs kept enforcing and their decisions \
         were not recorded (count unknown)"
    } else {
        ""
    };
    match last.stopped_ns {
        None => {
            let from = last.last_commit_ns.unwrap_or(last.started_ns);
            Some(GapRow {
                source: "downtime",
                lost: 0,
                from_ns: from,
                until_ns: now,
                detail: format!(
                    "the daemon (pid {}) did not stop cleanly: records it had not committed \
                     after its last commit are lost (count unknown){meanwhile}",
                    last.pid
                ),
            })
        }
        Some(stopped) if enforced_meanwhile => Some(GapRow {
            source: "downtime",
            lost: 0,
            from_ns: stopped,
            until_ns: now,
            detail: format!(
                "no daemon was running (pid {} stopped cleanly){meanwhile}",
                last.pid
            ),
        }),
        Some(_) => None,
    }
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

    fn gaps(conn: &Connection) -> Vec<(String, String)> {
        let mut st = conn
            .prepare("SELECT source, detail FROM gaps ORDER BY id")
            .expect("prepare");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn a_crash_and_a_clean_stop_with_pins_leave_downtime_gaps() {
        let mut conn = Connection::open_in_memory().expect("db");
        migrate(&mut conn).expect("schema");
        let (first, gap) = begin(&mut conn, &clock(), 10, true).expect("first");
        assert_eq!(gap, None, "no run before the first");
        conn.execute("UPDATE runs SET last_commit_ns = 5 WHERE id = ?1", [first])
            .expect("commit time");
        // The first daemon died: the second says so, from its last commit.
        let (second, gap) = begin(&mut conn, &clock(), 11, false).expect("second");
        let gap = gap.expect("crash gap");
        assert_eq!((gap.source, gap.from_ns), ("downtime", 5));
        assert!(
            gap.detail.contains("(pid 10) did not stop cleanly"),
            "{}",
            gap.detail
        );
        // A clean stop without pinned enforcement meanwhile: nothing missing.
        conn.execute("UPDATE runs SET stopped_ns = 6 WHERE id = ?1", [second])
            .expect("stop");
        let (third, gap) = begin(&mut conn, &clock(), 12, false).expect("third");
        assert_eq!(gap, None);
        // A clean stop while the pins kept enforcing: their decisions are missing.
        conn.execute("UPDATE runs SET stopped_ns = 8 WHERE id = ?1", [third])
            .expect("stop");
        let (_, gap) = begin(&mut conn, &clock(), 13, true).expect("fourth");
        assert_eq!(gap.expect("downtime").from_ns, 8);
        let rows = gaps(&conn);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(
            rows[1].1.contains("pinned programs kept enforcing"),
            "{rows:?}"
        );
    }
}
