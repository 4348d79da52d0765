//! The `status` request: fills [`Status`] (`crate::api::status`) with the live counters, the
//! leases, halts and pending requests.

use std::{
    sync::{atomic::Ordering, Arc, Mutex},
    time::Instant,
};

use crate::{
    api::status::{Counters, ReaderCounters, Status},
    kernel::events::ReaderStats,
    leases::LeaseManager,
};

/// Reads the kernel counters now.
pub type CounterReader = dyn Fn() -> Result<Counters, String> + Send + Sync;

/// Everything `status` reports: fixed at startup, plus live counter sources.
pub struct Source {
    /// The fixed part; `daemon.uptime_secs`, `counters` and `events` are filled per request.
    pub fixed: super::Shared<Status>,
    pub started: Instant,
    pub counters: Box<CounterReader>,
    pub reader: Arc<ReaderStats>,
    pub leases: Option<Arc<Mutex<LeaseManager>>>,
    /// The lineage database the safety figures are read from.
    pub lineage_db: Option<std::path::PathBuf>,
}

impl Source {
    /// The status now, or why the kernel counters could not be read.
    pub fn handle(&self) -> Result<Status, String> {
        let mut s = super::current(&self.fixed);
        s.daemon.uptime_secs = self.started.elapsed().as_secs();
        s.counters = (self.counters)()?;
        s.events = ReaderCounters {
            received: self.reader.received.load(Ordering::Relaxed),
            malformed: self.reader.malformed.load(Ordering::Relaxed),
            overflowed: self.reader.overflowed.load(Ordering::Relaxed),
        };
        if let Some(auth) = &self.leases {
            let a = auth
                .lock()
                .map_err(|_| "the lease manager lock is poisoned".to_owned())?;
            s.host = a.host().to_owned();
            s.leases = a.list(false);
            s.halts = a.halts().cloned().collect();
            s.requests_pending = a.pending_requests();
        }
        if let Some(db) = &self.lineage_db {
            match safety(db) {
                Ok(v) => s.safety = Some(v),
                Err(e) => s.safety_error = Some(e),
            }
        }
        Ok(s)
    }
}

impl crate::lineage::losses::KernelCounters for Counters {
    fn procs_dropped(&self) -> u64 {
        self.procs_dropped
    }
}

/// The safety figures over the whole lineage in `db`.
fn safety(db: &std::path::Path) -> Result<crate::api::safety::Safety, String> {
    use crate::lineage::query;
    let conn = query::open(db).map_err(|e| format!("opening {}: {e}", db.display()))?;
    query::safety::safety(&conn, &query::Filter::default())
        .map_err(|e| format!("reading {}: {e}", db.display()))
}
