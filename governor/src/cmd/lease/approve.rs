//! `governor lease approve REQ --key KEY`: answer an agent's request with a lease signed by
//! this operator, answering exactly what was asked and pinned to the target's current inode,
//! and submit it; or, when the request already carries a lease short of approvals, cosign
//! that one.

use std::{os::unix::fs::MetadataExt, path::Path, process::ExitCode};

use anyhow::Context;

use super::view::print_lease;
use crate::{
    admin::{client, protocol::Request},
    cli::LeaseApproveArgs,
    signing::{
        keys::SecretKey,
        lease::{self, Lease, LeaseBody, Pin, Role, Scope},
    },
    time,
};

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

pub fn run(args: LeaseApproveArgs) -> anyhow::Result<ExitCode> {
    let key = SecretKey::load(&args.key)?;
    let req = client::call(
        &args.socket,
        &Request::RequestShow {
            id: args.id.clone(),
        },
    )?;
    let now = time::now();
    let lease = match req["state"].as_str() {
        Some("pending") => {
            let ttl = match args.ttl {
                Some(secs) => secs,
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
        None => anyhow::bail!(
            "the daemon's reply about request {} is not understood",
            args.id
        ),
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
