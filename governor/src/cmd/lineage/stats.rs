//! `governor lineage stats`: per agent, blocked / leased / observe-mode counts and halts
//! with their time to enforcement; then the events lost.

use std::{fmt::Write as _, process::ExitCode};

use super::{ms, or_dash, print_json};
use crate::{
    cli::LineageWindowArgs,
    lineage::query::{self, stats::Stats},
};

pub fn run(args: LineageWindowArgs) -> anyhow::Result<ExitCode> {
    let conn = query::open(&args.out.db)?;
    let s = query::stats::stats(&conn, &args.window.filter())?;
    if args.out.json {
        return print_json(&s);
    }
    print!("{}", render(&s));
    Ok(ExitCode::SUCCESS)
}

pub(super) fn render(s: &Stats) -> String {
    let mut out = format!(
        "{:<16} {:>9} {:>13} {:>18} {:>6} {:>16} {:>16}\n",
        "AGENT",
        "BLOCKED",
        "LEASE-ALLOWED",
        "OBSERVE-WOULD-DENY",
        "HALTS",
        "HALT→ENFORCE AVG",
        "HALT→ENFORCE MAX"
    );
    if s.agents.is_empty() {
        out.push_str("(no events or halts in this window)\n");
    }
    for a in &s.agents {
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>13} {:>18} {:>6} {:>16} {:>16}",
            or_dash(a.agent.as_deref()),
            a.denied,
            a.lease_allowed,
            a.observe_would_deny,
            a.halts,
            a.halt_enforce_avg_ns.map_or("-".to_owned(), ms),
            a.halt_enforce_max_ns.map_or("-".to_owned(), ms),
        );
    }
    if s.gaps.is_empty() {
        out.push_str("\nno events lost\n");
    } else {
        out.push_str("\nevents lost (gaps):\n");
        for g in &s.gaps {
            let _ = writeln!(out, "  {:<12} {} gaps, {} events", g.source, g.gaps, g.lost);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::{fixture, Filter};

    #[test]
    fn a_row_per_agent_and_the_gaps() {
        let conn = fixture::db();
        let t = render(&query::stats::stats(&conn, &Filter::default()).expect("stats"));
        let claude = t.lines().find(|l| l.starts_with("claude")).expect("claude");
        let cols: Vec<&str> = claude.split_whitespace().collect();
        assert_eq!(
            cols,
            ["claude", "1", "3", "1", "2", "4.000ms", "6.000ms"],
            "{t}"
        );
        assert!(t.contains("kernel-ring  1 gaps, 12 events"), "{t}");
    }
}
