//! The event stream: a reader task drains the kernel ring buffer as fast as it fills, decodes
//! each record with length checks and hands it on through a bounded channel without ever
//! waiting; whatever cannot be handed on is counted, never dropped silently.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use aya::maps::{MapData, RingBuf};
use governor_common::Event;
use tokio::{io::unix::AsyncFd, sync::mpsc};

/// Counters of the userspace side of the event path.
#[derive(Debug, Default)]
pub struct ReaderStats {
    pub received: AtomicU64,
    /// Records that failed to decode (wrong length, version, kind).
    pub malformed: AtomicU64,
    /// Decoded events the consumer could not take in time.
    pub overflowed: AtomicU64,
}

/// Runs until the channel's receiver is gone or the ring buffer's fd fails.
pub async fn read(
    ring: RingBuf<MapData>,
    tx: mpsc::Sender<Event>,
    stats: Arc<ReaderStats>,
) -> std::io::Result<()> {
    // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged, for as long as the
    // `AsyncFd` owns the ring buffer.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    loop {
        let mut guard = fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        while let Some(record) = ring.next() {
            stats.received.fetch_add(1, Ordering::Relaxed);
            match Event::decode(&record) {
                Ok(event) => match tx.try_send(event) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        stats.overflowed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                },
                Err(e) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, len = record.len(), "malformed kernel event");
                }
            }
        }
        guard.clear_ready();
    }
}
