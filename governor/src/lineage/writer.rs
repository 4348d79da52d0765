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

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use rusqlite::{params, Connection, ErrorCode, Transaction};

use super::{
    boot::BootClock,
    record::{self, EventGroup, EventRow, GapRow, Record, RingKey, RingRow},
    schema::{self, SchemaError},
};

/// How the writer batches, buffers and polls.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most records in one transaction.
    pub batch: usize,
    /// Memory for records the database could not take yet (estimated; see [`approx_bytes`]).
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

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "opening the lineage database {}: {source}; make sure its directory exists and root \
         can write it, or choose another file with --lineage-db",
        path.display()
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "setting up the lineage database {} ({what}): {source}; if the file is damaged, move \
         it aside (the daemon creates a new one) and keep it for the record",
        path.display()
    )]
    Setup {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("the lineage database {}: {source}", path.display())]
    Schema { path: PathBuf, source: SchemaError },
}

/// How long a writer (or a reader) waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes per database page, for a database this writer creates.
pub(crate) const PAGE_SIZE: i64 = 16 * 1024;
/// The writer's page cache, in KiB (`PRAGMA cache_size` takes a negated KiB count).
const CACHE_KIB: i64 = -16 * 1024;
/// WAL pages after which a commit checkpoints the WAL into the database file (32 MiB of
/// 16 KiB pages).
const CHECKPOINT_PAGES: i64 = 2048;

