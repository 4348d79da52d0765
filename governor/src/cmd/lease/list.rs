//! `governor lease list [--all]`: the daemon's leases with the time left.

use std::process::ExitCode;

use crate::{
    admin::{client, protocol::Request},
    cli::LeaseListArgs,
    time,
};

pub fn run(args: LeaseListArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(&args.socket, &Request::LeaseList { all: args.all })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let leases = result["leases"].as_array().cloned().unwrap_or_default();
    if leases.is_empty() {
        println!("no {}leases", if args.all { "" } else { "live " });
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<14} {:<10} {:>9}  {:<40} SIGNERS",
        "LEASE", "AGENT", "STATE", "LEFT", "SCOPES"
    );
    for l in &leases {
        let scopes: Vec<String> = l["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{}:{}",
                    s["class"].as_str().unwrap_or("?"),
                    s["target"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let signers: Vec<&str> = l["signers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["operator"].as_str())
            .collect();
        println!(
            "{:<28} {:<14} {:<10} {:>9}  {:<40} {}",
            l["id"].as_str().unwrap_or("?"),
            l["agent"].as_str().unwrap_or("?"),
            l["state"].as_str().unwrap_or("?"),
            time::span(l["left_secs"].as_u64().unwrap_or(0)),
            scopes.join(", "),
            signers.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
