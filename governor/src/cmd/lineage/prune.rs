//! `governor lineage prune --retain 30d`: deletes, now, what is older than the retention
//! (and lease snapshots past the policy's `[rollback] retention`),
//! through the daemon's own [`retain::prune`] (which keeps what an unexpired lease refers to
//! and every ancestor of what it keeps). The only lineage command that writes; it can run
//! while the daemon writes (SQLite's locking serialises the two).

use std::process::ExitCode;

use anyhow::Context;

use super::print_json;
use crate::{
    cli::LineagePruneArgs,
    lineage::{
        query::{self, format_ns},
        retain::{self, Pruned},
    },
    rollback::Snapshots,
    time,
};

pub fn run(args: LineagePruneArgs) -> anyhow::Result<ExitCode> {
    let mut conn = query::open_rw(&args.out.db)?;
    let now = time::now();
    let cutoff_ns = cutoff(now, args.retain);
    let p = retain::prune(&mut conn, cutoff_ns, now)
        .with_context(|| format!("pruning {}", args.out.db.display()))?;
    // Only sealed snapshots (their lease ended) whose retention passed: no rollback of them
    // is possible any more, by the policy's word.
    let snapshots = Snapshots::new(&args.state_dir)
        .prune(now.saturating_mul(1000))
        .with_context(|| {
            format!(
                "removing expired snapshots in {}",
                args.state_dir.join("snapshots").display()
            )
        })?;
    if args.out.json {
        return print_json(&serde_json::json!({
            "cutoff_ns": cutoff_ns,
            "cutoff": format_ns(cutoff_ns),
            "deleted": deleted(&p),
            "snapshots_removed": snapshots,
        }));
    }
    println!("pruned rows older than {}:", format_ns(cutoff_ns));
    for (table, n) in deleted(&p).as_object().into_iter().flatten() {
        println!("  {table:<16} {n}");
    }
    println!(
        "removed {} snapshot(s) past their retention{}",
        snapshots.len(),
        if snapshots.is_empty() {
            String::new()
        } else {
            format!(": {}", snapshots.join(", "))
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Unix ns `retain_secs` before `now_secs`.
fn cutoff(now_secs: u64, retain_secs: u64) -> i64 {
    let secs = i64::try_from(now_secs.saturating_sub(retain_secs)).unwrap_or(i64::MAX);
    secs.saturating_mul(1_000_000_000)
}

fn deleted(p: &Pruned) -> serde_json::Value {
    serde_json::json!({
        "events": p.events,
        "lease_lifecycle": p.lifecycle,
        "gaps": p.gaps,
        "leases": p.leases,
        "processes": p.processes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture::{self, SEC, T0, T0_SECS};

    #[test]
    fn prunes_old_events_but_keeps_those_of_an_unexpired_lease() {
        let mut conn = fixture::db();
        // At T0 + 1 h - 1 s (L1 still unexpired), keep only the last 35 s of events.
        let now = T0_SECS + 3599;
        let cut = cutoff(now, 3599 - 35);
        assert_eq!(cut, T0 + 35 * SEC);
        let p = retain::prune(&mut conn, cut, now).expect("prune");
        let left: Vec<i64> = conn
            .prepare("SELECT id FROM events ORDER BY id")
            .expect("q")
            .query_map([], |r| r.get(0))
            .expect("q")
            .collect::<Result<_, _>>()
            .expect("ids");
        // Before the cutoff: L1's two events (kept: L1 is unexpired) and the observe-deny
        // (deleted).
        assert_eq!(
            left,
            [
                fixture::EV_LEASED_1,
                fixture::EV_LEASED_2,
                fixture::EV_DENY,
                fixture::EV_CODEX,
                fixture::EV_L2
            ]
        );
        assert_eq!(p.events, 1);
        assert_eq!(deleted(&p)["events"], 1);
    }
}
