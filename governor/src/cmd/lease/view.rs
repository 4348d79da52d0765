//! How a lease the daemon reports is printed for people.

use crate::{
    api::reply::{LeaseState, LeaseView},
    leases, time,
};

/// One lease, as a sentence.
pub fn print_lease(l: &LeaseView) {
    let when = match (l.state, l.enforced_at_ms) {
        (LeaseState::Enforced, Some(ms)) => {
            format!("enforced since {}", time::rfc3339(ms / 1000))
        }
        (LeaseState::Scheduled, _) => {
            format!("scheduled: enforced from {}", time::rfc3339(l.not_before))
        }
        (s, _) => s.name().to_owned(),
    };
    println!(
        "lease {} for agent {}: {when}; ends {} (in {})",
        l.id,
        l.agent,
        time::rfc3339(l.not_after),
        time::span(l.left_secs),
    );
    for s in &l.scopes {
        println!(
            "  scope {}:{} (lifts `lease` on {})",
            s.class, s.target, s.resource
        );
    }
    for s in &l.signers {
        println!("  signed by {} ({}, key {})", s.operator, s.role, s.key_id);
    }
    if let Some(s) = &l.snapshot {
        println!("  snapshot: {}", leases::describe_snapshot(s));
        for r in &s.rollbacks {
            println!(
                "  rolled back {} by uid {} ({})",
                time::rfc3339(r.at_ms / 1000),
                r.by_uid,
                r.outcome
            );
        }
    }
}
