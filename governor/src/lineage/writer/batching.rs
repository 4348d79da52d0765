//! The writer thread's loop: waits for records, takes up to a batch, buffers what the
//! database cannot take yet (up to [`Options::memory_bytes`], counting what it drops beyond
//! that), polls the loss counters into gap rows, retries a failing database with backoff,
//! prunes on schedule, and on stop writes what is left and marks the run stopped.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, RecvTimeoutError},
        Arc,
    },
    time::{Duration, Instant},
};

use rusqlite::{params, Connection};

use super::{
    commit::{commit, transient},
    gaps::{ring_of, Dropped, Refused},
    Counts, Options, WriterStats,
};
use crate::lineage::{
    boot::BootClock,
    record::{self, EventGroup, GapRow, Record, RingKey, RingRow},
};

pub(super) struct Loop {
    pub(super) conn: Connection,
    rx: Receiver<Record>,
    counts: Counts,
    run: Option<i64>,
    pub(super) stats: Arc<WriterStats>,
    pub(super) stop: Arc<AtomicBool>,
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
    pub(super) before_write: Option<BeforeWrite>,
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
            Record::Rollback(r) => std::mem::size_of_val(&**r) + r.detail.len(),
            _ => 128,
        }
}

impl Loop {
    pub(super) fn new(
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

    pub(super) fn run(&mut self) {
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
    /// Writes gap rows and up to one batch of records in one transaction.
    fn write_batch(&mut self, group: &mut Option<EventGroup>) {
        let n = self.pending.len().min(self.options.batch);
        let disk = self.dropped.gaps(self.options.memory_bytes);
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

    /// Deletes rows older than the retention ([`crate::lineage::retain::prune`]).
    fn prune(&mut self) {
        self.next_prune = Instant::now() + self.options.prune_every;
        let Some(retain) = self.options.retain else {
            return;
        };
        let now_ns = BootClock::now_ns();
        let cutoff = now_ns.saturating_sub(i64::try_from(retain.as_nanos()).unwrap_or(i64::MAX));
        let now_secs = u64::try_from(now_ns / 1_000_000_000).unwrap_or(0);
        match crate::lineage::retain::prune(&mut self.conn, cutoff, now_secs) {
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
