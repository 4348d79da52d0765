//! What the daemon records in the lineage: one [`Record`] per row, in the terms of the
//! schema ([`super::schema`]), and [`insert`], the only code that writes them. Producers
//! (the event sink, the process tracker, the lease authority, halts, policy loads) build
//! records; the writer batches them into transactions.
//!
//! One file per row family: [`events`] (kernel decisions, and the one list of the `events`
//! columns that both binders use), [`event_group`] (the in-place group statement),
//! [`processes`], [`authority`] (policies, keys, leases and their life, halts), [`gaps`],
//! [`rings`] (each kernel generation's decision ring and its tallies), [`rollbacks`] (a
//! restore of a lease's snapshot).
//!
//! May import the rest of `lineage/` and what `lineage/` may (its `mod.rs`).

mod authority;
mod event_group;
mod events;
mod gaps;
mod processes;
mod rings;
mod rollbacks;

use rusqlite::Transaction;

pub use self::{
    authority::{HaltRow, KeyRow, LeaseRow, LifecycleRow, PolicyRow, SignerRow},
    event_group::EventGroup,
    events::{insert_events, EventRow, EVENTS_PER_INSERT},
    gaps::GapRow,
    processes::ProcessRow,
    rings::{ring_exists, RingKey, RingRow},
    rollbacks::RollbackRow,
};

/// One row (or row update) for the lineage database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Event(Box<EventRow>),
    Process(ProcessRow),
    Lease(Box<LeaseRow>),
    Lifecycle(LifecycleRow),
    Halt(HaltRow),
    Gap(GapRow),
    Policy(Box<PolicyRow>),
    Key(KeyRow),
    Ring(Box<RingRow>),
    Rollback(Box<RollbackRow>),
}

fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// SQLite integers are signed 64-bit; kernel ids and times fit, a wrapped value would be a
/// kernel bug, kept as its bit pattern rather than refused.
fn i(v: u64) -> i64 {
    v as i64
}

/// Writes one record. Re-inserting an event, lease, key or policy row that is already there
/// changes nothing (a restarted daemon may see the same thing again), so ingest is
/// idempotent.
pub fn insert(tx: &Transaction<'_>, record: &Record) -> rusqlite::Result<()> {
    match record {
        Record::Event(e) => insert_events(tx, None, &[e]),
        Record::Process(p) => processes::insert(tx, p),
        Record::Lease(l) => authority::insert_lease(tx, l),
        Record::Lifecycle(c) => authority::insert_lifecycle(tx, c),
        Record::Halt(h) => authority::insert_halt(tx, h),
        Record::Gap(g) => gaps::insert(tx, g),
        Record::Policy(p) => authority::insert_policy(tx, p),
        Record::Key(k) => authority::insert_key(tx, k),
        Record::Ring(r) => rings::update(tx, r),
        Record::Rollback(r) => rollbacks::insert(tx, r),
    }
}

#[cfg(test)]
mod tests;
