//! `governor simulate --policy FILE [--agent A] [--since T] [--until T]`: re-decides the
//! agents' recorded operations under a candidate policy (`crate::simulate`) and prints what
//! it would decide differently, per agent and class, with counts and example targets.
//! `governor policy reload --simulate` prints the same before it reloads.

use std::{fmt::Write as _, process::ExitCode};

use anyhow::Context;

use crate::{
    cli::SimulateArgs,
    lineage::query::{self, Filter},
    policy::Policy,
    simulate::{self, Report},
};

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let report = simulation(&args.policy, &args.out.db, &args.window.filter())?;
    if args.out.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The simulation of the policy file `file` over the events of `db` that `filter` selects.
pub(super) fn simulation(
    file: &std::path::Path,
    db: &std::path::Path,
    filter: &Filter,
) -> anyhow::Result<Report> {
    // A policy that does not validate prints every problem, as `policy check` does.
    let candidate = Policy::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let conn = query::open(db)?;
    simulate::simulate(&conn, &candidate, filter)
        .with_context(|| format!("simulating {} against {}", file.display(), db.display()))
}

/// The report as text: one line per change, its examples below it, then the totals.
pub(super) fn render(r: &Report) -> String {
    let mut out = format!(
        "candidate {} (version {}): {} recorded operations re-decided\n",
        r.candidate, r.candidate_version, r.operations
    );
    if r.changes.is_empty() {
        out.push_str("no change: the candidate decides every one as its policy did\n");
    } else {
        let _ = writeln!(
            out,
            "\n{:<16} {:<14} {:<13} {:<13} {:>7}",
            "AGENT", "CLASS", "WAS", "WOULD BE", "COUNT"
        );
        for c in &r.changes {
            let _ = writeln!(
                out,
                "{:<16} {:<14} {:<13} {:<13} {:>7}",
                c.agent,
                c.class,
                c.before.name(),
                c.after.name(),
                c.count
            );
            for e in &c.examples {
                let _ = writeln!(out, "    {e}");
            }
            if c.count as usize > c.examples.len() {
                let _ = writeln!(out, "    ... (--json lists every event id)");
            }
        }
        let totals: Vec<String> = r
            .by_outcome()
            .iter()
            .map(|(o, n)| format!("{n} would be {}", o.name()))
            .collect();
        let _ = writeln!(out, "\nchanged: {}", totals.join(", "));
    }
    let _ = writeln!(
        out,
        "unchanged: {}; decided by the kernel alone (no policy changes them): {}",
        r.unchanged, r.fixed
    );
    if r.without_recorded_policy > 0 {
        let _ = writeln!(
            out,
            "{} operations were recorded under policies the lineage does not hold or that no \
             longer compile here ({}): compared with the recorded decision instead",
            r.without_recorded_policy,
            r.unreadable_policies.join(", ")
        );
    }
    out
}
