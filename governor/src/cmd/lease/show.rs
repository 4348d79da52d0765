//! `governor lease show FILE`: what a lease grants, to whom, where and when, and each
//! signature's standing against the trusted keys (valid, invalid, untrusted key).

use std::{fmt::Write as _, process::ExitCode};

use anyhow::Context;

use crate::{
    admin::client,
    api::{
        protocol::{Request, ScopeAsk},
        reply,
        rollback::SnapshotCost,
    },
    cli::LeaseShowArgs,
    leases,
    signing::{
        keys::TrustedKeys,
        lease::{self, Lease, LeaseBody, SignatureStatus, Signer, Verified, VerifyContext},
    },
    time::{rfc3339, span},
};

pub fn run(args: LeaseShowArgs) -> anyhow::Result<ExitCode> {
    let lease = Lease::read(&args.file)?;
    let (trusted, problems) = TrustedKeys::load(&args.trusted_dir);
    for p in &problems {
        eprintln!("governor: warning: trusted keys: {p}");
    }
    let now = crate::time::now();
    let this_host = lease::host_id().ok();
    let sigs: Vec<SigView> = lease
        .signatures
        .iter()
        .map(|s| {
            let (status, trusted_as) = match lease::check_signature(s, &lease.body, &trusted) {
                SignatureStatus::Valid(k) => ("valid", Some(k)),
                SignatureStatus::Invalid(k) => ("invalid", Some(k)),
                SignatureStatus::Untrusted => ("untrusted key", None),
            };
            SigView {
                key_id: s.key_id.to_string(),
                operator: s.operator.clone(),
                role: s.role.as_str(),
                signed_at: rfc3339(s.signed_at),
                status,
                trusted_file: trusted_as.map(|k| k.file.display().to_string()),
                trusted_operator: trusted_as.map(|k| k.operator.clone()),
            }
        })
        .collect();
    let check = match &this_host {
        None => Err(
            "this host has no /etc/machine-id, so the host binding cannot be checked".to_owned(),
        ),
        Some(host) => lease::verify(
            &lease,
            &VerifyContext {
                trusted: &trusted,
                host,
                now,
                max_ttl_secs: args.max_ttl.unwrap_or(u64::MAX),
                required_approvals: args.approvals,
            },
        )
        .map_err(|e| e.to_string()),
    };
    let cost = snapshot_cost(&args, &lease.body);
    if args.json {
        let b = &lease.body;
        let out = serde_json::json!({
            "file": args.file.display().to_string(),
            "body": b,
            "not_before": rfc3339(b.not_before),
            "not_after": rfc3339(b.not_after),
            "state": state(b, now),
            "this_host": this_host,
            "for_this_host": this_host.as_deref() == Some(b.host.as_str()),
            "signatures": sigs,
            "check": match &check {
                Ok(v) => serde_json::json!({"ok": true, "verified": v}),
                Err(e) => serde_json::json!({"ok": false, "error": e}),
            },
            "snapshot_cost": match &cost {
                Ok(c) => serde_json::json!(c),
                Err(e) => serde_json::json!({"unknown": e}),
            },
        });
        println!("{}", serde_json::to_string_pretty(&out).context("encode")?);
    } else {
        print!("{}", body_text(&lease.body, this_host.as_deref(), now));
        print!(
            "{}",
            signatures_text(&sigs, &args.trusted_dir.display().to_string())
        );
        print!("{}", check_text(&check, &args));
        match &cost {
            Ok(c) => println!("snapshot   {}", leases::describe_cost(c)),
            Err(e) => println!("snapshot   unknown: {e}"),
        }
    }
    Ok(if check.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the daemon would snapshot before this lease takes effect, as it estimates it now.
fn snapshot_cost(args: &LeaseShowArgs, b: &LeaseBody) -> Result<SnapshotCost, String> {
    let reply = client::call(
        &args.socket,
        &Request::SnapshotCost {
            agent: b.agent.clone(),
            scopes: b
                .scopes
                .iter()
                .map(|s| ScopeAsk {
                    class: s.class.clone(),
                    target: s.target.clone(),
                })
                .collect(),
        },
    )
    .map_err(|e| format!("the daemon could not say ({e})"))?;
    reply::read("snapshot-cost", reply).map_err(|e| e.to_string())
}

/// The daemon's verdict, as far as it can be told offline.
fn check_text(check: &Result<Verified, String>, args: &LeaseShowArgs) -> String {
    let limits = format!(
        "{} signer(s) required, {}",
        args.approvals.max(1),
        match args.max_ttl {
            Some(t) => format!("TTL at most {}", span(t)),
            None => "TTL not checked (pass --max-ttl)".to_owned(),
        }
    );
    match check {
        Ok(v) => {
            let who: Vec<String> = v
                .signers
                .iter()
                .map(|s: &Signer| format!("{} {} ({})", s.role, s.operator, s.key_id))
                .collect();
            let when = match v.starts_at {
                Some(t) => format!("; not in force before {}", rfc3339(t)),
                None => String::new(),
            };
            format!(
                "check      ok on this host now ({limits}): {}{when}\n",
                who.join(", ")
            )
        }
        Err(e) => format!("check      REFUSED ({limits}): {e}\n"),
    }
}

#[derive(serde::Serialize)]
struct SigView {
    key_id: String,
    operator: String,
    role: &'static str,
    signed_at: String,
    /// `valid`, `invalid` or `untrusted key`.
    status: &'static str,
    trusted_file: Option<String>,
    trusted_operator: Option<String>,
}

/// `in force, expires in 12m03s`, `starts in 5m00s`, `expired 3m00s ago`.
fn state(b: &LeaseBody, now: u64) -> String {
    if b.not_after <= now {
        format!("expired {} ago", span(now - b.not_after))
    } else if b.not_before > now {
        format!(
            "not yet in force: starts in {}, expires in {}",
            span(b.not_before - now),
            span(b.not_after - now)
        )
    } else {
        format!("in force, expires in {}", span(b.not_after - now))
    }
}

/// The body, for people.
pub fn body_text(b: &LeaseBody, this_host: Option<&str>, now: u64) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(out, "{k:<11}{v}");
    };
    line("lease", &format!("{} (format version {})", b.id, b.version));
    line("agent", &b.agent);
    let host_note = match this_host {
        Some(h) if h == b.host => " (this host)".to_owned(),
        Some(h) => format!(" (NOT this host, which is {h})"),
        None => " (this host's id is unknown: no /etc/machine-id)".to_owned(),
    };
    line("host", &format!("{}{host_note}", b.host));
    line(
        "valid",
        &format!(
            "{} to {} ({})",
            rfc3339(b.not_before),
            rfc3339(b.not_after),
            span(b.not_after.saturating_sub(b.not_before))
        ),
    );
    line("state", &state(b, now));
    line("reason", &b.reason.replace('\n', "\n           "));
    line("ticket", b.ticket.as_deref().unwrap_or("-"));
    if let Some(r) = &b.request {
        line("request", r);
    }
    let class_w = b.scopes.iter().map(|s| s.class.len()).max().unwrap_or(0);
    let _ = writeln!(out, "scopes");
    for s in &b.scopes {
        let pin = s
            .pin
            .map(|p| format!("  (pinned: dev {} ino {})", p.dev, p.ino))
            .unwrap_or_default();
        let _ = writeln!(out, "  {:<class_w$}  {}{pin}", s.class, s.target);
    }
    out
}

