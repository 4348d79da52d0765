//! Following a kernel ring buffer across generations: the one loop both readers (decisions,
//! `events`; process records, `procs`) run. It hands every record to the reader as it
//! arrives, and when a policy reload sends the next generation's ring (once the old
//! generation's programs have left the kernel, so that nothing more is written to the old
//! ring), it drains the old ring to the end before moving on.

use aya::maps::{MapData, RingBuf};
use tokio::{io::unix::AsyncFd, sync::mpsc};

/// Runs until `take` returns false (its consumer is gone) or a ring buffer's fd fails.
/// `take` gets every record with the reader's `state`; `adopt` gets the successor's `C` when
/// the reader moves to its ring.
pub async fn follow<S, C>(
    first: RingBuf<MapData>,
    mut next: mpsc::UnboundedReceiver<(RingBuf<MapData>, C)>,
    state: &mut S,
    take: impl Fn(&mut S, &[u8]) -> bool,
    adopt: impl Fn(&mut S, C),
) -> std::io::Result<()> {
    let mut fd = register(first)?;
    loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                if !drain(guard.get_inner_mut(), state, &take) {
                    return Ok(());
                }
                guard.clear_ready();
            }
            Some((ring, successor)) = next.recv() => {
                if !drain(fd.get_mut(), state, &take) {
                    return Ok(());
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

/// Hands on every record in `ring`; false once `take` says its consumer is gone.
fn drain<S>(
    ring: &mut RingBuf<MapData>,
    state: &mut S,
    take: &impl Fn(&mut S, &[u8]) -> bool,
) -> bool {
    while let Some(record) = ring.next() {
        if !take(state, &record) {
            return false;
        }
    }
    true
}
