//! A lease's snapshot: which of its scopes' targets are snapshotted before its entries reach
//! the kernel, within which budget, and what approving a set of scopes would cost.
//!
//! Every scope whose class changes something on disk (a file class: delete, rename,
//! truncate, write, chmod, chown, xattr, link and the rest of "modify",
//! [`crate::lineage::authority::SNAPSHOT_CLASSES`]) is snapshotted, file
//! or subtree, unless its resource says `rollback = "none"`. Read, exec and network scopes
//! change nothing a snapshot could hold, and say so. The budget is the policy's
//! `[rollback] max_bytes` per lease, or what the agent's kept snapshots leave of
//! `max_bytes_per_agent`, whichever is smaller; a lease over it is refused.

use std::path::PathBuf;

use super::{resolve, store::ScopeRecord, LeaseError, LeaseManager};
use crate::{
    api::{
        protocol::ScopeAsk,
        rollback::{SnapshotCost, SnapshotView},
    },
    lineage,
    policy::{rollback::human, Snapshot},
    rollback::Snapshots,
};

/// What a lease's snapshot covers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Paths to snapshot, none below another.
    pub(super) targets: Vec<PathBuf>,
    /// Scopes left out, each with why.
    pub(super) skipped: Vec<String>,
}

impl LeaseManager {
    /// Which targets of `scopes` a snapshot must hold.
    pub(super) fn plan(&self, scopes: &[ScopeRecord]) -> Plan {
        let mut plan = Plan::default();
        for s in scopes {
            let name = format!("{}:{}", s.class, s.target);
            if !lineage::authority::destructive(&s.class) {
                plan.skipped.push(format!(
                    "{name}: `{}` changes nothing a snapshot holds",
                    s.class
                ));
                continue;
            }
            let none = self.policy.protected.iter().any(|p| {
                p.snapshot == Snapshot::None
                    && (p.path.as_os_str() == s.resource.as_str()
                        || std::fs::canonicalize(&p.path)
                            .is_ok_and(|c| c.as_os_str() == s.resource.as_str()))
            });
            if none {
                plan.skipped.push(format!(
                    "{name}: the policy says rollback = \"none\" on {}",
                    s.resource
                ));
                continue;
            }
            plan.targets.push(PathBuf::from(&s.object));
        }
        plan.targets.sort();
        plan.targets.dedup();
        let all = plan.targets.clone();
        plan.targets
            .retain(|t| !all.iter().any(|o| o != t && t.starts_with(o)));
        plan
    }

    /// The budget a new snapshot of `agent` must fit, and what set it.
    fn budget(&self, agent: &str) -> (u64, String) {
        let r = &self.policy.rollback;
        let held: Vec<&str> = self
            .records
            .values()
            .filter(|x| x.agent == agent)
            .map(|x| x.id.as_str())
            .collect();
        let held = self.snapshots.held_bytes(&held);
        let left = r.max_bytes_per_agent.saturating_sub(held);
        if left < r.max_bytes {
            (
                left,
                format!(
                    "what agent `{agent}`'s kept snapshots ({}) leave of [rollback] \
                     max_bytes_per_agent ({}); they go when their retention ({}) passes, or \
                     raise it in policy {}",
                    human(held),
                    human(r.max_bytes_per_agent),
                    crate::time::span(r.retention.as_secs()),
                    self.policy.source.display()
                ),
            )
        } else {
            (
                r.max_bytes,
                format!(
                    "[rollback] max_bytes ({}) in policy {}",
                    human(r.max_bytes),
                    self.policy.source.display()
                ),
            )
        }
    }

