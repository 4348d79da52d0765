//! The lease commands that talk to the running daemon: `submit`, `list`, `revoke`, and the
//! request queue (`pending`, `approve`, `reject`). `issue`, `cosign` and `show FILE` work on
//! files alone (`lease_file`).

use std::{os::unix::fs::MetadataExt, path::Path, process::ExitCode};

use anyhow::Context;
use serde_json::Value;

use crate::{
    admin::{client, protocol::Request},
    authority::{
        keys::SecretKey,
        lease::{self, Lease, LeaseBody, Pin, Role, Scope},
        time,
    },
    cli::{
        LeaseApproveArgs, LeaseListArgs, LeasePendingArgs, LeaseRejectArgs, LeaseRevokeArgs,
        LeaseSubmitArgs,
    },
};

pub fn submit(args: LeaseSubmitArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading lease file {}", args.file.display()))?;
    let result = client::call(
        &args.socket,
        &Request::LeaseSubmit {
            lease: text,
            origin: args.file.display().to_string(),
        },
    )?;
    print_lease(&result, args.json);
    Ok(ExitCode::SUCCESS)
}

/// One lease, as a sentence (or JSON).
fn print_lease(l: &Value, json: bool) {
    if json {
        println!("{l}");
        return;
    }
    let state = l["state"].as_str().unwrap_or("?");
    let when = match (state, l["enforced_at_ms"].as_u64()) {
        ("enforced", Some(ms)) => format!("enforced since {}", time::rfc3339(ms / 1000)),
        ("scheduled", _) => format!(
            "scheduled: enforced from {}",
            time::rfc3339(l["not_before"].as_u64().unwrap_or(0))
        ),
        (s, _) => s.to_owned(),
    };
    println!(
        "lease {} for agent {}: {when}; ends {} (in {})",
        l["id"].as_str().unwrap_or("?"),
        l["agent"].as_str().unwrap_or("?"),
        time::rfc3339(l["not_after"].as_u64().unwrap_or(0)),
        time::span(l["left_secs"].as_u64().unwrap_or(0)),
    );
    for s in l["scopes"].as_array().into_iter().flatten() {
        println!(
            "  scope {}:{} (lifts `lease` on {})",
            s["class"].as_str().unwrap_or("?"),
            s["target"].as_str().unwrap_or("?"),
            s["resource"].as_str().unwrap_or("?")
        );
    }
    for s in l["signers"].as_array().into_iter().flatten() {
        println!(
            "  signed by {} ({}, key {})",
            s["operator"].as_str().unwrap_or("?"),
            s["role"].as_str().unwrap_or("?"),
            s["key_id"].as_str().unwrap_or("?")
        );
    }
}

pub fn list(args: LeaseListArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(&args.socket, &Request::LeaseList { all: args.all })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let leases = result["leases"].as_array().cloned().unwrap_or_default();
    if leases.is_empty() {
        println!(
            "no {}leases",
            if args.all { "" } else { "live " }
        );
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

pub fn revoke(args: LeaseRevokeArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(
        &args.socket,
        &Request::LeaseRevoke {
            id: args.id.clone(),
            reason: args.reason.clone(),
        },
    )?;
    if args.json {
        println!("{result}");
    } else {
        println!(
            "lease {} revoked: its entries left the kernel; the agent is refused again",
            args.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pending(args: LeasePendingArgs) -> anyhow::Result<ExitCode> {
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

/// The identity of `target` now, when it is a path (pinned into the lease: "fresh state").
fn pin_of(target: &str) -> anyhow::Result<Option<Pin>> {
    if !Path::new(target).is_absolute() {
        return Ok(None);
    }
    let meta = std::fs::metadata(target)
        .with_context(|| format!("the request's target {target} (it is pinned at approval)"))?;
    Ok(Some(Pin {
        dev: meta.dev(),
        ino: meta.ino(),
    }))
}

pub fn approve(args: LeaseApproveArgs) -> anyhow::Result<ExitCode> {
    let key = SecretKey::load(&args.key)?;
    let req = client::call(&args.socket, &Request::RequestShow { id: args.id.clone() })?;
    let now = time::now();
    let lease = match req["state"].as_str() {
        Some("pending") => {
            let ttl = match args.ttl {
                Some(d) => d.as_secs(),
                None => req["ttl_secs"].as_u64().unwrap_or(900),
            };
            let target = req["target"].as_str().unwrap_or_default().to_owned();
            let body = LeaseBody {
                version: lease::VERSION,
                id: lease::new_lease_id()?,
                agent: req["agent"].as_str().unwrap_or_default().to_owned(),
                host: lease::host_id()?,
                scopes: vec![Scope {
                    class: req["class"].as_str().unwrap_or_default().to_owned(),
                    pin: pin_of(&target)?,
                    target,
                }],
                not_before: now,
                not_after: now + ttl,
                reason: format!(
                    "{} (request {} from agent {})",
                    req["reason"].as_str().unwrap_or_default(),
                    args.id,
                    req["agent"].as_str().unwrap_or_default()
                ),
                ticket: args.ticket.clone(),
                request: Some(args.id.clone()),
            };
            Lease::sign(body, &key, Role::Issuer, now)
        }
        Some("needs-approvals") => {
            let text = req["lease"].as_str().unwrap_or_default();
            let mut lease = Lease::parse(text, &format!("request {}'s lease", args.id))?;
            lease.cosign(&key, now)?;
            lease
        }
        Some(other) => anyhow::bail!("request {} is already {other}", args.id),
        None => anyhow::bail!("the daemon's reply about request {} is not understood", args.id),
    };
    if let Some(out) = &args.out {
        lease.write(out)?;
    }
    let result = client::call(
        &args.socket,
        &Request::RequestApprove {
            id: args.id.clone(),
            lease: lease.to_toml(),
        },
    )?;
    if args.json {
        println!("{result}");
        return Ok(ExitCode::SUCCESS);
    }
    match result["request"]["state"].as_str() {
        Some("approved") => {
            println!("request {} approved by {}", args.id, key.operator());
            print_lease(&result["lease"], false);
        }
        Some("needs-approvals") => println!(
            "request {} signed by {} ({} of {} approvals); another operator runs `governor \
             lease approve {} --key THEIR_KEY`",
            args.id,
            key.operator(),
            result["request"]["have"],
            result["request"]["need"],
            args.id
        ),
        _ => println!("{result}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn reject(args: LeaseRejectArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(
        &args.socket,
        &Request::RequestReject {
            id: args.id.clone(),
            reason: args.reason.clone(),
        },
    )?;
    if args.json {
        println!("{result}");
    } else {
        println!("request {} rejected", args.id);
    }
    Ok(ExitCode::SUCCESS)
}
