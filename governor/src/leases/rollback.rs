//! Undoing a lease: its snapshot is sealed when it ends (what its targets looked like then,
//! so that later outside changes show as conflicts), restored on an operator's `rollback`
//! (or a `halt --rollback`), recorded in the lease's record and the lineage, and removed
//! when its retention passes.

use super::{LeaseError, LeaseManager};
pub use crate::lineage::authority::Trigger;
use crate::{
    api::rollback::{ConflictView, RestoreView, RollbackMark},
    leases::clock,
    lineage::{self, authority::RestoreFacts, boot::Stamp},
};

impl LeaseManager {
    /// Seals lease `id`'s snapshot, if it has one: the lease has ended. Logged, never fatal:
    /// an unsealed snapshot is sealed again at the next start or before a restore.
    pub(super) fn seal(&mut self, id: &str) {
        let taken = self
            .records
            .get(id)
            .and_then(|r| r.snapshot.as_ref())
            .is_some_and(|s| s.state == "taken");
        if !taken {
            return;
        }
        let until =
            clock::wall_ms().saturating_add(self.policy.rollback.retention.as_millis() as u64);
        if let Err(e) = self.snapshots.seal(id, until) {
            tracing::error!(target: "governor::rollback", lease = id, error = %e,
                "could not record the state of the lease's targets at its end; a rollback \
                 will seal it then, and cannot tell outside changes made before");
        }
    }

    /// Removes lease `id`'s snapshot (a lease that was not installed after all).
    pub(super) fn drop_snapshot(&mut self, id: &str) {
        if let Err(e) = self.snapshots.remove(id) {
            tracing::error!(target: "governor::rollback", lease = id, error = %e,
                "could not remove the snapshot of a lease that was not installed");
        }
    }

    /// Seals the snapshots of leases that ended while no daemon ran (or whose seal failed).
    pub(super) fn seal_ended(&mut self) {
        let ended: Vec<String> = self
            .records
            .values()
            .filter(|r| !r.state.is_live())
            .map(|r| r.id.clone())
            .collect();
        for id in ended {
            self.seal(&id);
        }
    }

    /// The ids of `agent`'s leases submitted at or after `since_ms`, that have a snapshot,
    /// newest first.
    pub fn leases_since(&self, agent: &str, since_ms: u64) -> Vec<String> {
        let mut found: Vec<(u64, String)> = self
            .records
            .values()
            .filter(|r| r.agent == agent)
            .filter(|r| r.snapshot.as_ref().is_some_and(|s| s.state == "taken"))
            .filter_map(|r| {
                let at = r.history.first().map(|c| c.at_ms)?;
                (at >= since_ms).then(|| (at, r.id.clone()))
            })
            .collect();
        found.sort_by(|a, b| b.cmp(a));
        found.into_iter().map(|(_, id)| id).collect()
    }

