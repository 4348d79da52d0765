//! The reply to `status`: what the daemon enforces and its counters. The daemon fills it
//! (`crate::admin::status`); `governor status` reads it back.

use serde::{Deserialize, Serialize};

use super::reply::LeaseView;
use crate::host::freeze::Halt;

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
    pub leases: Vec<LeaseView>,
    /// Halted agents.
    #[serde(default)]
    pub halts: Vec<Halt>,
    /// Agents' requests waiting for an operator.
    #[serde(default)]
    pub requests_pending: usize,
    /// Unsafe actions blocked before execution and the time to recovery, from the lineage
    /// (absent when the lineage could not be read: `safety_error` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<super::safety::Safety>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_error: Option<String>,
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
