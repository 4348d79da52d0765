//! The replies about snapshots and rollbacks: what a lease's snapshot holds (or why it has
//! none), what an approval would cost before anyone signs, and what a restore did.

use serde::{Deserialize, Serialize};

/// A lease's snapshot, taken before its entries reached the kernel; or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotView {
    /// `taken`, `none` (nothing to snapshot: see `skipped`), or `pruned` (retention passed).
    pub state: String,
    /// Regular files held (once per inode), entries walked, and their logical bytes.
    pub files: u64,
    pub entries: u64,
    pub bytes: u64,
    /// `reflink`, `copy`, `mixed` or `none`.
    pub method: String,
    /// What taking it added to `lease submit`.
    pub took_ms: u64,
    /// The paths it holds, file or subtree each.
    pub targets: Vec<String>,
    /// Scopes it does not cover, each with why (`rollback = "none"`, a class that changes
    /// nothing on disk).
    #[serde(default)]
    pub skipped: Vec<String>,
    /// Restores of it so far.
    #[serde(default)]
    pub rollbacks: Vec<RollbackMark>,
}

/// One restore of a lease's snapshot, as the lease's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackMark {
    /// Unix milliseconds the restore ended.
    pub at_ms: u64,
    pub by_uid: u32,
    /// `restored`, or `partial` (conflicts were left alone).
    pub outcome: String,
}

/// What approving scopes would cost: the snapshot the daemon takes before the lease takes
/// effect (estimated now; the real one is taken at submit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCost {
    pub files: u64,
    pub entries: u64,
    pub bytes: u64,
    pub targets: Vec<String>,
    #[serde(default)]
    pub skipped: Vec<String>,
    /// The budget it must fit: the policy's per-lease `max_bytes`, or what is left of the
    /// agent's `max_bytes_per_agent`, whichever is smaller.
    pub budget_bytes: u64,
    /// Why it could not be estimated (a target unreadable now), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A path a restore left alone because something changed it after the lease ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictView {
    pub path: String,
    pub why: String,
}

/// What one lease's restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreView {
    pub lease: String,
    pub agent: String,
    /// Whether the rollback revoked the lease first (`--revoke`, or a halt).
    pub revoked: bool,
    /// Paths whose content or metadata were put back, paths brought back (deleted or
    /// renamed away), and paths removed (created under the lease).
    pub restored: Vec<String>,
    pub recreated: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: u64,
    pub conflicts: Vec<ConflictView>,
    /// Paths that could not be put back (the error each); the rest was.
    #[serde(default)]
    pub failed: Vec<ConflictView>,
    pub forced: bool,
    /// `restored`, or `partial` (conflicts left alone, or paths that failed).
    pub outcome: String,
    pub took_ms: u64,
}

/// The reply to `rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolledBack {
    pub restores: Vec<RestoreView>,
    /// Leases that were selected but could not be restored, each with why.
    #[serde(default)]
    pub refused: Vec<NotRestored>,
}

/// A lease a rollback selected and did not restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotRestored {
    pub lease: String,
    pub why: String,
}
