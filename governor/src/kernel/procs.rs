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
use tokio::io::unix::AsyncFd;

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

/// Snapshots the processes in `cgroups` (every agent cgroup and the cgroups below it), then
/// runs until the ring buffer's fd fails.
pub async fn read(
    ring: RingBuf<MapData>,
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
    // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged, for as long as the
    // `AsyncFd` owns the ring buffer.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    loop {
        let mut guard = fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        while let Some(record) = ring.next() {
            stats.received.fetch_add(1, Ordering::Relaxed);
            match ProcEvent::decode(&record) {
                Ok(ev) => tracker.ingest(&ev),
                Err(e) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, len = record.len(), "malformed process record");
                }
            }
        }
        guard.clear_ready();
    }
}
