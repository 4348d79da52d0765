//! Following a kernel ring buffer across generations: the one loop both readers (decisions,
//! `events`; process records, `procs`) run. It hands every record to the reader as it
//! arrives, and when a policy reload sends the next generation's ring (once the old
//! generation's programs have left the kernel, so that nothing more is written to the old
//! ring), it drains the old ring to the end before moving on. A consumer that falls behind
//! leaves records in the kernel ring instead of losing them in userspace.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::{io::unix::AsyncFd, sync::mpsc};

/// How long a reader whose consumer is full waits before it looks again.
const BACKLOG_RETRY: Duration = Duration::from_millis(2);

/// Runs until `take` returns false (its consumer is gone) or a ring buffer's fd fails.
/// `take` gets every record with the reader's `state`; `adopt` gets the successor's `C` when
/// the reader moves to its ring.
///
/// `room` is asked before each record is taken out of the ring: while it says no (the
/// consumer's queue is full), records stay in the kernel ring, which is the buffer then, and
/// the reader looks again every [`BACKLOG_RETRY`]. So a slow consumer costs nothing until the
/// kernel ring itself is full, and what the kernel cannot write then it counts (a
/// `kernel-ring` gap); the kernel side never waits.
pub async fn follow<S, C>(
    first: RingBuf<MapData>,
    mut next: mpsc::UnboundedReceiver<(RingBuf<MapData>, C)>,
    state: &mut S,
    room: impl Fn(&S) -> bool,
    take: impl Fn(&mut S, &[u8]) -> bool,
    adopt: impl Fn(&mut S, C),
) -> std::io::Result<()> {
    let mut fd = register(first)?;
    loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                match drain(guard.get_inner_mut(), state, &room, &take) {
                    Drained::Gone => return Ok(()),
                    Drained::Empty => guard.clear_ready(),
                    // Still readable: the next turn drains again, after a pause (adaptive
                    // wake-ups do not come while the reader is behind).
                    Drained::Backlog => {
                        drop(guard);
                        tokio::time::sleep(BACKLOG_RETRY).await;
                    }
                }
            }
            Some((ring, successor)) = next.recv() => {
                loop {
                    match drain(fd.get_mut(), state, &room, &take) {
                        Drained::Gone => return Ok(()),
                        Drained::Empty => break,
                        Drained::Backlog => tokio::time::sleep(BACKLOG_RETRY).await,
                    }
                }
                fd = register(ring)?;
                adopt(state, successor);
                tracing::debug!("ring reader moved to the new generation's ring buffer");
            }
        }
    }
}

fn register(ring: RingBuf<MapData>) -> std::io::Result<AsyncFd<RingBuf<MapData>>> {
    // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged, for as long as the
    // `AsyncFd` owns the ring buffer.
    unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)
}

/// How a [`drain`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// The ring is empty.
    Empty,
    /// The consumer had no room; records are left in the ring.
    Backlog,
    /// The consumer is gone.
    Gone,
}

/// Hands on the records in `ring` while the consumer has room.
fn drain<S>(
    ring: &mut RingBuf<MapData>,
    state: &mut S,
    room: &impl Fn(&S) -> bool,
    take: &impl Fn(&mut S, &[u8]) -> bool,
) -> Drained {
    loop {
        if !room(state) {
            return Drained::Backlog;
        }
        let Some(record) = ring.next() else {
            return Drained::Empty;
        };
        if !take(state, &record) {
            return Drained::Gone;
        }
    }
}
