//! The process-lineage stream: a reader task drains the kernel's process ring buffer
//! (`GOV_PROCS`: agent processes' fork, exec and exit), decodes each record with length
//! checks and hands it to the process tracker, which turns it into `processes` rows for the
//! lineage writer without ever waiting. Before reading, it records the agent processes that
//! were already running ([`Tracker::snapshot`]).

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use aya::maps::{MapData, RingBuf};
use governor_common::process::ProcEvent;
use tokio::sync::mpsc;

use super::rings;
use crate::lineage::processes::Tracker;

/// Counters of the userspace side of the process stream.
#[derive(Debug, Default)]
pub struct ProcStats {
    pub received: AtomicU64,
    /// Records that failed to decode (wrong length, version, kind).
    pub malformed: AtomicU64,
    /// Processes found running in agent cgroups at start.
    pub snapshot: AtomicU64,
}

/// A policy reload's successor: the new generation's process ring buffer and its agents
/// (names by agent id, with their cgroups).
pub type Successor = (RingBuf<MapData>, Vec<(String, PathBuf)>);

/// Snapshots the processes in `cgroups` (every agent cgroup and the cgroups below it), then
/// runs until a ring buffer's fd fails. After a policy reload, the new generation's ring
/// arrives on `next` once the old generation's programs have left the kernel; the old ring is
/// drained to the end first ([`rings::follow`]).
pub async fn read(
    ring: RingBuf<MapData>,
    next: mpsc::UnboundedReceiver<Successor>,
    mut tracker: Tracker,
    cgroups: Vec<PathBuf>,
    stats: Arc<ProcStats>,
) -> std::io::Result<()> {
    let found = tracker.snapshot(&cgroups);
    stats.snapshot.store(found as u64, Ordering::Relaxed);
    tracing::info!(
        processes = found,
        cgroups = cgroups.len(),
        "lineage: agent processes already running recorded from /proc"
    );
    rings::follow(
        ring,
        next,
        &mut tracker,
        // The tracker hands records to the never-waiting recorder, which counts refusals.
        |_| true,
        |tracker, record| {
            stats.received.fetch_add(1, Ordering::Relaxed);
            match ProcEvent::decode(record) {
                Ok(ev) => tracker.ingest(&ev),
                Err(e) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, len = record.len(), "malformed process record");
                }
            }
            true
        },
        Tracker::set_agents,
    )
    .await
}
