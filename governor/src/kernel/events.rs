//! The event stream: a reader task drains the kernel ring buffer as fast as its consumer takes
//! the events, decodes each record with length checks and hands it on through a bounded
//! channel. While the channel is full, records wait in the kernel ring (the kernel never
//! waits: what its ring cannot hold it counts); whatever cannot be handed on is counted,
//! never dropped silently. After a policy
//! reload it moves to the new generation's ring buffer once the old one is drained.
//!
//! Every count is kept per generation's ring as well ([`Ledger`]): with the kernel's own
//! counts of what each generation emitted and dropped, the lineage knows exactly which of a
//! generation's decisions it lacks, also after the daemon that read it died.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex, PoisonError,
};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use governor_common::{maps::Counter, Event};
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
    /// The same losses, and the kernel's counts, per generation's ring.
    pub ledger: Ledger,
}

/// One generation's decision ring buffer, as the reader follows it.
pub struct Ring {
    pub buf: RingBuf<MapData>,
    /// The kernel map id of the ring: the lineage's name for it (`rings.ring_id`).
    pub id: u32,
    pub generation: u64,
    pub policy_version: String,
    /// Its generation's counters map, held apart from the generation's `Enforcer` so that
    /// the final counts can be read once the generation is retired.
    pub counters: Option<PerCpuArray<MapData, u64>>,
}

/// The ring buffer of one kernel generation, with what its events need to be read (`C`: the
/// compiled policy whose agent and rule ids they carry).
pub type Source<C> = (Ring, C);

/// Sums one counter over CPUs.
pub fn read_counter(counters: &PerCpuArray<MapData, u64>, c: Counter) -> Option<u64> {
    counters.get(&(c as u32), 0).ok().map(|v| v.iter().sum())
}

/// What the reader knows about one generation's ring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingState {
    pub id: u32,
    pub generation: u64,
    pub policy_version: String,
    /// The kernel's EventsEmitted and EventsDropped of the generation, as last read.
    pub emitted: u64,
    pub dropped: u64,
    /// Read after the generation's programs left the kernel: final.
    pub closed: bool,
    /// Records of this ring that failed to decode, and decoded events the consumer could
    /// not take.
    pub malformed: u64,
    pub overflowed: u64,
}

struct Account {
    state: RingState,
    counters: Option<PerCpuArray<MapData, u64>>,
}

impl Account {
    fn refresh(&mut self) {
        if let Some(c) = &self.counters {
            if let Some(n) = read_counter(c, Counter::EventsEmitted) {
                self.state.emitted = n;
            }
            if let Some(n) = read_counter(c, Counter::EventsDropped) {
                self.state.dropped = n;
            }
        }
    }
}

/// Per ring accounting, shared by the reader (which opens, counts for and closes rings) and
/// the lineage writer's poll (which reads it).
#[derive(Default)]
pub struct Ledger {
    rings: Mutex<Vec<Account>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.read()).finish()
    }
}

impl Ledger {
    fn with<T>(&self, f: impl FnOnce(&mut Vec<Account>) -> T) -> T {
        f(&mut self.rings.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Starts accounting for `ring` (its counters handle moves here).
    pub fn open(&self, ring: &mut Ring) {
        let account = Account {
            state: RingState {
                id: ring.id,
                generation: ring.generation,
                policy_version: ring.policy_version.clone(),
                ..RingState::default()
            },
            counters: ring.counters.take(),
        };
        self.with(|rings| rings.push(account));
    }

    /// Reads ring `id`'s final counts (its programs have left the kernel) and lets go of
    /// its counters.
    pub fn close(&self, id: u32) {
        self.with(|rings| {
            if let Some(a) = rings.iter_mut().find(|a| a.state.id == id) {
                a.refresh();
                a.state.closed = a.counters.is_some();
                a.counters = None;
            }
        });
    }

    fn count(&self, id: u32, f: impl FnOnce(&mut RingState)) {
        self.with(|rings| {
            if let Some(a) = rings.iter_mut().find(|a| a.state.id == id) {
                f(&mut a.state);
            }
        });
    }

    /// Every ring's state, the open ones' kernel counts read now.
    pub fn read(&self) -> Vec<RingState> {
        self.with(|rings| {
            rings
                .iter_mut()
                .map(|a| {
                    a.refresh();
                    a.state.clone()
                })
                .collect()
        })
    }
}

/// What the reader hands on: the event, its generation's `C`, and its ring's id.
pub type Item<C> = (Event, C, u32);

/// Runs until the channel's receiver is gone or a ring buffer's fd fails. Each event goes out
/// with its generation's `C`. A new generation's ring buffer arrives on `next` once the
/// previous generation's programs have left the kernel; the old ring is drained to the end
/// first ([`rings::follow`]), and its final counts are read into the ledger.
pub async fn read<C: Clone + Send + 'static>(
    first: Source<C>,
    next: mpsc::UnboundedReceiver<Source<C>>,
    tx: mpsc::Sender<Item<C>>,
    stats: Arc<ReaderStats>,
) -> std::io::Result<()> {
    let (mut ring, context) = first;
    stats.ledger.open(&mut ring);
    let mut state = (context, ring.id);
    let next = adopt_rings(next, Arc::clone(&stats));
    rings::follow(
        ring.buf,
        next,
        &mut state,
        // The reader is the channel's only sender: room now is room for the next record.
        |_| tx.capacity() > 0,
        |(context, id), record| hand_on(record, context, *id, &tx, &stats),
        |state, (context, id)| {
            stats.ledger.close(state.1);
            *state = (context, id);
        },
    )
    .await
}

/// Opens the ledger's account of each successor ring as it arrives, so that the reader
/// follows plain ring buffers.
fn adopt_rings<C: Send + 'static>(
    mut next: mpsc::UnboundedReceiver<Source<C>>,
    stats: Arc<ReaderStats>,
) -> mpsc::UnboundedReceiver<(RingBuf<MapData>, (C, u32))> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((mut ring, context)) = next.recv().await {
            stats.ledger.open(&mut ring);
            if tx.send((ring.buf, (context, ring.id))).is_err() {
                break;
            }
        }
    });
    rx
}

/// Decodes one record and hands it on; false once the receiver is gone.
fn hand_on<C: Clone>(
    record: &[u8],
    context: &C,
    ring: u32,
    tx: &mpsc::Sender<Item<C>>,
    stats: &ReaderStats,
) -> bool {
    stats.received.fetch_add(1, Ordering::Relaxed);
    match Event::decode(record) {
        Ok(event) => match tx.try_send((event, context.clone(), ring)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                stats.overflowed.fetch_add(1, Ordering::Relaxed);
                stats.ledger.count(ring, |s| s.overflowed += 1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        },
        Err(e) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            stats.ledger.count(ring, |s| s.malformed += 1);
            tracing::warn!(error = %e, len = record.len(), "malformed kernel event");
        }
    }
    true
}
