//! What a simulation found: per agent, class and pair of outcomes (recorded policy →
//! candidate), how many operations and a few example targets; and the totals.

use std::collections::BTreeMap;

use serde::Serialize;

use super::decide::Outcome;
use crate::{lineage::query::events::Event, policy::Policy};

/// Example targets kept per change.
pub const EXAMPLES: usize = 5;

/// A simulation's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The candidate policy's file and version.
    pub candidate: String,
    pub candidate_version: String,
    /// Recorded operations re-decided.
    pub operations: u64,
    /// Of them, decided the same way by the candidate.
    pub unchanged: u64,
    /// Of them, decided by the kernel alone (never changed by a policy).
    pub fixed: u64,
    /// Operations whose recorded policy is not in the lineage or no longer compiles here:
    /// compared with what the kernel recorded instead.
    pub without_recorded_policy: u64,
    /// Those policies' versions.
    pub unreadable_policies: Vec<String>,
    /// What the candidate decides differently, by agent, class, then outcomes.
    pub changes: Vec<Change>,
}

/// Operations of one agent and class that the candidate decides differently.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    pub agent: String,
    pub class: String,
    /// Under the policy it was recorded under.
    pub before: Outcome,
    /// Under the candidate.
    pub after: Outcome,
    pub count: u64,
    /// Up to [`EXAMPLES`] targets, first seen first, each once.
    pub examples: Vec<String>,
    /// The lineage ids of every such operation (`governor lineage trace ID`).
    pub events: Vec<i64>,
}

impl Report {
    pub fn new(candidate: &Policy) -> Report {
        Report {
            candidate: candidate.source.display().to_string(),
            candidate_version: candidate.version.clone(),
            operations: 0,
            unchanged: 0,
            fixed: 0,
            without_recorded_policy: 0,
            unreadable_policies: Vec::new(),
            changes: Vec::new(),
        }
    }

    /// Adds `ev`, decided `before` under its recorded policy (`None`: that policy could not be
    /// read; the kernel's recorded decision stands in) and `after` under the candidate.
    pub fn add(&mut self, ev: &Event, before: Option<Outcome>, after: Outcome) {
        self.operations += 1;
        let before = before.unwrap_or_else(|| {
            self.without_recorded_policy += 1;
            recorded(ev)
        });
        if before == Outcome::Fixed || after == Outcome::Fixed {
            self.fixed += 1;
            return;
        }
        if before == after {
            self.unchanged += 1;
            return;
        }
        let agent = ev.agent.clone().unwrap_or_default();
        let at = match self.changes.iter().position(|c| {
            c.agent == agent && c.class == ev.class && c.before == before && c.after == after
        }) {
            Some(i) => i,
            None => {
                self.changes.push(Change {
                    agent,
                    class: ev.class.clone(),
                    before,
                    after,
                    count: 0,
                    examples: Vec::new(),
                    events: Vec::new(),
                });
                self.changes.len() - 1
            }
        };
        let c = &mut self.changes[at];
        c.count += 1;
        c.events.push(ev.id);
        let target = ev.path.as_deref().unwrap_or(&ev.target);
        if c.examples.len() < EXAMPLES && !c.examples.iter().any(|e| e == target) {
            c.examples.push(target.to_owned());
        }
    }

    /// The changes in a stable order: agent, class, then the outcomes.
    pub fn sorted(mut self) -> Report {
        self.changes.sort_by(|a, b| {
            (&a.agent, &a.class, a.before, a.after).cmp(&(&b.agent, &b.class, b.before, b.after))
        });
        self
    }

    /// Totals of the changes by the candidate's outcome.
    pub fn by_outcome(&self) -> BTreeMap<Outcome, u64> {
        let mut m = BTreeMap::new();
        for c in &self.changes {
            *m.entry(c.after).or_insert(0) += c.count;
        }
        m
    }
}

/// What the kernel recorded, as an outcome: a lease allow needed a lease; a deny is taken as
/// a deny (the recorded row does not say whether a lease would have lifted it).
fn recorded(ev: &Event) -> Outcome {
    match ev.decision.as_str() {
        "lease-allow" => Outcome::Lease,
        "allow" => Outcome::Allow,
        _ => Outcome::Deny,
    }
}
