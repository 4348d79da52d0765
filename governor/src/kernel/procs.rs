//! The process-lineage stream: a reader task drains the kernel's process ring buffer
//! (`GOV_PROCS`: agent processes' fork, exec and exit), decodes each record with length
//! checks and hands it to a [`ProcSink`] (the daemon wires the lineage's process tracker,
//! which turns records into `processes` rows without ever waiting). Before reading, the sink
//! records the agent processes that were already running ([`ProcSink::snapshot`]).

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

/// Where decoded process records go. The kernel side knows nothing of what the sink makes
/// of them; it must never wait.
pub trait ProcSink: Send + 'static {
    /// Records the processes already running in `cgroups`; how many it found.
    fn snapshot(&mut self, cgroups: &[PathBuf]) -> usize;
    /// Takes one fork, exec or exit record.
    fn ingest(&mut self, ev: &ProcEvent);
    /// The agents (names with their cgroups) after a policy reload.
    fn set_agents(&mut self, agents: Vec<(String, PathBuf)>);
}

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
pub async fn read<T: ProcSink>(
    ring: RingBuf<MapData>,
    next: mpsc::UnboundedReceiver<Successor>,
    mut tracker: T,
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
        T::set_agents,
    )
    .await
}
