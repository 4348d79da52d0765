//! `governor lease pending [--all]`: agents' requests waiting for an operator, each with the
//! command that approves it.

use std::process::ExitCode;

use crate::{
    admin::client,
    api::{
        protocol::Request,
        reply::{self, RequestList},
    },
    cli::LeasePendingArgs,
    leases, time,
};

pub fn run(args: LeasePendingArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(&args.conn.socket, &Request::RequestList { all: args.all })?;
    if args.conn.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let RequestList { requests: reqs, .. } = reply::read("request-list", result)?;
    if reqs.is_empty() {
        println!("no {}requests", if args.all { "" } else { "pending " });
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8} {:<14} {:<16} {:<40} {:>7}  REASON",
        "REQUEST", "AGENT", "STATE", "SCOPE", "TTL"
    );
    for r in &reqs {
        println!(
            "{:<8} {:<14} {:<16} {:<40} {:>7}  {}",
            r.id,
            r.agent,
            r.state.name(),
            format!("{}:{}", r.class, r.target),
            time::span(r.ttl_secs),
            r.reason
        );
        if let Some(cost) = &r.snapshot_cost {
            println!("         snapshot: {}", leases::describe_cost(cost));
        }
        if let Some(cmd) = &r.approve_command {
            println!("         approve: {cmd}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
