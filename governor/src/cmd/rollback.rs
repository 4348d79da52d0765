//! `governor rollback --lease L | --agent A --since T`: restore leases' targets from their
//! snapshots, over the admin socket, and print what each restore did. Exit 1 when a path was
//! left alone (changed after the lease ended) or a lease could not be restored.

use std::process::ExitCode;

use crate::{
    admin::client,
    api::{
        protocol::{Request, RollbackOf},
        reply,
        rollback::{RestoreView, RolledBack},
    },
    cli::RollbackArgs,
};

pub fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let of = match (&args.which.lease, &args.which.agent, args.since) {
        (Some(id), _, _) => RollbackOf::Lease(id.clone()),
        (None, Some(agent), Some(since_ms)) => RollbackOf::Agent {
            agent: agent.clone(),
            since_ms,
        },
        _ => anyhow::bail!("give --lease ID, or --agent NAME --since TIME"),
    };
    let result = client::call(
        &args.conn.socket,
        &Request::Rollback {
            of,
            revoke: args.revoke,
            force: args.force,
        },
    )?;
    let done: RolledBack = reply::read("rollback", result.clone())?;
    if args.conn.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        for r in &done.restores {
            print_restore(r);
        }
    }
    for r in &done.restores {
        print_left(r);
    }
    for n in &done.refused {
        eprintln!("governor: lease {} not restored: {}", n.lease, n.why);
    }
    let conflicts: usize = done.restores.iter().map(|r| r.conflicts.len()).sum();
    if conflicts > 0 {
        eprintln!(
            "governor: {conflicts} path(s) changed after the lease ended were left as they \
             are; look at them, then run the same command with --force to restore them too"
        );
    }
    let failed: usize = done.restores.iter().map(|r| r.failed.len()).sum();
    Ok(if conflicts > 0 || failed > 0 || !done.refused.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// On stderr: the paths a restore left as they are (conflicts) or could not put back.
pub fn print_left(r: &RestoreView) {
    for c in &r.conflicts {
        eprintln!("governor: conflict: {}: {}", c.path, c.why);
    }
    for c in &r.failed {
        eprintln!("governor: not restored: {}: {}", c.path, c.why);
    }
}

/// One restore, as an operator reads it.
pub fn print_restore(r: &RestoreView) {
    println!(
        "rolled back lease {} (agent {}){}: {} restored, {} recreated, {} removed, {} \
         unchanged, {} conflicts, in {} ms",
        r.lease,
        r.agent,
        if r.revoked { ", revoked first" } else { "" },
        r.restored.len(),
        r.recreated.len(),
        r.removed.len(),
        r.unchanged,
        r.conflicts.len(),
        r.took_ms
    );
    for (what, paths) in [
        ("restored", &r.restored),
        ("recreated", &r.recreated),
        ("removed", &r.removed),
    ] {
        for p in paths.iter().take(20) {
            println!("  {what:<9} {p}");
        }
        if paths.len() > 20 {
            println!(
                "  {what:<9} … and {} more (--json lists all)",
                paths.len() - 20
            );
        }
    }
}
