//! `governor lineage trace EVENT_ID`: the event, its process chain up to the agent's
//! launcher, the lease or rule behind the decision (under a lease: whether it was rolled
//! back), and the policy's owner.

use std::{fmt::Write as _, process::ExitCode};

use super::{or_dash, print_json, undo_lines};
use crate::{
    cli::LineageTraceArgs,
    lineage::query::{
        self,
        authority::Lease,
        processes::Process,
        trace::{Cause, ChainEnd, Trace},
    },
    time,
};

pub fn run(args: LineageTraceArgs) -> anyhow::Result<ExitCode> {
    let conn = query::open(&args.out.db)?;
    let t = query::trace::trace(&conn, args.event_id)?;
    if args.out.json {
        return print_json(&t);
    }
    print!("{}", render(&t));
    Ok(ExitCode::SUCCESS)
}

fn process_line(p: &Process) -> String {
    let exit = match (p.exit_ns, p.exit_code) {
        (Some(_), Some(c)) => format!(", exited {c}"),
        (Some(_), None) => ", exited".to_owned(),
        _ => String::new(),
    };
    format!(
        "pid {} uid {} [{}] {}  (exe {}, cwd {}{exit})",
        p.pid,
        p.uid.map_or("?".to_owned(), |u| u.to_string()),
        or_dash(p.agent.as_deref()),
        p.command(),
        or_dash(p.exe.as_deref()),
        or_dash(p.cwd.as_deref()),
    )
}

fn lease_lines(out: &mut String, l: &Lease) {
    let _ = writeln!(
        out,
        "  lease     {} for agent {} on {}",
        l.id, l.agent, l.host
    );
    let _ = writeln!(out, "  reason    {}", l.reason);
    let _ = writeln!(out, "  ticket    {}", or_dash(l.ticket.as_deref()));
    let _ = writeln!(
        out,
        "  valid     {} .. {}",
        time::rfc3339(u64::try_from(l.not_before).unwrap_or(0)),
        time::rfc3339(u64::try_from(l.not_after).unwrap_or(0))
    );
    let _ = writeln!(out, "  scopes    {}", l.scopes);
    for s in &l.signers {
        let _ = writeln!(
            out,
            "  signer    {} ({}, key {}, signed {})",
            s.operator,
            s.role,
            s.key_id,
            time::rfc3339(u64::try_from(s.signed_at).unwrap_or(0))
        );
    }
    for s in &l.lifecycle {
        let _ = writeln!(
            out,
            "  {:<9} {} by {}",
            s.state,
            s.time,
            or_dash(s.actor.as_deref())
        );
    }
}

pub(super) fn render(t: &Trace) -> String {
    let e = &t.event;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "event {}  {}  {} {} {}  by agent {}",
        e.id,
        e.time,
        e.decision,
        e.class,
        e.path.as_deref().unwrap_or(&e.target),
        or_dash(e.agent.as_deref())
    );
    let _ = writeln!(
        out,
        "  comm {} pid {} tgid {} uid {} cgroup {}",
        e.comm, e.pid, e.tgid, e.uid, e.cgroup_id
    );
    let _ = writeln!(out, "\nprocess chain (the acting process first):");
    for (i, p) in t.chain.iter().enumerate() {
        let _ = writeln!(out, "  {}{}", "  ".repeat(i), process_line(p));
    }
    let indent = "  ".repeat(t.chain.len());
    match (&t.launcher, t.chain_end) {
        (Some(l), _) => {
            let _ = writeln!(out, "  {indent}launched by {}", process_line(l));
        }
        (None, ChainEnd::NoProcess) => {
            let _ = writeln!(
                out,
                "  (process {} is not on record: it ran before recording began, or its \
                 records were lost; see `lineage stats` for gaps)",
                e.tgid
            );
        }
        (None, ChainEnd::UnknownParent) => {
            let _ = writeln!(out, "  {indent}(parent not on record)");
        }
        (None, ChainEnd::Top) => {
            let _ = writeln!(out, "  {indent}(top of the process tree)");
        }
        (None, _) => {
            let _ = writeln!(out, "  {indent}(chain cut at {} processes)", t.chain.len());
        }
    }
    let _ = writeln!(out);
    match &t.cause {
        Cause::Lease { lease_id, lease } => {
            let _ = writeln!(out, "allowed under a lease:");
            match lease {
                Some(l) => lease_lines(&mut out, l),
                None => {
                    let _ = writeln!(
                        out,
                        "  lease {} (not on record)",
                        or_dash(lease_id.as_deref())
                    );
                }
            }
            if let Some(u) = &t.undo {
                let _ = writeln!(out, "rollback:");
                undo_lines(&mut out, u);
                if u.last_rollback().is_none() {
                    let _ = writeln!(out, "  not rolled back");
                }
            }
        }
        Cause::Rule {
            rule,
            class,
            observe,
        } => {
            let _ = writeln!(
                out,
                "{} by rule {} (class {class})",
                if *observe {
                    "observe mode, NOT prevented: would have been denied"
                } else {
                    "denied before it ran"
                },
                rule.as_deref()
                    .unwrap_or("(none matched: the class's default)")
            );
        }
    }
    match &t.policy {
        Some(p) => {
            let _ = writeln!(
                out,
                "policy {} ({}), owner {}, loaded {} from {}",
                p.name, p.version, p.owner, p.loaded, p.source
            );
        }
        None => {
            let _ = writeln!(out, "policy {} (not on record)", e.policy_version);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture;

    #[test]
    fn names_chain_launcher_rule_and_owner() {
        let conn = fixture::db();
        let t = render(&query::trace::trace(&conn, fixture::EV_DENY).expect("trace"));
        for want in [
            "pid 400 uid 1000 [claude] rm -rf /etc/passwd",
            "pid 300 uid 1000 [claude] sh -c",
            "pid 200 uid 1000 [claude] claude",
            "launched by pid 100 uid 1000 [-] governor run --agent claude",
            "denied before it ran by rule /etc (class unlink)",
            "owner platform-team <platform@example.com>",
        ] {
            assert!(t.contains(want), "{want:?} missing in\n{t}");
        }
    }

    #[test]
    fn a_leased_event_shows_its_signers() {
        let conn = fixture::db();
        let t = render(&query::trace::trace(&conn, fixture::EV_LEASED_1).expect("trace"));
        for want in [
            "allowed under a lease:",
            "reason    rotate logs",
            "ticket    OPS-42",
            "signer    alice@example.com (issuer",
            "signer    bob@example.com (approver",
            "enforced",
        ] {
            assert!(t.contains(want), "{want:?} missing in\n{t}");
        }
        assert!(
            t.contains("rollback:\n  no snapshot: none on record"),
            "{t}"
        );
        assert!(t.contains("  not rolled back"), "{t}");
        let t = render(&query::trace::trace(&conn, fixture::EV_OBSERVE).expect("trace"));
        assert!(t.contains("observe mode, NOT prevented"), "{t}");
        assert!(!t.contains("rollback:"), "{t}");
    }

    #[test]
    fn a_rolled_back_lease_links_its_restore() {
        let conn = fixture::db();
        let t = render(&query::trace::trace(&conn, fixture::EV_L2).expect("trace"));
        assert!(
            t.contains("rollback:\n  rolled back 2026-11-21T19:41:40.000Z by uid:0"),
            "{t}"
        );
        assert!(t.contains("(rollbacks #1)"), "{t}");
        assert!(
            t.contains("rolled-back"),
            "the lease's life shows the step:\n{t}"
        );
        assert!(!t.contains("not rolled back"), "{t}");
    }
}