    /// Takes lease `id`'s snapshot of `plan`, before anything of it is installed. An error
    /// refuses the lease and leaves no snapshot behind.
    pub(super) fn take_snapshot(
        &mut self,
        id: &str,
        agent: &str,
        plan: &Plan,
    ) -> Result<SnapshotView, LeaseError> {
        if plan.targets.is_empty() {
            return Ok(SnapshotView {
                state: "none".to_owned(),
                files: 0,
                entries: 0,
                bytes: 0,
                method: "none".to_owned(),
                took_ms: 0,
                targets: Vec::new(),
                skipped: plan.skipped.clone(),
                rollbacks: Vec::new(),
            });
        }
        let (budget, set_by) = self.budget(agent);
        let taken = self
            .snapshots
            .take(id, &plan.targets, budget)
            .map_err(|e| {
                LeaseError::Rejected(format!(
                    "the snapshot taken before a lease takes effect failed, so the lease is \
                     not installed: {e} (the budget is {}: {set_by})",
                    human(budget)
                ))
            })?;
        Ok(SnapshotView {
            state: "taken".to_owned(),
            files: taken.files,
            entries: taken.entries,
            bytes: taken.bytes,
            method: taken.method.as_str().to_owned(),
            took_ms: taken.took_ms,
            targets: taken
                .targets
                .iter()
                .map(|t| t.display().to_string())
                .collect(),
            skipped: plan.skipped.clone(),
            rollbacks: Vec::new(),
        })
    }

    /// What approving `scopes` (as a lease file states them) for `agent` would cost,
    /// estimated now; a scope that would be refused is refused here with the same reason.
    pub fn cost_of(&self, agent: &str, scopes: &[ScopeAsk]) -> Result<SnapshotCost, LeaseError> {
        let Some(agent_id) = self.compiled.agents.iter().position(|a| a.name == agent) else {
            return Err(LeaseError::Rejected(format!(
                "policy `{}` defines no agent `{agent}`",
                self.policy.name
            )));
        };
        let mut records = Vec::new();
        for s in scopes {
            let spec = resolve::ScopeSpec {
                class: &s.class,
                target: &s.target,
                pin: None,
            };
            let r = resolve::resolve(&self.policy, &self.compiled, agent_id as u32, agent, &spec)?;
            records.push(ScopeRecord {
                class: s.class.clone(),
                target: s.target.clone(),
                object: r.object,
                resource: r.resource,
            });
        }
        Ok(self.snapshot_cost(agent, &records))
    }

    /// What approving `scopes` for `agent` would cost in snapshot, estimated now.
    pub fn snapshot_cost(&self, agent: &str, scopes: &[ScopeRecord]) -> SnapshotCost {
        let plan = self.plan(scopes);
        let (budget_bytes, _) = self.budget(agent);
        let (est, problem) = match Snapshots::estimate(&plan.targets) {
            Ok(e) => (e, None),
            Err(e) => (Default::default(), Some(e.to_string())),
        };
        SnapshotCost {
            files: est.files,
            entries: est.entries,
            bytes: est.bytes,
            targets: plan
                .targets
                .iter()
                .map(|t| t.display().to_string())
                .collect(),
            skipped: plan.skipped,
            budget_bytes,
            problem,
        }
    }
}

/// `snapshot: 12 files, 4.0 KiB by reflink in 3 ms`, or why there is none.
pub fn describe(s: &SnapshotView) -> String {
    match s.state.as_str() {
        "taken" => format!(
            "{} files, {} by {} in {} ms",
            s.files,
            human(s.bytes),
            s.method,
            s.took_ms
        ),
        other => {
            if s.skipped.is_empty() {
                other.to_owned()
            } else {
                format!("{other} ({})", s.skipped.join("; "))
            }
        }
    }
}

/// `about 12 files, 4.0 KiB (budget 1.0 GiB)`, or why it could not be estimated.
pub fn describe_cost(c: &SnapshotCost) -> String {
    if let Some(p) = &c.problem {
        return format!("not estimated: {p}");
    }
    if c.targets.is_empty() {
        return if c.skipped.is_empty() {
            "none".to_owned()
        } else {
            format!("none ({})", c.skipped.join("; "))
        };
    }
    let over = if c.bytes > c.budget_bytes {
        " — OVER BUDGET: the daemon will refuse this lease"
    } else {
        ""
    };
    format!(
        "about {} files, {} of {} budget{over}{}",
        c.files,
        human(c.bytes),
        human(c.budget_bytes),
        if c.skipped.is_empty() {
            String::new()
        } else {
            format!("; not covered: {}", c.skipped.join("; "))
        }
    )
}
