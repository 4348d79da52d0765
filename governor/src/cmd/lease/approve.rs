//! `governor lease approve REQ --key KEY`: answer an agent's request with a lease signed by
//! this operator, answering exactly what was asked and pinned to the target's current inode,
//! and submit it; or, when the request already carries a lease short of approvals, cosign
//! that one.

use std::{os::unix::fs::MetadataExt, path::Path, process::ExitCode};

use anyhow::Context;

use super::view::print_lease;
use crate::{
    admin::client,
    api::{
        protocol::Request,
        reply::{self, Decided, RequestState, RequestView},
    },
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
    let req: RequestView = reply::read(
        "request-show",
        client::call(
            &args.conn.socket,
            &Request::RequestShow {
                id: args.id.clone(),
            },
        )?,
    )?;
    let now = time::now();
    let lease = match req.state {
        RequestState::Pending => {
            let ttl = args.ttl.unwrap_or(req.ttl_secs);
            let target = req.target.clone();
            let body = LeaseBody {
                version: lease::VERSION,
                id: lease::new_lease_id()?,
                agent: req.agent.clone(),
                host: lease::host_id()?,
                scopes: vec![Scope {
                    class: req.class.clone(),
                    pin: pin_of(&target)?,
                    target,
                }],
                not_before: now,
                not_after: now + ttl,
                reason: format!(
                    "{} (request {} from agent {})",
                    req.reason, args.id, req.agent
                ),
                ticket: args.ticket.clone(),
                request: Some(args.id.clone()),
            };
            Lease::sign(body, &key, Role::Issuer, now)
        }
        RequestState::NeedsApprovals => {
            let text = req.lease.as_deref().unwrap_or_default();
            let mut lease = Lease::parse(text, &format!("request {}'s lease", args.id))?;
            lease.cosign(&key, now)?;
            lease
        }
        other => anyhow::bail!("request {} is already {}", args.id, other.name()),
    };
    if let Some(out) = &args.out {
        lease.write(out)?;
    }
    let result = client::call(
        &args.conn.socket,
        &Request::RequestApprove {
            id: args.id.clone(),
            lease: lease.to_toml(),
        },
    )?;
    if args.conn.json {
        println!("{result}");
        return Ok(ExitCode::SUCCESS);
    }
    let decided: Decided = reply::read("request-approve", result.clone())?;
    match (decided.request.state, &decided.lease) {
        (RequestState::Approved, Some(lease)) => {
            println!("request {} approved by {}", args.id, key.operator());
            print_lease(lease);
        }
        (RequestState::NeedsApprovals, _) => println!(
            "request {} signed by {} ({} of {} approvals); another operator runs `governor \
             lease approve {} --key THEIR_KEY`",
            args.id,
            key.operator(),
            decided.request.have.unwrap_or_default(),
            decided.request.need.unwrap_or_default(),
            args.id
        ),
        _ => println!("{result}"),
    }
    Ok(ExitCode::SUCCESS)
}
