//! The event stream: a reader task drains the kernel ring buffer as fast as its consumer takes
//! the events, decodes each record with length checks and hands it on through a bounded
//! channel. While the channel is full, records wait in the kernel ring (the kernel never
//! waits: what its ring cannot hold it counts); whatever cannot be handed on is counted,
//! never dropped silently. After a policy
//! reload it moves to the new generation's ring buffer once the old one is drained.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use aya::maps::{MapData, RingBuf};
use governor_common::Event;
use tokio::sync::mpsc;

use super::rings;

/// Counters of the userspace side of the event path.
#[derive(Debug, Default)]
pub struct ReaderStats {
    pub received: AtomicU64,
    /// Records that failed to decode (wrong length, version, kind).
    pub malformed: AtomicU64,
    /// Decoded events the consumer could not take in time.
    pub overflowed: AtomicU64,
}

/// The ring buffer of one kernel generation, with what its events need to be read (`C`: the
/// compiled policy whose agent and rule ids they carry).
pub type Source<C> = (RingBuf<MapData>, C);

/// Runs until the channel's receiver is gone or a ring buffer's fd fails. Each event goes out
/// with its generation's `C`. A new generation's ring buffer arrives on `next` once the
/// previous generation's programs have left the kernel; the old ring is drained to the end
/// first ([`rings::follow`]).
pub async fn read<C: Clone + Send + 'static>(
    first: Source<C>,
    next: mpsc::UnboundedReceiver<Source<C>>,
    tx: mpsc::Sender<(Event, C)>,
    stats: Arc<ReaderStats>,
) -> std::io::Result<()> {
    let (ring, mut context) = first;
    rings::follow(
        ring,
        next,
        &mut context,
        // The reader is the channel's only sender: room now is room for the next record.
        |_| tx.capacity() > 0,
        |context, record| hand_on(record, context, &tx, &stats),
        |context, successor| *context = successor,
    )
    .await
}

/// Decodes one record and hands it on; false once the receiver is gone.
fn hand_on<C: Clone>(
    record: &[u8],
    context: &C,
    tx: &mpsc::Sender<(Event, C)>,
    stats: &ReaderStats,
) -> bool {
    stats.received.fetch_add(1, Ordering::Relaxed);
    match Event::decode(record) {
        Ok(event) => match tx.try_send((event, context.clone())) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                stats.overflowed.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        },
        Err(e) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, len = record.len(), "malformed kernel event");
        }
    }
    true
}