    /// Restores lease `id`'s targets to its snapshot. A live lease is refused unless
    /// `revoke`, which revokes it first. Paths changed after the lease ended are reported
    /// and left alone, unless `force`.
    pub fn rollback(
        &mut self,
        id: &str,
        uid: u32,
        revoke: bool,
        force: bool,
        trigger: Trigger,
    ) -> Result<RestoreView, LeaseError> {
        let Some(r) = self.records.get(id) else {
            return Err(LeaseError::NotFound(format!(
                "no lease {id} (see `governor lease list --all`)"
            )));
        };
        let agent = r.agent.clone();
        match r.snapshot.as_ref().map(|s| s.state.as_str()) {
            Some("taken") => {}
            Some("pruned") => {
                return Err(LeaseError::Rejected(format!(
                    "lease {id}'s snapshot was removed when its retention passed; restore \
                     from a backup"
                )))
            }
            Some(_) => {
                let why = r
                    .snapshot
                    .as_ref()
                    .map(|s| s.skipped.join("; "))
                    .unwrap_or_default();
                return Err(LeaseError::Rejected(format!(
                    "lease {id} has no snapshot: nothing it allowed needed one ({why})"
                )));
            }
            None => {
                return Err(LeaseError::Rejected(format!(
                    "lease {id} has no snapshot: it was accepted by a daemon from before \
                     snapshots; restore from a backup"
                )))
            }
        }
        let live = r.state.is_live();
        if live && !revoke {
            return Err(LeaseError::Rejected(format!(
                "lease {id} is {} until {}: the agent could change its targets again during \
                 the restore; roll back with --revoke, which revokes it first",
                r.state.name(),
                crate::time::rfc3339(r.not_after)
            )));
        }
        if live {
            // Revoking seals it: the lease ends now.
            self.revoke(id, uid, Some("rollback".to_owned()))?;
        } else {
            // Sealed when it ended; sealing again keeps that first seal.
            self.seal(id);
        }
        let started = Stamp::now();
        let done = self
            .snapshots
            .restore(id, force)
            .map_err(|e| LeaseError::Internal(format!("restoring lease {id}: {e}")))?;
        let ended = Stamp::now();
        let outcome = if done.conflicts.is_empty() && done.failed.is_empty() {
            "restored"
        } else {
            "partial"
        };
        let paths = |v: &[std::path::PathBuf]| -> Vec<String> {
            v.iter().map(|p| p.display().to_string()).collect()
        };
        let views = |v: &[crate::rollback::Conflict]| -> Vec<ConflictView> {
            v.iter()
                .map(|c| ConflictView {
                    path: c.path.display().to_string(),
                    why: c.why.clone(),
                })
                .collect()
        };
        let view = RestoreView {
            lease: id.to_owned(),
            agent: agent.clone(),
            revoked: live,
            restored: paths(&done.restored),
            recreated: paths(&done.recreated),
            removed: paths(&done.removed),
            unchanged: done.unchanged,
            conflicts: views(&done.conflicts),
            failed: views(&done.failed),
            forced: force,
            outcome: outcome.to_owned(),
            took_ms: done.took_ms,
        };
        let at_ms = clock::wall_ms();
        if let Some(r) = self.records.get_mut(id) {
            if let Some(s) = r.snapshot.as_mut() {
                s.rollbacks.push(RollbackMark {
                    at_ms,
                    by_uid: uid,
                    outcome: outcome.to_owned(),
                });
            }
            r.log(
                at_ms,
                "rolled-back",
                format!(
                    "by uid {uid}: {} restored, {} recreated, {} removed, {} conflicts, {} \
                     failed in {} ms",
                    view.restored.len(),
                    view.recreated.len(),
                    view.removed.len(),
                    view.conflicts.len(),
                    view.failed.len(),
                    view.took_ms
                ),
            );
            if let Err(e) = self.store.save(r) {
                tracing::error!(lease = id, error = %e, "lease store: could not save the record");
            }
        }
        // A path that could not be put back is recorded with the conflicts: it, too, is
        // not as the snapshot had it.
        let conflicts: Vec<(std::path::PathBuf, String)> = done
            .conflicts
            .iter()
            .chain(&done.failed)
            .map(|c| (c.path.clone(), c.why.clone()))
            .collect();
        self.recorder
            .record(lineage::authority::rollback_row(&RestoreFacts {
                lease_id: id,
                agent: &agent,
                uid,
                trigger,
                boot_id: &self.boot_id,
                started,
                ended,
                restored: &done.restored,
                recreated: &done.recreated,
                removed: &done.removed,
                unchanged: done.unchanged,
                conflicts: &conflicts,
                forced: force,
            }));
        tracing::warn!(target: "governor::rollback", lease = id, agent = %agent, uid,
            restored = view.restored.len(), recreated = view.recreated.len(),
            removed = view.removed.len(), conflicts = view.conflicts.len(),
            took_ms = view.took_ms, "lease rolled back ({outcome})");
        Ok(view)
    }

    /// Removes the snapshots whose retention has passed; their leases' records say so.
    pub fn prune_snapshots(&mut self) -> Vec<String> {
        let gone = match self.snapshots.prune(clock::wall_ms()) {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(target: "governor::rollback", error = %e,
                    "could not prune expired snapshots");
                return Vec::new();
            }
        };
        for id in &gone {
            if let Some(r) = self.records.get_mut(id) {
                if let Some(s) = r.snapshot.as_mut() {
                    s.state = "pruned".to_owned();
                }
                if let Err(e) = self.store.save(r) {
                    tracing::error!(lease = %id, error = %e,
                        "lease store: could not save the record");
                }
            }
        }
        gone
    }
}

impl LeaseManager {
    /// Whether lease `id` has a snapshot to restore (or had one, since pruned).
    pub fn has_snapshot(&self, id: &str) -> bool {
        self.records
            .get(id)
            .and_then(|r| r.snapshot.as_ref())
            .is_some_and(|s| s.state != "none")
    }

    /// Whether a protected resource of the policy is `path` or lies below it.
    pub fn protects_at_or_below(&self, path: &std::path::Path) -> bool {
        self.policy
            .protected
            .iter()
            .any(|p| p.path.starts_with(path))
    }
}