/// Opens (creating it if missing) the lineage database at `path` for writing: WAL journal,
/// `synchronous = NORMAL` (a committed transaction survives the daemon's crash or SIGKILL; a
/// power loss may take the last ones), a busy timeout so that readers never make a write
/// fail, and the schema brought up to date.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    let mut conn = Connection::open(path).map_err(|source| OpenError::Open {
        path: path.to_owned(),
        source,
    })?;
    let setup = |what| {
        let path = path.to_owned();
        move |source| OpenError::Setup { path, what, source }
    };
    // A new database gets 16 KiB pages: at flood rates a page split moves a row in four
    // times fewer inserts (measured: about a fifth more rows per second than 4 KiB). An
    // existing database keeps the page size it was created with.
    conn.pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(setup("page_size"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(setup("busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(setup("journal_mode = WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Setup {
            path: path.to_owned(),
            what: "journal_mode = WAL",
            source: rusqlite::Error::InvalidQuery,
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(setup("synchronous = NORMAL"))?;
    // Flood rates: a page cache that holds the indexes' hot pages, and checkpoints every
    // 32 MiB of WAL instead of every 1,000 pages (each checkpoint syncs the database file).
    conn.pragma_update(None, "cache_size", CACHE_KIB)
        .map_err(setup("cache_size"))?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
        .map_err(setup("wal_autocheckpoint"))?;
    schema::migrate(&mut conn).map_err(|source| OpenError::Schema {
        path: path.to_owned(),
        source,
    })?;
    Ok(conn)
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

/// Records dropped because memory ran out while the database could not be written.
#[derive(Debug, Default)]
struct Dropped {
    events: u64,
    other: u64,
    since_ns: Option<i64>,
    /// Of `events`, those of each kernel ring.
    by_ring: HashMap<RingKey, u64>,
}

struct Loop {
    conn: Connection,
    rx: Receiver<Record>,
    counts: Counts,
    run: Option<i64>,
    stats: Arc<WriterStats>,
    stop: Arc<AtomicBool>,
    options: Options,
    pending: VecDeque<Record>,
    pending_bytes: usize,
    /// Gap rows not written yet (they go first in the next transaction).
    gaps: Vec<Record>,
    /// Each loss counter's value at the last poll.
    last: HashMap<(&'static str, &'static str, Option<RingKey>), u64>,
    /// Each ring's row as last queued.
    rings: HashMap<RingKey, RingRow>,
    last_poll_ns: i64,
    next_poll: Instant,
    next_prune: Instant,
    dropped: Dropped,
    /// Set while the database fails: when to try again.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Every recorder is gone.
    closed: bool,
    /// Tests: runs on the connection before each write (e.g. to fill the database).
    #[cfg(test)]
    before_write: Option<BeforeWrite>,
}

/// Tests: what runs on the connection before each write.
#[cfg(test)]
type BeforeWrite = Box<dyn FnMut(&Connection) + Send>;

/// An estimate of the memory a record holds (its strings and the enum itself).
pub fn approx_bytes(r: &Record) -> usize {
    let s = |o: &Option<String>| o.as_ref().map_or(0, String::len);
    std::mem::size_of::<Record>()
        + match r {
            Record::Event(e) => {
                std::mem::size_of_val(&**e)
                    + e.boot_id.len()
                    + s(&e.agent)
                    + e.comm.len()
                    + s(&e.exe)
                    + e.class.len()
                    + e.decision.len()
                    + e.target.len()
                    + s(&e.path)
                    + s(&e.rule)
                    + s(&e.lease_id)
                    + e.policy_version.len()
            }
            Record::Lease(l) => std::mem::size_of_val(&**l) + l.document.len() + l.scopes.len(),
            Record::Policy(p) => std::mem::size_of_val(&**p) + p.text.len(),
            Record::Process(record::ProcessRow::Exec { argv, exe, .. }) => {
                exe.len() + argv.iter().map(|a| a.len() + 24).sum::<usize>()
            }
            Record::Lifecycle(c) => s(&c.detail) + s(&c.lease_id) + s(&c.actor),
            Record::Gap(g) => g.detail.len(),
            _ => 128,
        }
}

/// Errors that come from the database's state (full, failing, locked), after which the same
/// transaction may succeed later; anything else is a record the database refuses.
fn transient(e: &rusqlite::Error) -> bool {
    !matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig)
    )
}

impl Loop {
    fn new(
        conn: Connection,
        rx: Receiver<Record>,
        options: Options,
        counts: Counts,
        run: Option<i64>,
    ) -> Loop {
        Loop {
            conn,
            rx,
            counts,
            run,
            stats: Arc::new(WriterStats::default()),
            stop: Arc::new(AtomicBool::new(false)),
            pending: VecDeque::new(),
            pending_bytes: 0,
            gaps: Vec::new(),
            last: HashMap::new(),
            rings: HashMap::new(),
            last_poll_ns: BootClock::now_ns(),
            next_poll: Instant::now() + options.poll_every,
            next_prune: Instant::now(),
            dropped: Dropped::default(),
            retry_at: None,
            backoff: Duration::from_millis(20),
            closed: false,
            options,
            #[cfg(test)]
            before_write: None,
        }
    }

    fn run(&mut self) {
        // The group INSERT on `self.conn`, prepared at the first group of events; a local, so
        // that it is finalized before the connection closes (see [`EventGroup`]).
        let mut group: Option<EventGroup> = None;
        let mut stop_by: Option<Instant> = None;
        loop {
            let stopping = self.closed || self.stop.load(Ordering::Relaxed);
            if stopping && stop_by.is_none() {
                stop_by = Some(Instant::now() + self.options.stop_within);
                self.take_all();
                self.poll();
            }
            if !stopping {
                self.wait();
                let limit = if self.retry_at.is_some() {
                    usize::MAX
                } else {
                    self.options.batch
                };
                self.take(limit);
                if Instant::now() >= self.next_poll {
                    self.poll();
                }
                if Instant::now() >= self.next_prune {
                    self.prune();
                }
            }
            let due = self.retry_at.is_none_or(|t| Instant::now() >= t);
            if due
                && (!self.pending.is_empty()
                    || !self.gaps.is_empty()
                    || self.dropped.since_ns.is_some())
            {
                self.write_batch(&mut group);
            }
            if let Some(by) = stop_by {
                let idle = self.pending.is_empty() && self.gaps.is_empty();
                if idle && self.dropped.since_ns.is_none() {
                    self.mark_stopped();
                    return;
                }
                if Instant::now() >= by {
                    tracing::error!(
                        target: "governor::lineage",
                        unwritten = self.pending.len(),
                        "stopping with {} lineage records not written: the database did not \
                         take them in time; the next daemon records this run as ended uncleanly",
                        self.pending.len()
                    );
                    return;
                }
                if let Some(t) = self.retry_at {
                    std::thread::sleep(t.min(by).saturating_duration_since(Instant::now()));
                }
            }
        }
    }

    /// Waits for something to do: a record, the next poll, or the next retry.
    fn wait(&mut self) {
        let now = Instant::now();
        let until = match self.retry_at {
            // Healthy with work queued: no wait.
            None if !self.pending.is_empty() || !self.gaps.is_empty() => return,
            None => self.next_poll,
            Some(t) => t.min(self.next_poll),
        };
        match self.rx.recv_timeout(until.saturating_duration_since(now)) {
            Ok(r) => self.accept(r),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.closed = true,
        }
    }

    /// Takes queued records until `pending` holds `limit` (or the queue is empty).
    fn take(&mut self, limit: usize) {
        while self.pending.len() < limit {
            match self.rx.try_recv() {
                Ok(r) => self.accept(r),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    fn take_all(&mut self) {
        self.take(usize::MAX);
    }

    /// Keeps `r` for the next transaction, or counts it as dropped when the memory for
    /// unwritten records is used up.
    fn accept(&mut self, r: Record) {
        let bytes = approx_bytes(&r);
        if !self.pending.is_empty() && self.pending_bytes + bytes > self.options.memory_bytes {
            if let Record::Event(e) = &r {
                self.dropped.events += 1;
                if let Some(key) = ring_of(e) {
                    *self.dropped.by_ring.entry(key).or_default() += 1;
                }
            } else {
                self.dropped.other += 1;
            }
            self.dropped.since_ns.get_or_insert_with(BootClock::now_ns);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.pending_bytes += bytes;
        self.pending.push_back(r);
        self.stats
            .buffered
            .store(self.pending.len() as u64, Ordering::Relaxed);
    }

    /// Reads the loss counters; each that grew since the last poll becomes a gap row. What
    /// changed about a ring is queued for `rings`.
    fn poll(&mut self) {
        let now_ns = BootClock::now_ns();
        let polled = (self.counts)();
        for c in polled.counts {
            let key = (c.source, c.what, c.ring.clone());
            let prev = self.last.insert(key, c.value).unwrap_or(0);
            if c.value > prev {
                let lost = c.value - prev;
                self.gaps.push(Record::Gap(GapRow {
                    source: c.source,
                    lost,
                    from_ns: self.last_poll_ns,
                    until_ns: now_ns,
                    detail: format!("{lost} {}", c.what),
                    ring: c.ring,
                }));
            }
        }
        for mut row in polled.rings {
            row.run = row.run.or(self.run);
            if self.rings.get(&row.key) != Some(&row) {
                self.rings.insert(row.key.clone(), row.clone());
                self.gaps.push(Record::Ring(Box::new(row)));
            }
        }
        self.last_poll_ns = now_ns;
        self.next_poll = Instant::now() + self.options.poll_every;
    }

    /// The `disk` gaps for what was dropped while the database failed: one per kernel ring
    /// whose decisions were dropped, one for the rest.
    fn disk_gap(&self) -> Vec<Record> {
        let Some(since) = self.dropped.since_ns else {
            return Vec::new();
        };
        let d = &self.dropped;
        let why = format!(
            "the lineage database could not be written and the writer's memory for unwritten \
             records ({} MiB) was full; enforcement went on",
            self.options.memory_bytes >> 20
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

    /// Writes gap rows and up to one batch of records in one transaction.
    fn write_batch(&mut self, group: &mut Option<EventGroup>) {
        let n = self.pending.len().min(self.options.batch);
        let disk = self.disk_gap();
        #[cfg(test)]
        if let Some(f) = self.before_write.as_mut() {
            f(&self.conn);
        }
        let result = commit(
            &mut self.conn,
            group,
            self.run,
            self.gaps.iter().chain(&disk).chain(self.pending.range(..n)),
            None,
        );
        let result = match result {
            Err(e) if !transient(&e) => {
                // Some record is refused: write the batch record by record without it.
                let mut refused = Refused::default();
                commit(
                    &mut self.conn,
                    group,
                    self.run,
                    self.gaps.iter().chain(&disk).chain(self.pending.range(..n)),
                    Some(&mut refused),
                )
                .map(|()| refused)
            }
            other => other.map(|()| Refused::default()),
        };
        match result {
            Ok(refused) => {
                let written = (n as u64).saturating_sub(refused.count);
                self.gaps.clear();
                self.dropped = Dropped::default();
                for r in self.pending.drain(..n) {
                    self.pending_bytes = self.pending_bytes.saturating_sub(approx_bytes(&r));
                }
                self.stats.committed.fetch_add(written, Ordering::Relaxed);
                self.stats.transactions.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .buffered
                    .store(self.pending.len() as u64, Ordering::Relaxed);
                if self.retry_at.take().is_some() {
                    tracing::info!(target: "governor::lineage",
                        "the lineage database takes writes again");
                }
                self.stats.failing.store(false, Ordering::Relaxed);
                self.backoff = Duration::from_millis(20);
                if refused.count > 0 {
                    self.stats
                        .rejected
                        .fetch_add(refused.count, Ordering::Relaxed);
                    self.gaps
                        .extend(refused.gaps().into_iter().map(Record::Gap));
                }
            }
            Err(e) => {
                if self.retry_at.is_none() {
                    tracing::error!(target: "governor::lineage", error = %e,
                        buffered = self.pending.len(),
                        "the lineage database cannot be written; enforcement goes on, records \
                         are kept in memory and retried, a gap is recorded for any dropped");
                }
                self.stats.failing.store(true, Ordering::Relaxed);
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(self.options.backoff_max);
            }
        }
    }

    /// Deletes rows older than the retention ([`super::retain::prune`]).
    fn prune(&mut self) {
        self.next_prune = Instant::now() + self.options.prune_every;
        let Some(retain) = self.options.retain else {
            return;
        };
        let now_ns = BootClock::now_ns();
        let cutoff = now_ns.saturating_sub(i64::try_from(retain.as_nanos()).unwrap_or(i64::MAX));
        let now_secs = u64::try_from(now_ns / 1_000_000_000).unwrap_or(0);
        match super::retain::prune(&mut self.conn, cutoff, now_secs) {
            Ok(p) => tracing::info!(target: "governor::lineage", events = p.events,
                lifecycle = p.lifecycle, gaps = p.gaps, leases = p.leases,
                processes = p.processes, retain_secs = retain.as_secs(),
                "pruned lineage rows older than the retention"),
            Err(e) => tracing::warn!(target: "governor::lineage", error = %e,
                "pruning the lineage database failed; trying again at the next prune"),
        }
    }

    fn mark_stopped(&mut self) {
        let Some(run) = self.run else { return };
        if let Err(e) = self.conn.execute(
            "UPDATE runs SET stopped_ns = ?1 WHERE id = ?2",
            params![BootClock::now_ns(), run],
        ) {
            tracing::warn!(target: "governor::lineage", error = %e,
                "could not mark this daemon's run stopped in the lineage database");
        }
    }
}

/// Records a batch left out because the database refused them.
#[derive(Debug, Default)]
pub struct Refused {
    pub count: u64,
    pub events: u64,
    first: String,
    /// Of `events`, those of each kernel ring.
    by_ring: HashMap<RingKey, u64>,
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
fn ring_of(e: &EventRow) -> Option<RingKey> {
    (e.ring != 0).then(|| RingKey {
        boot_id: e.boot_id.clone(),
        ring_id: e.ring,
    })
}

/// Writes `records` at once, in transactions of up to [`Options::batch`] records, on the
/// calling thread (before the writer thread runs): what the database refuses is left out and
/// returned, as the writer would count it.
pub fn write_now(conn: &mut Connection, records: &[Record]) -> rusqlite::Result<Refused> {
    let mut group = None;
    let mut refused = Refused::default();
    for chunk in records.chunks(Options::default().batch) {
        match commit(conn, &mut group, None, chunk.iter(), None) {
            Err(e) if !transient(&e) => {
                commit(conn, &mut group, None, chunk.iter(), Some(&mut refused))?
            }
            other => other?,
        }
    }
    Ok(refused)
}

/// One transaction: every record of `records`, and the run's commit time. Runs of events go
/// in groups through `group` (prepared here on first use; it must be `conn`'s). With
/// `refused`, each record goes in its own savepoint and those the database refuses are left
/// out and counted there.
fn commit<'a>(
    conn: &mut Connection,
    group: &mut Option<EventGroup>,
    run: Option<i64>,
    records: impl Iterator<Item = &'a Record>,
    mut refused: Option<&mut Refused>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut n: i64 = 0;
    // Runs of events go in multi-row inserts (in order: ids follow ingest order).
    let mut events: Vec<&EventRow> = Vec::new();
    for r in records {
        if let Some(refused) = refused.as_deref_mut() {
            n += i64::from(insert_alone(&tx, r, refused)?);
        } else if let Record::Event(e) = r {
            events.push(e);
        } else {
            insert_events(&tx, group, &events)?;
            n += events.len() as i64;
            events.clear();
            record::insert(&tx, r)?;
            n += 1;
        }
    }
    insert_events(&tx, group, &events)?;
    n += events.len() as i64;
    if let Some(run) = run {
        tx.prepare_cached(
            "UPDATE runs SET last_commit_ns = ?1, committed = committed + ?2 WHERE id = ?3",
        )?
        .execute(params![BootClock::now_ns(), n, run])?;
    }
    tx.commit()
}

/// Writes a run of events, preparing `group` on `tx`'s connection when the run fills one.
fn insert_events(
    tx: &Transaction<'_>,
    group: &mut Option<EventGroup>,
    events: &[&EventRow],
) -> rusqlite::Result<()> {
    if group.is_none() && events.len() >= record::EVENTS_PER_INSERT {
        *group = Some(EventGroup::prepare(tx)?);
    }
    record::insert_events(tx, group.as_mut(), events)
}

/// Inserts `r` in a savepoint; returns whether it was written (else it is counted refused).
fn insert_alone(tx: &Transaction<'_>, r: &Record, refused: &mut Refused) -> rusqlite::Result<bool> {
    tx.execute_batch("SAVEPOINT one")?;
    match record::insert(tx, r) {
        Ok(()) => tx.execute_batch("RELEASE one").map(|()| true),
        Err(e) if !transient(&e) => {
            tx.execute_batch("ROLLBACK TO one; RELEASE one")?;
            refused.count += 1;
            if let Record::Event(e) = r {
                refused.events += 1;
                if let Some(key) = ring_of(e) {
                    *refused.by_ring.entry(key).or_default() += 1;
                }
            }
            if refused.first.is_empty() {
                refused.first = e.to_string();
            }
            tracing::warn!(target: "governor::lineage", error = %e, record = ?r,
                "the lineage database refused a record");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader},
        process::{Command, Stdio},
        sync::atomic::AtomicU64,
    };

    use super::*;
    use crate::lineage::{record::EventRow, recorder::Recorder, runs};

    fn event(n: u64) -> Record {
        Record::Event(Box::new(EventRow {
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            boot_ns: n,
            ts_ns: 1_700_000_000_000_000_000 + n as i64,
            agent: Some("agent".into()),
            cgroup_id: 4242,
            pid: 1000 + (n % 50) as u32,
            tgid: 1000 + (n % 50) as u32,
            uid: 1000,
            gid: 1000,
            comm: "rm".into(),
            exe: Some("/usr/bin/rm".into()),
            class: "delete".into(),
            decision: "deny".into(),
            target: format!("/srv/data/file-{n}"),
            path: Some(format!("/srv/data/file-{n}")),
            inode: Some((2049, 100_000 + n)),
            detail: 0,
            rule: Some("/srv/data".into()),
            lease_id: None,
            policy_version: "3f2a9c1d".into(),
            ring: 0,
        }))
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("governor-lineage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir.join("lineage.db")
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    fn no_counts() -> Counts {
        Box::new(Polled::default)
    }

    #[test]
    fn batches_are_committed_and_counter_growth_becomes_gaps() {
        let path = scratch("batches");
        let conn = open(&path).expect("open");
        let (rec, rx, _) = Recorder::channel(100_000);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = Arc::clone(&dropped);
        let counts: Counts = Box::new(move || {
            vec![Count {
                source: "kernel-ring",
                what: "test drops",
                value: d.load(Ordering::Relaxed),
                ring: None,
            }]
            .into()
        });
        let options = Options {
            batch: 1000,
            poll_every: Duration::from_millis(20),
            ..Options::default()
        };
        let w = Writer::spawn(conn, rx, options, counts, None).expect("spawn");
        for n in 0..10_000 {
            assert!(rec.record(event(n)));
        }
        dropped.store(7, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
        dropped.store(10, Ordering::Relaxed);
        let stats = Arc::clone(&w.stats);
        w.finish();
        assert!(stats.transactions.load(Ordering::Relaxed) >= 10);
        let conn = open(&path).expect("reopen");
        assert_eq!(count(&conn, "SELECT count(*) FROM events"), 10_000);
        assert_eq!(
            count(
                &conn,
                "SELECT sum(lost) FROM gaps WHERE source = 'kernel-ring'"
            ),
            10
        );
        let (detail, from, until): (String, i64, i64) = conn
            .query_row(
                "SELECT detail, from_ns, until_ns FROM gaps ORDER BY id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("gap");
        assert_eq!(detail, "7 test drops");
        assert!(from < until, "{from} {until}");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_full_database_buffers_then_drops_counted_and_records_a_disk_gap() {
        let path = scratch("full");
        let conn = open(&path).expect("open");
        let (rec, rx, refused) = Recorder::channel(1_000_000);
        let full = Arc::new(AtomicBool::new(true));
        let f = Arc::clone(&full);
        let options = Options {
            batch: 500,
            // Room for a few thousand events in memory while the database is full.
            memory_bytes: 2 << 20,
            backoff_max: Duration::from_millis(50),
            ..Options::default()
        };
        let mut w = Loop::new(conn, rx, options, no_counts(), None);
        let pages = w
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .expect("pages");
        // SQLITE_FULL ("database or disk is full") while the flag is set: no page to spare.
        w.before_write = Some(Box::new(move |c: &Connection| {
            let max = if f.load(Ordering::Relaxed) {
                pages
            } else {
                1 << 30
            };
            let _: i64 = c
                .query_row(&format!("PRAGMA max_page_count = {max}"), [], |r| r.get(0))
                .expect("max_page_count");
        }));
        let w = Writer::start(w).expect("start");
        let sent = 20_000u64;
        for n in 0..sent {
            assert!(rec.record(event(n)), "the queue is large enough");
        }
        // Wait until the writer took everything from the queue (kept or dropped).
        let deadline = Instant::now() + Duration::from_secs(20);
        while w.stats.buffered.load(Ordering::Relaxed) + w.stats.dropped.load(Ordering::Relaxed)
            < sent
        {
            assert!(Instant::now() < deadline, "writer did not take the queue");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(w.stats.failing.load(Ordering::Relaxed));
        let dropped = w.stats.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0 && dropped < sent, "dropped {dropped}");
        // The disk has room again.
        full.store(false, Ordering::Relaxed);
        let stats = Arc::clone(&w.stats);
        std::thread::sleep(Duration::from_millis(200));
        w.finish();
        assert!(!stats.failing.load(Ordering::Relaxed));
        let conn = open(&path).expect("reopen");
        let rows = count(&conn, "SELECT count(*) FROM events");
        let lost = count(
            &conn,
            "SELECT coalesce(sum(lost), 0) FROM gaps WHERE source = 'disk'",
        );
        assert_eq!(refused.events.load(Ordering::Relaxed), 0);
        assert_eq!(lost as u64, dropped);
        assert_eq!(rows as u64 + lost as u64, sent, "nothing dropped silently");
        assert!(rows > 0);
    }

    #[test]
    fn a_refused_record_is_left_out_alone_and_recorded() {
        let path = scratch("refused");
        let conn = open(&path).expect("open");
        let (rec, rx, _) = Recorder::channel(100);
        let w = Writer::spawn(conn, rx, Options::default(), no_counts(), None).expect("spawn");
        rec.record(event(1));
        rec.record(Record::Lifecycle(crate::lineage::record::LifecycleRow {
            ts_ns: 1,
            lease_id: None,
            request_id: None,
            state: "not-a-state",
            actor: None,
            detail: None,
        }));
        rec.record(event(2));
        w.finish();
        let conn = open(&path).expect("reopen");
        assert_eq!(count(&conn, "SELECT count(*) FROM events"), 2);
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM gaps WHERE source = 'malformed'"
            ),
            1
        );
    }

    /// Events a crash-test child writes, in batches of this many.
    const CRASH_BATCH: u64 = 2000;
    const CRASH_ENV: &str = "GOVERNOR_LINEAGE_CRASH_CHILD";

    /// The child of [`a_sigkilled_writer_keeps_every_committed_batch_and_reingest_adds_none`]:
    /// writes batches through the real writer and reports what is committed, until killed.
    #[test]
    #[ignore = "run by the crash-safety test as its child"]
    fn crash_child() {
        let Some(path) = std::env::var_os(CRASH_ENV) else {
            return;
        };
        let mut conn = open(Path::new(&path)).expect("open");
        let clock = BootClock {
            boot_id: "b".into(),
            offset_ns: 0,
        };
        let (run, _) = runs::begin(
            &mut conn,
            &clock,
            std::process::id(),
            &runs::Carried::default(),
        )
        .expect("run");
        let (rec, rx, _) = Recorder::channel(1_000_000);
        let options = Options {
            batch: CRASH_BATCH as usize,
            ..Options::default()
        };
        let w = Writer::spawn(conn, rx, options, no_counts(), Some(run)).expect("spawn");
        let mut reported = 0;
        for n in 0.. {
            while !rec.record(event(n)) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let committed = w.stats.committed.load(Ordering::Relaxed);
            if committed > reported {
                println!("committed {committed}");
                reported = committed;
            }
        }
    }

    #[test]
    fn a_sigkilled_writer_keeps_every_committed_batch_and_reingest_adds_none() {
        let path = scratch("crash");
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "lineage::writer::tests::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_ENV, &path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("child");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut reported = 0u64;
        let mut reports = 0;
        while reports < 20 {
            let line = lines
                .next()
                .expect("the child stopped early")
                .expect("line");
            if let Some(n) = line.strip_prefix("committed ") {
                reported = n.parse().expect("count");
                reports += 1;
            }
        }
        // Mid-stream: the writer is committing and the child is queueing.
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let conn = open(&path).expect("reopen after the crash");
        let rows = count(&conn, "SELECT count(*) FROM events") as u64;
        let noted = count(&conn, "SELECT committed FROM runs") as u64;
        assert!(
            rows >= reported,
            "{rows} rows, {reported} reported committed"
        );
        // The run's commit count goes in the same transaction as its records: equal counts
        // mean no transaction was kept in part.
        assert_eq!(rows, noted, "a partial transaction");
        assert_eq!(
            count(&conn, "SELECT count(DISTINCT boot_ns) FROM events") as u64,
            rows
        );
        drop(conn);
        // The next daemon records the unclean stop, and sending the same events again (up
        // to beyond what was committed) adds no duplicate.
        let mut conn = open(&path).expect("reopen");
        let clock = BootClock {
            boot_id: "b".into(),
            offset_ns: 0,
        };
        let (run, gap) = runs::begin(&mut conn, &clock, 1, &runs::Carried::default()).expect("run");
        assert!(gap.is_some_and(|g| g.source == "downtime"));
        let (rec, rx, _) = Recorder::channel(1_000_000);
        let options = Options {
            stop_within: Duration::from_secs(60),
            ..Options::default()
        };
        let w = Writer::spawn(conn, rx, options, no_counts(), Some(run)).expect("spawn");
        let again = rows + CRASH_BATCH;
        for n in 0..again {
            assert!(rec.record(event(n)));
        }
        w.finish();
        let conn = open(&path).expect("reopen");
        assert_eq!(
            count(&conn, "SELECT count(*) FROM events") as u64,
            again,
            "{rows} rows after the crash, sent {again} again"
        );
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM runs WHERE stopped_ns IS NOT NULL"
            ),
            1
        );
    }

    /// Ingest throughput through the real writer, into a file database (one core: the
    /// producer here only queues). Three rounds, each into a new database; the median
    /// round is the result (this machine's neighbours move a single round by 10-15%).
    /// `cargo xtask bench` runs it and reads the JSON line.
    #[test]
    #[ignore = "a benchmark: cargo xtask bench runs it"]
    fn ingest_bench() {
        let env = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let total = env("GOVERNOR_INGEST_EVENTS", 1_000_000);
        let rounds = env("GOVERNOR_INGEST_ROUNDS", 3).max(1);
        let mut rates: Vec<f64> = (0..rounds).map(|_| ingest_round(total)).collect();
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let list: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "INGEST_BENCH {{\"events\":{total},\"rounds\":{rounds},\"events_per_sec\":{median:.0},\"round_rates\":[{}]}}",
            list.join(",")
        );
    }

    /// One round of [`ingest_bench`]: `total` events, queued before the writer starts;
    /// returns events per second from the writer's start to its last commit.
    fn ingest_round(total: u64) -> f64 {
        let path = scratch("bench");
        let conn = open(&path).expect("open");
        let records: Vec<Record> = (0..total).map(event).collect();
        let (rec, rx, refused) = Recorder::channel(total as usize + 1);
        for r in records {
            assert!(rec.record(r));
        }
        drop(rec);
        let start = Instant::now();
        let w = Writer::spawn(conn, rx, Options::default(), no_counts(), None).expect("spawn");
        let stats = Arc::clone(&w.stats);
        while stats.committed.load(Ordering::Relaxed) < total {
            assert!(start.elapsed() < Duration::from_secs(300), "ingest stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
        let secs = start.elapsed().as_secs_f64();
        w.finish();
        assert_eq!(stats.committed.load(Ordering::Relaxed), total);
        assert_eq!(refused.events.load(Ordering::Relaxed), 0);
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
        total as f64 / secs
    }
}