fn signatures_text(sigs: &[SigView], trusted_dir: &str) -> String {
    let mut out = String::from("signatures\n");
    if sigs.is_empty() {
        out.push_str("  (none)\n");
    }
    for s in sigs {
        let verdict = match s.status {
            "valid" => format!(
                "valid (trusted: {})",
                s.trusted_file.as_deref().unwrap_or("?")
            ),
            "invalid" => "INVALID: the lease was changed after this key signed it".to_owned(),
            _ => format!("untrusted key (not in {trusted_dir}); not counted"),
        };
        let _ = writeln!(
            out,
            "  {:<8}  {}  {}  signed {}  {verdict}",
            s.role, s.key_id, s.operator, s.signed_at
        );
        if let Some(op) = &s.trusted_operator {
            if *op != s.operator {
                let _ = writeln!(
                    out,
                    "            the trusted key file names the operator {op}"
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::lease::{Pin, Scope};

    fn body() -> LeaseBody {
        LeaseBody {
            version: 1,
            id: "l-x".into(),
            agent: "coder".into(),
            host: "h1".into(),
            scopes: vec![Scope {
                class: "unlink".into(),
                target: "/srv/a".into(),
                pin: Some(Pin { dev: 8, ino: 9 }),
            }],
            not_before: 1000,
            not_after: 1900,
            reason: "two\nlines".into(),
            ticket: None,
            request: Some("r-1".into()),
        }
    }

    #[test]
    fn states_around_the_window() {
        let b = body();
        assert_eq!(
            state(&b, 940),
            "not yet in force: starts in 1m00s, expires in 16m00s"
        );
        assert_eq!(state(&b, 1000), "in force, expires in 15m00s");
        assert_eq!(state(&b, 1899), "in force, expires in 1s");
        assert_eq!(state(&b, 1900), "expired 0s ago");
        assert_eq!(state(&b, 1961), "expired 1m01s ago");
    }

    #[test]
    fn body_text_says_whose_host_and_shows_pins() {
        let b = body();
        let t = body_text(&b, Some("h1"), 1000);
        for want in [
            "host       h1 (this host)",
            "valid      1970-01-01T00:16:40Z to 1970-01-01T00:31:40Z (15m00s)",
            "reason     two\n           lines",
            "ticket     -",
            "request    r-1",
            "  unlink  /srv/a  (pinned: dev 8 ino 9)",
        ] {
            assert!(t.contains(want), "missing {want:?} in:\n{t}");
        }
        let t = body_text(&b, Some("h2"), 1000);
        assert!(t.contains("h1 (NOT this host, which is h2)"), "{t}");
        let t = body_text(&b, None, 1000);
        assert!(t.contains("no /etc/machine-id"), "{t}");
    }
}
