//! The safety figures as `lineage stats` and `governor status` report them: unsafe actions
//! blocked before execution, and the time to recovery of every restore. Computed by
//! `crate::lineage::query::safety`; carried here so that the status reply can hold them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Restores timed, and the distribution, in ms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    pub count: u64,
    /// `None` when nothing was timed.
    pub median_ms: Option<u64>,
    pub worst_ms: Option<u64>,
}

/// What was blocked, by kind (their sum is `blocked_before_execution`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub denied: u64,
    pub expired_leases_refused: u64,
    pub halts: u64,
}

/// One agent's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSafety {
    pub blocked_before_execution: u64,
    pub time_to_recovery: Recovery,
    pub blocked: Blocked,
}

/// The figures overall and per agent (by name; events of an agent the policy does not name
/// count overall only). A halt naming two agents counts once overall and once for each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Safety {
    pub blocked_before_execution: u64,
    pub time_to_recovery: Recovery,
    pub blocked: Blocked,
    pub agents: BTreeMap<String, AgentSafety>,
}
