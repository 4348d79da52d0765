//! What the writer lost, as `gaps` rows: records dropped because memory ran out while the
//! database could not be written (`disk`), and records the database refused (`malformed`),
//! each split by the kernel ring whose decisions they were.

use std::collections::HashMap;

use crate::lineage::{
    boot::BootClock,
    record::{EventRow, GapRow, Record, RingKey},
};

/// Records dropped because memory ran out while the database could not be written.
#[derive(Debug, Default)]
pub(super) struct Dropped {
    pub(super) events: u64,
    pub(super) other: u64,
    pub(super) since_ns: Option<i64>,
    /// Of `events`, those of each kernel ring.
    pub(super) by_ring: HashMap<RingKey, u64>,
}

impl Dropped {
    /// The `disk` gaps for what was dropped while the database failed: one per kernel ring
    /// whose decisions were dropped, one for the rest.
    pub(super) fn gaps(&self, memory_bytes: usize) -> Vec<Record> {
        let Some(since) = self.since_ns else {
            return Vec::new();
        };
        let d = self;
        let why = format!(
            "the lineage database could not be written and the writer's memory for unwritten \
             records ({} MiB) was full; enforcement went on",
            memory_bytes >> 20
        );
        let now = BootClock::now_ns();
        let ringed: u64 = d.by_ring.values().sum();
        let mut gaps: Vec<Record> = d
            .by_ring
            .iter()
            .map(|(key, &n)| {
                Record::Gap(GapRow {
                    source: "disk",
                    lost: n,
                    from_ns: since,
                    until_ns: now,
                    detail: format!("{n} events of ring {} dropped: {why}", key.ring_id),
                    ring: Some(key.clone()),
                })
            })
            .collect();
        let rest = d.events - ringed;
        if rest > 0 || d.other > 0 {
            gaps.push(Record::Gap(GapRow {
                source: "disk",
                lost: rest,
                from_ns: since,
                until_ns: now,
                detail: format!("{rest} events and {} other records dropped: {why}", d.other),
                ring: None,
            }));
        }
        gaps
    }
}

/// Records a batch left out because the database refused them.
#[derive(Debug, Default)]
pub struct Refused {
    pub count: u64,
    pub events: u64,
    pub(super) first: String,
    /// Of `events`, those of each kernel ring.
    pub(super) by_ring: HashMap<RingKey, u64>,
}

impl Refused {
    /// The `malformed` gaps that say so: one per kernel ring whose decisions were refused,
    /// one for the rest.
    pub fn gaps(&self) -> Vec<GapRow> {
        let now = BootClock::now_ns();
        let mut gaps: Vec<GapRow> = self
            .by_ring
            .iter()
            .map(|(key, &n)| GapRow {
                source: "malformed",
                lost: n,
                from_ns: now,
                until_ns: now,
                detail: format!(
                    "{n} events of ring {} refused by the lineage database: {}",
                    key.ring_id, self.first
                ),
                ring: Some(key.clone()),
            })
            .collect();
        let ringed: u64 = self.by_ring.values().sum();
        if self.count > ringed {
            gaps.push(GapRow {
                source: "malformed",
                lost: self.events - ringed,
                from_ns: now,
                until_ns: now,
                detail: format!(
                    "{} records ({} events) refused by the lineage database: {}",
                    self.count - ringed,
                    self.events - ringed,
                    self.first
                ),
                ring: None,
            });
        }
        gaps
    }
}

/// The ring an event came from, if known.
pub(super) fn ring_of(e: &EventRow) -> Option<RingKey> {
    (e.ring != 0).then(|| RingKey {
        boot_id: e.boot_id.clone(),
        ring_id: e.ring,
    })
}
