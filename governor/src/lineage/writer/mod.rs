//! The lineage writer: one thread owns the database connection and drains the recorders'
//! queue into it, one transaction per batch (whatever is queued, up to [`Options::batch`]
//! records). Nothing waits for it: producers only ever `try_send` ([`super::recorder`]).
//!
//! Losses are never silent. Every [`Options::poll_every`] the writer reads the loss counters
//! it was given (the kernel's ring-buffer drops, the event reader's overflow and malformed
//! records, the recorders' refusals) and writes a `gaps` row for each one that grew, with the
//! interval in which the loss happened. When the database cannot be written (full disk, I/O
//! error), the batch stays in memory and is retried with backoff; the writer keeps taking
//! records up to [`Options::memory_bytes`], counts what it must drop beyond that, and writes
//! a `disk` gap in the first transaction that succeeds again. A record the database refuses
//! (a constraint) is left out alone, the rest of its batch is written, and a `malformed` gap
//! says so.
//!
//! [`open`] opens the database for writing; [`batching`] is the thread's loop (taking,
//! buffering, polling, retrying); [`commit`] writes one transaction; [`gaps`] turns what was
//! dropped or refused into `gaps` rows.
//!
//! May import the rest of `lineage/` and what `lineage/` may (its `mod.rs`).

mod batching;
mod commit;
mod gaps;
mod open;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::Receiver,
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use rusqlite::Connection;

use self::batching::Loop;
/// For the benchmark's synthetic database (`lineage::synth`), made like the daemon's.
#[cfg(feature = "bench")]
pub(crate) use self::open::PAGE_SIZE;
pub use self::{commit::write_now, open::open};
use super::record::{Record, RingKey, RingRow};

/// How the writer batches, buffers and polls.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most records in one transaction.
    pub batch: usize,
    /// Memory for records the database could not take yet (estimated; see [`batching::approx_bytes`]).
    pub memory_bytes: usize,
    /// How often the loss counters are read.
    pub poll_every: Duration,
    /// Longest wait between two attempts at a failing database.
    pub backoff_max: Duration,
    /// On stop, how long to keep trying to write what is still buffered.
    pub stop_within: Duration,
    /// Prune rows older than this ([`super::retain`]), at start and every
    /// [`Options::prune_every`]; `None` keeps everything.
    pub retain: Option<Duration>,
    pub prune_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch: 4096,
            memory_bytes: 256 << 20,
            poll_every: Duration::from_millis(500),
            backoff_max: Duration::from_secs(5),
            stop_within: Duration::from_secs(5),
            retain: None,
            prune_every: Duration::from_secs(3600),
        }
    }
}

/// One loss counter's current value. `source` is the `gaps.source` its growth is recorded
/// under; `what` says in words what was lost and where (`gaps.detail` follows the count).
/// `ring`: the kernel generation whose decisions it counts, if it counts one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub source: &'static str,
    pub what: &'static str,
    pub value: u64,
    pub ring: Option<RingKey>,
}

/// What one read of the counters found: the loss counters, and what the kernel generations
/// whose decisions the daemon reads say about themselves (kept in `rings`).
#[derive(Debug, Default)]
pub struct Polled {
    pub counts: Vec<Count>,
    pub rings: Vec<RingRow>,
}

impl From<Vec<Count>> for Polled {
    fn from(counts: Vec<Count>) -> Polled {
        Polled {
            counts,
            rings: Vec::new(),
        }
    }
}

/// Reads the loss counters (called on the writer's thread).
pub type Counts = Box<dyn FnMut() -> Polled + Send>;

/// What the writer did, for status and shutdown logs.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records committed.
    pub committed: AtomicU64,
    pub transactions: AtomicU64,
    /// Records waiting in memory.
    pub buffered: AtomicU64,
    /// Records dropped because the memory for unwritten records was used up (each is in a
    /// `disk` gap once the database takes writes again).
    pub dropped: AtomicU64,
    /// Records the database refused (each is in a `malformed` gap).
    pub rejected: AtomicU64,
    /// Whether the last attempt to write failed.
    pub failing: AtomicBool,
}

/// The running writer thread.
pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<WriterStats>,
}

impl Writer {
    /// Starts the writer on `conn`, draining `rx`. `run` is this daemon's `runs` row (see
    /// [`super::runs`]): each transaction notes its commit time there, and a clean stop marks
    /// it stopped.
    pub fn spawn(
        conn: Connection,
        rx: Receiver<Record>,
        options: Options,
        counts: Counts,
        run: Option<i64>,
    ) -> std::io::Result<Writer> {
        Self::start(Loop::new(conn, rx, options, counts, run))
    }

    fn start(mut w: Loop) -> std::io::Result<Writer> {
        let (stop, stats) = (Arc::clone(&w.stop), Arc::clone(&w.stats));
        let thread = std::thread::Builder::new()
            .name("lineage-writer".to_owned())
            .spawn(move || w.run())?;
        Ok(Writer {
            stop,
            thread: Some(thread),
            stats,
        })
    }

    /// Stops the writer: it takes what is still queued, writes it (trying for up to
    /// [`Options::stop_within`]), records the last loss counts, marks the run stopped
    /// cleanly if everything was written, and returns.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
