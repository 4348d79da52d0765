//! `governor policy reload [--policy FILE]`: asks the running daemon, over its admin socket,
//! to enforce its policy file re-read (or FILE) instead of the policy it enforces now. The
//! daemon checks everything first; a policy that fails any check changes nothing, and the
//! refusal names the file, line, column and field. Prints the old and new policy versions
//! and how long the swap took. With `--simulate`, first prints what the new file would have
//! decided differently over the last day of the lineage (`governor simulate --since 1d`).

use std::{process::ExitCode, time::Duration};

use anyhow::Context;

use crate::{
    admin::client::{self, ClientError},
    api::{
        protocol::Request,
        reply::{self, Reloaded},
    },
    cli::PolicyReloadArgs,
};

/// A reload loads and verifies every program again: allow for a slow (emulated) machine.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(300);

pub fn run(args: PolicyReloadArgs) -> anyhow::Result<ExitCode> {
    // The daemon does not share our working directory: send an absolute path.
    let file = match &args.policy {
        Some(f) => Some(
            std::path::absolute(f)
                .with_context(|| format!("policy file {}", f.display()))?
                .display()
                .to_string(),
        ),
        None => None,
    };
    // What the new file would have decided differently over the last day, before it swaps.
    let simulation = match (&args.policy, args.simulate) {
        (Some(f), true) => {
            let since =
                crate::lineage::query::parse_when("1d", crate::lineage::boot::BootClock::now_ns())?;
            let filter = crate::lineage::query::Filter {
                since_ns: Some(since),
                ..Default::default()
            };
            let report = super::simulate::simulation(f, &args.db, &filter)?;
            if !args.conn.json {
                print!(
                    "simulation over the last day:\n{}\n",
                    super::simulate::render(&report)
                );
            }
            Some(report)
        }
        _ => None,
    };
    let result = match client::call_waiting(
        &args.conn.socket,
        &Request::PolicyReload { file },
        RELOAD_TIMEOUT,
    ) {
        Ok(v) => v,
        // The refusal already says what failed and that nothing changed: print it as is.
        Err(ClientError::Refused { message, .. }) => {
            eprintln!("{message}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if args.conn.json {
        let out = match simulation {
            Some(s) => serde_json::json!({ "simulation": s, "reload": result }),
            None => result,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", summary(&reply::read("policy-reload", result)?));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human-readable reply.
fn summary(r: &Reloaded) -> String {
    let mut out = format!(
        "policy reloaded from {}: `{}` version {} (generation {}) replaced by `{}` version {} \
         (generation {}); swap {:.3} ms, {} ms in all\n",
        r.file,
        r.old.name,
        r.old.version,
        r.old.generation,
        r.new.name,
        r.new.version,
        r.new.generation,
        r.swap_us as f64 / 1000.0,
        r.total_ms,
    );
    let kept = r.leases.kept.len();
    out.push_str(&format!("leases kept: {kept}\n"));
    for d in &r.leases.dropped {
        out.push_str(&format!("lease dropped: {}: {}\n", d.id, d.reason));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_both_versions_the_swap_and_dropped_leases() {
        let r: Reloaded = serde_json::from_value(serde_json::json!({
            "file": "/etc/governor/policy.toml",
            "old": {"name": "p", "version": "aa", "generation": 1},
            "new": {"name": "p", "version": "bb", "generation": 2},
            "prepare_ms": 10, "swap_us": 1500, "retire_ms": 20, "total_ms": 900,
            "leases": {"kept": ["l-1"], "dropped": [{"id": "l-2", "reason": "gone"}]},
            "retired": {"links": 3, "entries": ["gen-1"]},
        }))
        .expect("a reload reply");
        let s = summary(&r);
        assert!(
            s.starts_with(
                "policy reloaded from /etc/governor/policy.toml: `p` version aa (generation 1) \
                 replaced by `p` version bb (generation 2); swap 1.500 ms, 900 ms in all\n"
            ),
            "{s}"
        );
        assert!(s.contains("leases kept: 1\n"), "{s}");
        assert!(s.contains("lease dropped: l-2: gone\n"), "{s}");
    }
}
