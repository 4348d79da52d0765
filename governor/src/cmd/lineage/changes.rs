//! `governor lineage changes [--since]`: what changed, grouped by the lease that allowed it,
//! observe mode's would-denies apart, with how to undo them: the lease's rollback command (or
//! the restore already run), or why there is no snapshot.

use std::{fmt::Write as _, process::ExitCode};

use super::{or_dash, print_json, undo_lines};
use crate::{
    cli::LineageWindowArgs,
    lineage::query::{
        self,
        changes::{Change, Changes},
    },
    time,
};

pub fn run(args: LineageWindowArgs) -> anyhow::Result<ExitCode> {
    let conn = query::open(&args.out.db)?;
    let now = i64::try_from(time::now()).unwrap_or(i64::MAX);
    let c = query::changes::changes(&conn, &args.window.filter(), now)?;
    if args.out.json {
        return print_json(&c);
    }
    print!("{}", render(&c));
    Ok(ExitCode::SUCCESS)
}

fn change_line(out: &mut String, c: &Change) {
    let e = &c.event;
    let _ = writeln!(
        out,
        "  #{:<7} {}  {:<10} {:<30} {} pid {} ({})",
        e.id,
        e.time,
        e.class,
        e.path.as_deref().unwrap_or(&e.target),
        or_dash(e.agent.as_deref()),
        e.tgid,
        e.comm
    );
    if let Some(u) = &c.undo {
        let _ = writeln!(out, "           undo: {u}");
    }
}

pub(super) fn render(c: &Changes) -> String {
    if c.leases.is_empty() && c.observed.is_empty() {
        return "no changes: nothing destructive was allowed in this window\n".to_owned();
    }
    let mut out = String::new();
    for g in &c.leases {
        match &g.lease {
            Some(l) => {
                let signers: Vec<String> = l
                    .signers
                    .iter()
                    .map(|s| format!("{} ({})", s.operator, s.role))
                    .collect();
                let _ = writeln!(
                    out,
                    "lease {} [{}]  reason: {}  ticket: {}\n  signed by {}",
                    l.id,
                    if g.live { "live" } else { "ended" },
                    l.reason,
                    or_dash(l.ticket.as_deref()),
                    signers.join(", ")
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "lease {} (not on record)",
                    or_dash(g.lease_id.as_deref())
                );
            }
        }
        if let Some(u) = &g.undo {
            let _ = writeln!(out, "  stop it first: {u}");
        }
        undo_lines(&mut out, &g.rollback);
        for ch in &g.changes {
            change_line(&mut out, ch);
        }
        out.push('\n');
    }
    if !c.observed.is_empty() {
        let _ = writeln!(out, "observe mode, not prevented (would have been denied):");
        for ch in &c.observed {
            change_line(&mut out, ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::{fixture, Filter};

    #[test]
    fn groups_by_lease_then_observe_mode() {
        let conn = fixture::db();
        let c = query::changes::changes(&conn, &Filter::default(), fixture::T0_SECS as i64)
            .expect("changes");
        let t = render(&c);
        let l1 = t.find("lease L1 [live]").expect("L1 group");
        let l2 = t.find("lease L2 [ended]").expect("L2 group");
        let obs = t
            .find("observe mode, not prevented")
            .expect("observe group");
        assert!(l1 < l2 && l2 < obs, "{t}");
        assert!(t.contains("signed by alice@example.com (issuer), bob@example.com (approver)"));
        assert!(t.contains("stop it first: governor lease revoke L1"), "{t}");
        assert!(
            !t.contains("/etc/passwd"),
            "a denied rm did not change anything:\n{t}"
        );
    }

    /// L2's group says it was rolled back, by whom, when, and links the row; L1's says why
    /// it has no snapshot; the printed command is the real one before any restore.
    #[test]
    fn rollbacks_and_missing_snapshots() {
        let conn = fixture::db();
        let c = query::changes::changes(&conn, &Filter::default(), fixture::T0_SECS as i64)
            .expect("changes");
        let t = render(&c);
        assert!(
            t.contains(
                "  rolled back 2026-11-21T19:41:40.000Z by uid:0 (rollback trigger): partial, \
                 2 restored, 1 recreated, 1 removed, 7 unchanged, 1 conflicts left alone in \
                 250 ms (rollbacks #1)"
            ),
            "{t}"
        );
        assert!(
            t.contains("undo: rolled back 2026-11-21T19:41:40.000Z by uid:0"),
            "{t}"
        );
        assert!(
            t.contains("  no snapshot: none on record (the lease predates snapshots)"),
            "{t}"
        );
        conn.execute("DELETE FROM rollbacks", [])
            .expect("no restores");
        let c = query::changes::changes(&conn, &Filter::default(), fixture::T0_SECS as i64)
            .expect("changes");
        let t = render(&c);
        assert!(
            t.contains(
                "  undo: governor rollback --lease L2  (snapshot: 3 files, 4096 bytes by \
                 reflink in 12 ms)"
            ),
            "{t}"
        );
        assert!(
            t.contains("           undo: governor rollback --lease L2\n"),
            "{t}"
        );
    }
}
