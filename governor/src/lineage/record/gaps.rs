//! Events lost between two times (`gaps`): each gap that counts one kernel ring's decisions
//! also grows that ring's tally ([`super::rings`]).

use rusqlite::{params, Transaction};

use super::{i, rings::ring_add, RingKey};

/// Events lost between two times (`gaps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRow {
    /// `kernel-ring`, `queue`, `disk`, `malformed` or `downtime`.
    pub source: &'static str,
    pub lost: u64,
    pub from_ns: i64,
    pub until_ns: i64,
    pub detail: String,
    /// The ring whose decisions it counts (its `rings.lost`, or `rings.dropped` for a
    /// `kernel-ring` gap, grows by `lost`); `None`: not one ring's decisions.
    pub ring: Option<RingKey>,
}

/// A gap, and the tally of the ring it counts.
pub(super) fn insert(tx: &Transaction<'_>, g: &GapRow) -> rusqlite::Result<()> {
    let ring = match &g.ring {
        Some(key) => {
            let tally = if g.source == "kernel-ring" {
                "dropped"
            } else {
                "lost"
            };
            Some(ring_add(tx, key, tally, g.lost)?)
        }
        None => None,
    };
    tx.prepare_cached(
        "INSERT INTO gaps (source, lost, from_ns, until_ns, detail, ring) VALUES (?1, \
         ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        g.source,
        i(g.lost),
        g.from_ns,
        g.until_ns,
        g.detail,
        ring
    ])?;
    Ok(())
}
