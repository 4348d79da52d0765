//! `governor lease pending [--all]`: agents' requests waiting for an operator, each with the
//! command that approves it.

use std::process::ExitCode;

use crate::{
    admin::{client, protocol::Request},
    cli::LeasePendingArgs,
    time,
};

pub fn run(args: LeasePendingArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(&args.socket, &Request::RequestList { all: args.all })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let reqs = result["requests"].as_array().cloned().unwrap_or_default();
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
            r["id"].as_str().unwrap_or("?"),
            r["agent"].as_str().unwrap_or("?"),
            r["state"].as_str().unwrap_or("?"),
            format!(
                "{}:{}",
                r["class"].as_str().unwrap_or("?"),
                r["target"].as_str().unwrap_or("?")
            ),
            time::span(r["ttl_secs"].as_u64().unwrap_or(0)),
            r["reason"].as_str().unwrap_or("")
        );
        if let Some(cmd) = r["approve_command"].as_str() {
            println!("         approve: {cmd}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
