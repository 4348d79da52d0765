//! `governor lineage stats`: per agent, blocked / leased / observe-mode counts and halts
//! with their time to enforcement; then the safety figures (blocked before execution, time to
//! recovery), overall and per agent; then the events lost.

use std::{fmt::Write as _, process::ExitCode};

use super::{ms, or_dash, print_json};
use crate::{
    cli::LineageWindowArgs,
    lineage::query::{
        self,
        safety::{Recovery, Safety},
        stats::Stats,
    },
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
    safety_lines(&mut out, &s.safety);
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

fn recovery(r: &Recovery) -> String {
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    format!(
        "{} timed, median {}, worst {}",
        r.count,
        ms(r.median_ms),
        ms(r.worst_ms)
    )
}

/// The safety figures: overall, then per agent.
fn safety_lines(out: &mut String, s: &Safety) {
    let _ = writeln!(
        out,
        "\nsafety:\n  {:<16} {:>9} {:>7} {:>15} {:>6}  TIME TO RECOVERY",
        "", "BLOCKED", "DENIED", "EXPIRED-REFUSED", "HALTS"
    );
    let rows = std::iter::once((
        "(all)",
        s.blocked_before_execution,
        &s.blocked,
        &s.time_to_recovery,
    ))
    .chain(s.agents.iter().map(|(name, a)| {
        (
            name.as_str(),
            a.blocked_before_execution,
            &a.blocked,
            &a.time_to_recovery,
        )
    }));
    for (name, total, b, r) in rows {
        let _ = writeln!(
            out,
            "  {:<16} {:>9} {:>7} {:>15} {:>6}  {}",
            name,
            total,
            b.denied,
            b.expired_leases_refused,
            b.halts,
            recovery(r)
        );
    }
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
        let safety = &t[t.find("safety:").expect("safety")..];
        let row = |name: &str| -> Vec<&str> {
            safety
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no {name} row in\n{t}"))
                .split_whitespace()
                .collect()
        };
        assert_eq!(
            row("(all)"),
            [
                "(all)", "5", "2", "1", "2", "3", "timed,", "median", "3000", "ms,", "worst",
                "40000", "ms"
            ]
        );
        assert_eq!(row("claude")[1..5], ["3", "1", "0", "2"]);
        assert_eq!(row("codex")[1..5], ["3", "1", "1", "1"]);
    }

    /// `--json` carries the contract's `safety` object.
    #[test]
    fn json_has_the_safety_object() {
        let conn = fixture::db();
        let s = query::stats::stats(&conn, &Filter::default()).expect("stats");
        let v = serde_json::to_value(&s).expect("json");
        let safety = &v["safety"];
        assert_eq!(safety["blocked_before_execution"], 5);
        assert_eq!(safety["time_to_recovery"]["count"], 3);
        assert_eq!(safety["time_to_recovery"]["median_ms"], 3000);
        assert_eq!(safety["time_to_recovery"]["worst_ms"], 40000);
        assert_eq!(safety["agents"]["codex"]["blocked_before_execution"], 3);
        assert_eq!(
            safety["agents"]["codex"]["time_to_recovery"]["worst_ms"],
            3000
        );
    }
}
