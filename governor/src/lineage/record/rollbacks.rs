//! The row of a restore (`rollbacks`), and the `rolled-back` step it adds to its lease's life
//! (`lease_lifecycle`, detail naming the `rollbacks` id), written together in the same
//! transaction so that neither is ever on record without the other.

use rusqlite::{params, Transaction};
use serde_json::json;

use super::i;

/// One restore of a lease's snapshot (`rollbacks`). Times: Unix ns (`*_ns`) and
/// `CLOCK_BOOTTIME` of `boot_id` (`*_boot_ns`): the duration is measured on the boot clock,
/// the time to recovery across a reboot on the wall clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRow {
    pub lease_id: String,
    pub agent: String,
    /// `uid:N`.
    pub actor: String,
    /// `rollback` or `halt`.
    pub trigger: &'static str,
    /// A halt-triggered restore: the halt's time (Unix ns). `None`: the incident began with
    /// the lease's first lease-allowed destructive event.
    pub incident_ns: Option<i64>,
    pub boot_id: String,
    pub started_boot_ns: u64,
    pub ended_boot_ns: u64,
    pub started_ns: i64,
    pub ended_ns: i64,
    pub restored: u64,
    pub recreated: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub conflicts: u64,
    pub forced: bool,
    /// `restored` or `partial` (conflicts left alone).
    pub outcome: &'static str,
    /// JSON object: the paths of each kind and the conflicts, bounded.
    pub detail: String,
}

/// The restore, and its lease's `rolled-back` step.
pub(super) fn insert(tx: &Transaction<'_>, r: &RollbackRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO rollbacks (lease_id, agent, actor, trigger, incident_ns, boot_id, \
         started_boot_ns, ended_boot_ns, started_ns, ended_ns, restored, recreated, removed, \
         unchanged, conflicts, forced, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
         ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        r.lease_id,
        r.agent,
        r.actor,
        r.trigger,
        r.incident_ns,
        r.boot_id,
        i(r.started_boot_ns),
        i(r.ended_boot_ns),
        r.started_ns,
        r.ended_ns,
        i(r.restored),
        i(r.recreated),
        i(r.removed),
        i(r.unchanged),
        i(r.conflicts),
        r.forced,
        r.outcome,
        r.detail,
    ])?;
    let id = tx.last_insert_rowid();
    let step = json!({
        "rollback": id,
        "trigger": r.trigger,
        "outcome": r.outcome,
        "conflicts": r.conflicts,
        "forced": r.forced,
    });
    tx.prepare_cached(
        "INSERT INTO lease_lifecycle (ts_ns, lease_id, request_id, state, actor, detail) \
         VALUES (?1, ?2, NULL, 'rolled-back', ?3, ?4)",
    )?
    .execute(params![r.ended_ns, r.lease_id, r.actor, step.to_string()])?;
    Ok(())
}
