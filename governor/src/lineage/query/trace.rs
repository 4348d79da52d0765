//! `lineage trace`: everything behind one event. The chain of processes from the one that
//! acted up to the agent's root process (the last ancestor of the same agent), the
//! launcher that started the agent (the first ancestor outside it), the lease that allowed
//! the action with its signers and life (and whether it was rolled back: its `rollbacks`
//! rows, or how to roll it back), or the rule that denied it, and the policy load in force
//! then, with its owner. Every step is an index lookup.

use rusqlite::Connection;
use serde::Serialize;

use super::{
    authority::{lease, policy_at, Lease, Policy},
    events::{self, Event},
    processes::{self, Process},
    rollbacks::{undo, Undo},
    QueryError,
};

/// Ancestors followed at most (a guard against a corrupt, cyclic parent chain).
pub const MAX_DEPTH: usize = 256;

/// Why the chain ends where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainEnd {
    /// At the agent's root process; its parent (the launcher) is outside the agent.
    Launcher,
    /// The event's process is not on record (it ran before recording began, or its records
    /// were lost: see `gaps`).
    NoProcess,
    /// A parent is not on record.
    UnknownParent,
    /// The top of the process tree (no parent).
    Top,
    /// [`MAX_DEPTH`] reached.
    TooDeep,
}

/// Why the action was decided as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cause {
    /// Allowed under this lease (`None`: the lease is not on record).
    Lease {
        lease_id: Option<String>,
        lease: Option<Box<Lease>>,
    },
    /// Denied (or, in observe mode, would have been) by this rule of the policy.
    Rule {
        rule: Option<String>,
        class: String,
        observe: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    pub event: Event,
    /// The event's process first, then its ancestors up to the agent's root process.
    pub chain: Vec<Process>,
    /// The first ancestor outside the agent.
    pub launcher: Option<Process>,
    pub chain_end: ChainEnd,
    pub cause: Cause,
    /// Under a lease: whether it was rolled back (the restores, linked by their `rollbacks`
    /// id) or how to, or why it cannot be. `None`: a denied or observed event (nothing
    /// happened to undo, or no lease).
    pub undo: Option<Undo>,
    /// The policy load in force at the event (its owner is accountable for the rule).
    pub policy: Option<Policy>,
}

/// The trace of event `id`.
pub fn trace(conn: &Connection, id: i64) -> Result<Trace, QueryError> {
    let event = events::get(conn, id)?;
    let (chain, launcher, chain_end) = ancestry(conn, &event)?;
    let (cause, undo) = if event.decision == "lease-allow" {
        let found = match &event.lease_id {
            Some(l) => lease(conn, l)?,
            None => None,
        };
        let now = crate::time::now().try_into().unwrap_or(i64::MAX);
        let live = found.as_ref().is_some_and(|l| l.live(now));
        let undo = undo(conn, event.lease_id.as_deref(), found.as_ref(), live)?;
        let cause = Cause::Lease {
            lease_id: event.lease_id.clone(),
            lease: found.map(Box::new),
        };
        (cause, Some(undo))
    } else {
        let cause = Cause::Rule {
            rule: event.rule.clone(),
            class: event.class.clone(),
            observe: event.decision == "observe-deny",
        };
        (cause, None)
    };
    let policy = policy_at(conn, &event.policy_version, event.ts_ns)?;
    Ok(Trace {
        event,
        chain,
        launcher,
        chain_end,
        cause,
        undo,
        policy,
    })
}

