//! Every reply's `result`, typed: the daemon builds these and serializes them
//! ([`super::protocol::Response::reply`]); the CLI reads them back with [`read`], so a field the
//! daemon renamed or left out is an error naming the command and the field, never a "?".
//!
//! On the wire each reply is a JSON object whose keys come out sorted (the `result` goes
//! through a `serde_json::Value`); field names here are the wire's names.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use crate::host::freeze::Halt;

/// A reply the client could not read as the type it expects.
#[derive(Debug, thiserror::Error)]
#[error(
    "the daemon's reply to `{command}` is not what this governor reads ({why}); are the \
     daemon and this CLI the same build?"
)]
pub struct ReplyError {
    pub command: &'static str,
    pub why: String,
}

/// Reads a reply's `result` to `command` as a `T`.
pub fn read<T: DeserializeOwned>(command: &'static str, result: Value) -> Result<T, ReplyError> {
    serde_json::from_value(result).map_err(|e| ReplyError {
        command,
        why: e.to_string(),
    })
}

/// Where a lease stands (its record's `status`, lifted to the top level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseState {
    Scheduled,
    Enforced,
    Expired,
    Revoked,
    Dropped,
}

impl LeaseState {
    pub fn name(self) -> &'static str {
        match self {
            LeaseState::Scheduled => "scheduled",
            LeaseState::Enforced => "enforced",
            LeaseState::Expired => "expired",
            LeaseState::Revoked => "revoked",
            LeaseState::Dropped => "dropped",
        }
    }
}

/// One scope of a lease, as accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeView {
    pub class: String,
    pub target: String,
    /// The object as resolved when last installed (symlinks followed).
    pub object: String,
    /// The policy resource whose `lease` decision it lifts.
    pub resource: String,
}

/// One signature that counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerView {
    pub key_id: String,
    pub operator: String,
    /// "issuer" or "approver".
    pub role: String,
}

/// One step of a lease's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeView {
    /// Unix milliseconds.
    pub at_ms: u64,
    pub what: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A lease as clients see it (`lease-list`, `lease-show`, `lease-submit`, `lease-revoke`,
/// `status`, an approval): its record with the state's fields at the top level, the seconds
/// it has left and when it was enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    pub id: String,
    /// The id the kernel reports in events.
    pub kernel_id: u64,
    pub agent: String,
    pub scopes: Vec<ScopeView>,
    /// Unix seconds.
    pub not_before: u64,
    pub not_after: u64,
    /// The boot-clock window, as the lease store keeps it (`leases::window::BootWindow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<Value>,
    /// The lease's reason; for a revoked or dropped lease, why it was revoked (null when no
    /// reason was given) or dropped.
    pub reason: Option<String>,
    pub ticket: Option<String>,
    /// The agent request this lease answers, if any.
    pub request: Option<String>,
    pub signers: Vec<SignerView>,
    pub submitted_by_uid: u32,
    /// The policy (name and version) it was accepted under.
    pub policy: String,
    pub state: LeaseState,
    /// Who revoked it (revoked leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_uid: Option<u32>,
    pub history: Vec<ChangeView>,
    /// Seconds left on the boot clock (0 once it is no longer live).
    pub left_secs: u64,
    /// Unix milliseconds it was (last) put in force, if it was.
    pub enforced_at_ms: Option<u64>,
    /// The signed lease file (`lease-show` and the replies built like it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its snapshot (or why it has none) and the restores of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<super::rollback::SnapshotView>,
}

/// The reply to `lease-list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseList {
    pub leases: Vec<LeaseView>,
}

/// Where an agent's request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestState {
    Pending,
    NeedsApprovals,
    Approved,
    Rejected,
}

impl RequestState {
    pub fn name(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::NeedsApprovals => "needs-approvals",
            RequestState::Approved => "approved",
            RequestState::Rejected => "rejected",
        }
    }
}

/// An agent's lease request as clients see it (`request`, `request-status`, `request-list`,
/// `request-show`, approvals): the request with its state's fields at the top level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    pub id: String,
    pub agent: String,
    pub class: String,
    pub target: String,
    /// The agent's reason; for a rejected request, the operator's.
    pub reason: String,
    /// The lifetime asked for, in seconds.
    pub ttl_secs: u64,
    /// Unix milliseconds.
    pub created_ms: u64,
    pub pid: i32,
    pub uid: u32,
    /// The policy resource a lease would lift.
    pub resource: String,
    pub state: RequestState,
    /// Approvals given and needed (needs-approvals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub have: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<u32>,
    /// The partial lease to cosign (needs-approvals), or the lease id that answered it
    /// (approved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// Who rejected it (rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_uid: Option<u32>,
    /// The command an operator runs to approve it (open requests, operators' views).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve_command: Option<String>,
    /// The snapshot approving it would cost (open requests, operators' views).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_cost: Option<super::rollback::SnapshotCost>,
}

/// The reply to `request-list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestList {
    pub requests: Vec<RequestView>,
    /// The host the leases answering them must name.
    pub host: String,
}

/// The reply to `request-approve` and `request-reject`: the request as it now stands, and
/// the lease it installed (an approval that completed it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub request: RequestView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseView>,
}

/// The reply to `halt`. Times count from the client's stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halted {
    pub halts: Vec<Halt>,
    /// From the client sending it to the daemon reading it.
    pub queued_us: u64,
    pub total_us: u64,
    /// `halt --rollback`: the restores of the leases it revoked, and those it could not
    /// restore (no snapshot), each with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rolled_back: Vec<super::rollback::RestoreView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_rolled_back: Vec<super::rollback::NotRestored>,
}

/// The reply to `resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    pub resumed: Vec<String>,
    pub total_us: u64,
}

/// A policy by name, version and kernel generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub name: String,
    pub version: String,
    pub generation: u64,
}

/// A lease a policy reload dropped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedLease {
    pub id: String,
    pub reason: String,
}

/// What a policy reload did with the live leases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedLeases {
    pub kept: Vec<String>,
    pub dropped: Vec<DroppedLease>,
}

/// How the previous generation left the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetiredGeneration {
    /// Its pins removed (`entries`) and links detached (`links`).
    Gone { links: usize, entries: Vec<String> },
    /// It did not fully leave; it still enforces alongside the new one.
    Failed { error: String },
}

/// The reply to `policy-reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    pub file: String,
    pub old: PolicyRef,
    pub new: PolicyRef,
    pub prepare_ms: u64,
    pub swap_us: u64,
    pub retire_ms: u64,
    pub total_ms: u64,
    pub leases: CarriedLeases,
    pub retired: RetiredGeneration,
}

/// The reply to `protect-secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protected {
    /// The canonical path.
    pub path: String,
    /// Its inode (the CLI does not read it: a reply without it still reads).
    #[serde(default)]
    pub inode: u64,
    /// Whether it was not registered before.
    pub new: bool,
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
