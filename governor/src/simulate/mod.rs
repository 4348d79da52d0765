//! The simulate rung for policies: re-deciding every recorded agent operation in the lineage
//! under a candidate policy (`governor simulate`, `governor policy reload --simulate`), to
//! show what a policy change would have denied, leased or allowed before it is made.
//!
//! Each recorded operation is decided twice by [`decide::Decider`]: under the policy it was
//! recorded under (its `policies` row in the lineage) and under the candidate, both compiled
//! by the daemon's compiler ([`crate::policy::compile_rules`]) and decided by the
//! kernel's own rule (`ProtectedRule::decides`, `ProtectedRule::verdict`): no second
//! implementation of the rules. Where the two differ, [`report::Report`] counts the change
//! per agent and class, with example targets.
//!
//! A re-decision takes the host's inodes as they are now (a protected path is compiled to
//! its inode today, and a recorded file's directories are looked up by name); what the
//! kernel alone decides (built-in classes, governor's own directories, unresolved targets)
//! no policy changes, and is counted as fixed. Operations a policy allowed are only in the
//! lineage for agents that record them (`record = "all"`), so a tightening is seen only
//! against such an agent's history. It imports `policy/`, `lineage/` and `host/`.

pub mod decide;
pub mod report;

use std::{collections::HashMap, path::Path};

use rusqlite::Connection;

use crate::{
    lineage::query::{self, Filter, QueryError},
    policy::{CompileError, Policy},
};

pub use report::Report;

/// Why a simulation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("reading the lineage: {0}")]
    Lineage(#[from] QueryError),
    #[error(
        "compiling the candidate policy {file} against this host: {source} (every protected \
         path must exist here, as for the daemon)"
    )]
    Candidate {
        file: String,
        #[source]
        source: CompileError,
    },
}

/// Re-decides every event `filter` selects under `candidate` and under the policy each was
/// recorded under, and reports the differences.
pub fn simulate(
    conn: &Connection,
    candidate: &Policy,
    filter: &Filter,
) -> Result<Report, SimulateError> {
    let mut after = decide::Decider::new(candidate).map_err(|source| SimulateError::Candidate {
        file: candidate.source.display().to_string(),
        source,
    })?;
    // The policies events were recorded under, each compiled once: `None` when its text is
    // not in the lineage or does not compile here any more.
    let mut recorded: HashMap<String, Option<decide::Decider>> = HashMap::new();
    let mut report = Report::new(candidate);
    query::events::each(conn, filter, None, |ev| -> Result<(), SimulateError> {
        let before = recorded
            .entry(ev.policy_version.clone())
            .or_insert_with(|| recorded_policy(conn, &ev.policy_version))
            .as_mut()
            .map(|d| d.decide(&ev));
        let now = after.decide(&ev);
        report.add(&ev, before, now);
        Ok(())
    })?;
    for (version, d) in &recorded {
        if d.is_none() {
            report.unreadable_policies.push(version.clone());
        }
    }
    report.unreadable_policies.sort();
    Ok(report.sorted())
}

/// The policy `version` as the lineage recorded it, compiled against this host.
fn recorded_policy(conn: &Connection, version: &str) -> Option<decide::Decider> {
    let (source, text) = query::authority::policy_text(conn, version).ok()??;
    let policy = Policy::parse(Path::new(&source), &text).ok()?;
    decide::Decider::new(&policy).ok()
}

#[cfg(test)]
mod tests;