/// The event's process and its ancestors within the agent, the launcher, and why the
/// chain ends.
pub fn ancestry(
    conn: &Connection,
    event: &Event,
) -> Result<(Vec<Process>, Option<Process>, ChainEnd), QueryError> {
    let Some(first) = processes::at(conn, &event.boot_id, event.tgid, event.boot_ns)? else {
        return Ok((Vec::new(), None, ChainEnd::NoProcess));
    };
    // The agent is the event's; a process recorded without one (seen before its cgroup was
    // known) still counts as the event's own process.
    let agent = event.agent.clone().or_else(|| first.agent.clone());
    let mut chain = vec![first];
    loop {
        if chain.len() > MAX_DEPTH {
            return Ok((chain, None, ChainEnd::TooDeep));
        }
        let last = chain.last().expect("the chain starts with one process");
        if last.ppid.is_none_or(|p| p <= 0) {
            return Ok((chain, None, ChainEnd::Top));
        }
        let Some(parent) = processes::parent(conn, last)? else {
            return Ok((chain, None, ChainEnd::UnknownParent));
        };
        if parent.agent.is_none() || parent.agent != agent {
            return Ok((chain, Some(parent), ChainEnd::Launcher));
        }
        if chain.iter().any(|p| p.key() == parent.key()) {
            return Ok((chain, None, ChainEnd::TooDeep));
        }
        chain.push(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture::{self, boot, SEC, T0};

    #[test]
    fn a_denied_rm_through_reused_pids_up_to_the_launcher() {
        let conn = fixture::db();
        let t = trace(&conn, fixture::EV_DENY).expect("trace");
        let chain: Vec<(i64, i64, &str)> = t
            .chain
            .iter()
            .map(|p| (p.pid, p.start_ns, p.exe.as_deref().unwrap_or("?")))
            .collect();
        // pid 400 and 300 were each used twice: the trace takes the ones running then.
        assert_eq!(
            chain,
            [
                (400, boot(900) as i64, "/usr/bin/rm"),
                (300, boot(600) as i64, "/bin/sh"),
                (200, boot(20) as i64, "/usr/bin/claude"),
            ]
        );
        let launcher = t.launcher.expect("launcher");
        assert_eq!(launcher.pid, 100);
        assert_eq!(launcher.agent, None);
        assert_eq!(t.chain_end, ChainEnd::Launcher);
        assert_eq!(
            t.cause,
            Cause::Rule {
                rule: Some("/etc".into()),
                class: "unlink".into(),
                observe: false
            }
        );
        let policy = t.policy.expect("policy");
        assert_eq!(policy.owner, "platform-team <platform@example.com>");
        assert_eq!(policy.loaded_ns, T0 + 35 * SEC, "the reload in force then");
    }

    #[test]
    fn a_leased_event_names_both_signers() {
        let conn = fixture::db();
        let t = trace(&conn, fixture::EV_LEASED_1).expect("trace");
        let Cause::Lease {
            lease: Some(lease), ..
        } = &t.cause
        else {
            panic!("not a lease cause: {:?}", t.cause);
        };
        assert_eq!(lease.id, "L1");
        assert_eq!(lease.reason, "rotate logs");
        assert_eq!(lease.ticket.as_deref(), Some("OPS-42"));
        let signers: Vec<&str> = lease.signers.iter().map(|s| s.operator.as_str()).collect();
        assert_eq!(signers, ["alice@example.com", "bob@example.com"]);
        assert_eq!(t.chain.len(), 2, "mv, claude");
        assert_eq!(t.launcher.map(|l| l.pid), Some(100));
    }

    /// An event under L2 shows L2's restore; one under L1 (no snapshot) says why.
    #[test]
    fn a_leased_event_shows_its_rollback() {
        let conn = fixture::db();
        let t = trace(&conn, fixture::EV_L2).expect("trace");
        let r = t
            .undo
            .as_ref()
            .and_then(Undo::last_rollback)
            .expect("rolled back");
        assert_eq!((r.lease_id.as_str(), r.actor.as_str()), ("L2", "uid:0"));
        assert_eq!(r.ended_ns, T0 + 100 * SEC);
        let t = trace(&conn, fixture::EV_LEASED_1).expect("trace");
        assert!(
            matches!(&t.undo, Some(Undo::NoSnapshot { why }) if why.contains("predates")),
            "{:?}",
            t.undo
        );
        let t = trace(&conn, fixture::EV_DENY).expect("trace");
        assert_eq!(t.undo, None, "a deny changed nothing");
    }

    #[test]
    fn unknown_processes_and_events() {
        let conn = fixture::db();
        let t = trace(&conn, fixture::EV_CODEX).expect("trace");
        assert_eq!(t.chain_end, ChainEnd::NoProcess);
        assert!(t.chain.is_empty());
        assert_eq!(t.policy.map(|p| p.owner).as_deref(), Some("security-team"));
        let e = trace(&conn, 4242).unwrap_err();
        assert!(matches!(e, QueryError::NoEvent(4242)), "{e}");
        assert!(e.to_string().contains("4242"), "{e}");
    }
}
