//! `governor lease issue`: builds a lease body from the command line, signs it with the
//! issuer's key and writes it to a file or stdout. Grants nothing by itself.

use std::{os::unix::fs::MetadataExt, process::ExitCode};

use anyhow::{bail, Context};

use crate::{
    cli::LeaseIssueArgs,
    signing::{
        keys::SecretKey,
        lease::{self, Lease, LeaseBody, Pin, Role, Scope},
    },
    time,
};

pub fn run(args: LeaseIssueArgs) -> anyhow::Result<ExitCode> {
    let key = SecretKey::load(&args.key)?;
    let host = if args.host == "this" {
        lease::host_id().context("--host this")?
    } else {
        args.host.clone()
    };
    let mut scopes = Vec::with_capacity(args.scopes.len());
    for text in &args.scopes {
        let (class, target) =
            lease::split_scope(text).map_err(|why| anyhow::anyhow!("--scope {text}: {why}"))?;
        let pin = if args.pin && target.starts_with('/') {
            let meta = std::fs::metadata(&target).with_context(|| {
                format!("--pin: cannot stat {target}; a pinned target must exist now")
            })?;
            Some(Pin {
                dev: meta.dev(),
                ino: meta.ino(),
            })
        } else {
            None
        };
        scopes.push(Scope { class, target, pin });
    }
    let now = time::now();
    let not_before = args.not_before.unwrap_or(now);
    let Some(not_after) = not_before.checked_add(args.ttl) else {
        bail!("--not-before plus --ttl lies beyond the year 584 billion; shorten them");
    };
    if not_after <= now {
        bail!(
            "the lease would already be expired ({}); move --not-before later or lengthen --ttl",
            time::rfc3339(not_after)
        );
    }
    let body = LeaseBody {
        version: lease::VERSION,
        id: lease::new_lease_id()?,
        agent: args.agent,
        host,
        scopes,
        not_before,
        not_after,
        reason: args.reason,
        ticket: args.ticket,
        request: args.request,
    };
    body.validate()?;
    let lease = Lease::sign(body, &key, Role::Issuer, now);
    match &args.out {
        Some(path) => {
            lease.write(path)?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{}", lease.to_toml()),
    }
    let b = &lease.body;
    eprintln!(
        "lease {} for agent {} on host {}: {} scope(s), {} to {}, issued by {} ({})",
        b.id,
        b.agent,
        b.host,
        b.scopes.len(),
        time::rfc3339(b.not_before),
        time::rfc3339(b.not_after),
        key.id(),
        key.operator()
    );
    eprintln!(
        "next: another operator approves it with `governor lease cosign FILE --key THEIR_KEY` \
         if the policy needs more than one signer; check it with `governor lease show FILE`"
    );
    Ok(ExitCode::SUCCESS)
}
