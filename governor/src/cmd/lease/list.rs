//! `governor lease list [--all]`: the daemon's leases with the time left.

use std::process::ExitCode;

use crate::{
    admin::client,
    api::{
        protocol::Request,
        reply::{self, LeaseList},
    },
    cli::LeaseListArgs,
    time,
};

pub fn run(args: LeaseListArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(&args.conn.socket, &Request::LeaseList { all: args.all })?;
    if args.conn.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let LeaseList { leases } = reply::read("lease-list", result)?;
    if leases.is_empty() {
        println!("no {}leases", if args.all { "" } else { "live " });
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<14} {:<10} {:>9}  {:<40} SIGNERS",
        "LEASE", "AGENT", "STATE", "LEFT", "SCOPES"
    );
    for l in &leases {
        let scopes: Vec<String> = l
            .scopes
            .iter()
            .map(|s| format!("{}:{}", s.class, s.target))
            .collect();
        let signers: Vec<&str> = l.signers.iter().map(|s| s.operator.as_str()).collect();
        println!(
            "{:<28} {:<14} {:<10} {:>9}  {:<40} {}",
            l.id,
            l.agent,
            l.state.name(),
            time::span(l.left_secs),
            scopes.join(", "),
            signers.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
