//! The `status` request: what the daemon enforces and its counters. [`Status`] is the reply's
//! `result`, read back by `governor status`.

use std::{
    sync::{atomic::Ordering, Arc, Mutex},
    time::Instant,
};

use serde::{Deserialize, Serialize};

use crate::{host::freeze::Halt, kernel::events::ReaderStats, leases::LeaseManager};

/// The reply to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub daemon: DaemonInfo,
    pub policy: PolicyInfo,
    pub agents: Vec<AgentInfo>,
    pub kernel: KernelInfo,
    /// governor's own directories, protected whatever the policy says.
    pub own_dirs: Vec<String>,
    pub counters: Counters,
    pub events: ReaderCounters,
    /// This host's identity, as lease files bind it (`/etc/machine-id`).
    #[serde(default)]
    pub host: String,
    /// Live leases (enforced or scheduled), with `left_secs`.
    #[serde(default)]
    pub leases: Vec<serde_json::Value>,
    /// Halted agents.
    #[serde(default)]
    pub halts: Vec<Halt>,
    /// Agents' requests waiting for an operator.
    #[serde(default)]
    pub requests_pending: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub uptime_secs: u64,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub owner: String,
    pub file: String,
    /// SHA-256 of the policy file (first 16 bytes, hex).
    #[serde(default)]
    pub version: String,
    /// When the daemon started enforcing it (RFC 3339, UTC): at start-up or a reload.
    #[serde(default)]
    pub loaded_at: String,
    /// The kernel generation enforcing it (`kernel::pin`); each reload makes a new one.
    #[serde(default)]
    pub generation: u64,
    /// Policy reloads since the daemon started.
    #[serde(default)]
    pub reloads: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub cgroup: String,
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    pub release: String,
    /// "full" or "degraded".
    pub mode: String,
    pub enforced: Vec<String>,
    pub not_enforced: Vec<String>,
}

/// The kernel's counters (summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub denied: u64,
    pub observed: u64,
    pub unresolved: u64,
    /// Events the kernel could not put into the ring buffer.
    pub kernel_events_dropped: u64,
    pub lease_allowed: u64,
    pub lease_expired: u64,
    /// Cgroups below an agent cgroup the kernel could not register (map full).
    #[serde(default)]
    pub cgroups_untracked: u64,
    /// Process-lineage records (agent fork, exec, exit) the kernel could not put into its
    /// ring buffer.
    #[serde(default)]
    pub procs_dropped: u64,
}

impl Counters {
    /// Both counts added (a retired generation's and the enforcing one's).
    pub fn plus(self, o: Counters) -> Counters {
        Counters {
            denied: self.denied + o.denied,
            observed: self.observed + o.observed,
            unresolved: self.unresolved + o.unresolved,
            kernel_events_dropped: self.kernel_events_dropped + o.kernel_events_dropped,
            lease_allowed: self.lease_allowed + o.lease_allowed,
            lease_expired: self.lease_expired + o.lease_expired,
            cgroups_untracked: self.cgroups_untracked + o.cgroups_untracked,
            procs_dropped: self.procs_dropped + o.procs_dropped,
        }
    }
}

/// The event reader's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderCounters {
    pub received: u64,
    pub malformed: u64,
    pub overflowed: u64,
}

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
        Ok(s)
    }
}

impl crate::lineage::losses::KernelCounters for Counters {
    fn procs_dropped(&self) -> u64 {
        self.procs_dropped
    }
}
