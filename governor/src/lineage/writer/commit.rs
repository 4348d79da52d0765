//! One transaction of records: runs of events in multi-row inserts, everything else row by
//! row, the run's commit time noted; when the database refuses a record, the batch again
//! with each record in its own savepoint, the refused ones left out and counted.

use rusqlite::{params, Connection, ErrorCode, Transaction};

use super::{
    gaps::{ring_of, Refused},
    Options,
};
use crate::lineage::{
    boot::BootClock,
    record::{self, EventGroup, EventRow, Record},
};

/// Errors that come from the database's state (full, failing, locked), after which the same
/// transaction may succeed later; anything else is a record the database refuses.
pub(super) fn transient(e: &rusqlite::Error) -> bool {
    !matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig)
    )
}

/// Writes `records` at once, in transactions of up to [`Options::batch`] records, on the
/// calling thread (before the writer thread runs): what the database refuses is left out and
/// returned, as the writer would count it.
pub fn write_now(conn: &mut Connection, records: &[Record]) -> rusqlite::Result<Refused> {
    let mut group = None;
    let mut refused = Refused::default();
    for chunk in records.chunks(Options::default().batch) {
        match commit(conn, &mut group, None, chunk.iter(), None) {
            Err(e) if !transient(&e) => {
                commit(conn, &mut group, None, chunk.iter(), Some(&mut refused))?
            }
            other => other?,
        }
    }
    Ok(refused)
}

/// One transaction: every record of `records`, and the run's commit time. Runs of events go
/// in groups through `group` (prepared here on first use; it must be `conn`'s). With
/// `refused`, each record goes in its own savepoint and those the database refuses are left
/// out and counted there.
pub(super) fn commit<'a>(
    conn: &mut Connection,
    group: &mut Option<EventGroup>,
    run: Option<i64>,
    records: impl Iterator<Item = &'a Record>,
    mut refused: Option<&mut Refused>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut n: i64 = 0;
    // Runs of events go in multi-row inserts (in order: ids follow ingest order).
    let mut events: Vec<&EventRow> = Vec::new();
    for r in records {
        if let Some(refused) = refused.as_deref_mut() {
            n += i64::from(insert_alone(&tx, r, refused)?);
        } else if let Record::Event(e) = r {
            events.push(e);
        } else {
            insert_events(&tx, group, &events)?;
            n += events.len() as i64;
            events.clear();
            record::insert(&tx, r)?;
            n += 1;
        }
    }
    insert_events(&tx, group, &events)?;
    n += events.len() as i64;
    if let Some(run) = run {
        tx.prepare_cached(
            "UPDATE runs SET last_commit_ns = ?1, committed = committed + ?2 WHERE id = ?3",
        )?
        .execute(params![BootClock::now_ns(), n, run])?;
    }
    tx.commit()
}

/// Writes a run of events, preparing `group` on `tx`'s connection when the run fills one.
fn insert_events(
    tx: &Transaction<'_>,
    group: &mut Option<EventGroup>,
    events: &[&EventRow],
) -> rusqlite::Result<()> {
    if group.is_none() && events.len() >= record::EVENTS_PER_INSERT {
        *group = Some(EventGroup::prepare(tx)?);
    }
    record::insert_events(tx, group.as_mut(), events)
}

/// Inserts `r` in a savepoint; returns whether it was written (else it is counted refused).
fn insert_alone(tx: &Transaction<'_>, r: &Record, refused: &mut Refused) -> rusqlite::Result<bool> {
    tx.execute_batch("SAVEPOINT one")?;
    match record::insert(tx, r) {
        Ok(()) => tx.execute_batch("RELEASE one").map(|()| true),
        Err(e) if !transient(&e) => {
            tx.execute_batch("ROLLBACK TO one; RELEASE one")?;
            refused.count += 1;
            if let Record::Event(e) = r {
                refused.events += 1;
                if let Some(key) = ring_of(e) {
                    *refused.by_ring.entry(key).or_default() += 1;
                }
            }
            if refused.first.is_empty() {
                refused.first = e.to_string();
            }
            tracing::warn!(target: "governor::lineage", error = %e, record = ?r,
                "the lineage database refused a record");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
