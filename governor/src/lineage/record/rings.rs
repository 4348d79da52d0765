//! Each kernel generation's decision ring (`rings`): what is known about it, and its
//! tallies of decisions committed, lost and dropped.

use rusqlite::{params, Transaction};

use super::i;

/// One kernel generation's decision ring: the kernel map id of its `GOV_EVENTS`, unique
/// within a boot (`rings` row).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingKey {
    pub boot_id: String,
    pub ring_id: u32,
}

/// What is known about one kernel generation's decision ring (`rings`); `None` fields keep
/// what an earlier row set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingRow {
    pub key: RingKey,
    pub generation: Option<u64>,
    pub policy_version: Option<String>,
    /// The run of the daemon that loaded it.
    pub run: Option<i64>,
    /// The kernel's EventsEmitted and EventsDropped, as read now.
    pub emitted: Option<u64>,
    pub kernel_dropped: Option<u64>,
    /// The counts were read after the generation's programs left the kernel: they are final.
    pub emitted_final: bool,
    /// A daemon counted in gaps whatever of it the lineage lacks.
    pub reconciled_ns: Option<i64>,
}

impl RingRow {
    pub fn new(key: RingKey) -> RingRow {
        RingRow {
            key,
            generation: None,
            policy_version: None,
            run: None,
            emitted: None,
            kernel_dropped: None,
            emitted_final: false,
            reconciled_ns: None,
        }
    }
}

/// Makes sure `rings` has a row for `key`; returns its id.
pub(super) fn ring_row(tx: &Transaction<'_>, key: &RingKey) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT OR IGNORE INTO rings (boot_id, ring_id) VALUES (?1, ?2)")?
        .execute(params![key.boot_id, key.ring_id])?;
    tx.prepare_cached("SELECT id FROM rings WHERE boot_id = ?1 AND ring_id = ?2")?
        .query_row(params![key.boot_id, key.ring_id], |r| r.get(0))
}

/// Whether `rings` has a row for `key`.
pub fn ring_exists(tx: &Transaction<'_>, key: &RingKey) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT count(*) FROM rings WHERE boot_id = ?1 AND ring_id = ?2")?
        .query_row(params![key.boot_id, key.ring_id], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
}

/// Adds `n` to one of a ring's tallies (`committed`, `lost`, `dropped`).
pub(super) fn ring_add(
    tx: &Transaction<'_>,
    key: &RingKey,
    column: &str,
    n: u64,
) -> rusqlite::Result<i64> {
    let id = ring_row(tx, key)?;
    let sql = match column {
        "committed" => "UPDATE rings SET committed = committed + ?1 WHERE id = ?2",
        "lost" => "UPDATE rings SET lost = lost + ?1 WHERE id = ?2",
        _ => "UPDATE rings SET dropped = dropped + ?1 WHERE id = ?2",
    };
    tx.prepare_cached(sql)?.execute(params![i(n), id])?;
    Ok(id)
}

/// What is known about a ring; `None` fields keep what an earlier row set.
pub(super) fn update(tx: &Transaction<'_>, r: &RingRow) -> rusqlite::Result<()> {
    let id = ring_row(tx, &r.key)?;
    // A final count is never replaced by a later, non-final read.
    tx.prepare_cached(
        "UPDATE rings SET generation = coalesce(?1, generation), \
         policy_version = coalesce(?2, policy_version), run = coalesce(?3, run), \
         emitted = CASE WHEN emitted_final = 1 THEN emitted ELSE coalesce(?4, emitted) END, \
         kernel_dropped = CASE WHEN emitted_final = 1 THEN kernel_dropped \
             ELSE coalesce(?5, kernel_dropped) END, \
         emitted_final = max(emitted_final, ?6), \
         reconciled_ns = coalesce(reconciled_ns, ?7) WHERE id = ?8",
    )?
    .execute(params![
        r.generation.map(i),
        r.policy_version,
        r.run,
        r.emitted.map(i),
        r.kernel_dropped.map(i),
        i64::from(r.emitted_final),
        r.reconciled_ns,
        id
    ])?;
    Ok(())
}
