//! The rows acts of authority leave in the lineage: the policy the daemon loaded, the
//! operator keys it trusts, each step of a lease's or request's life, and halts. The lease
//! manager, the request socket and the kill switch build them from here and hand them to
//! their [`super::recorder::Recorder`]; the rows of a lease itself are built by the lease
//! manager from its store records (`crate::leases::rows`), so the lineage never imports it.
//!
//! Actors in `lease_lifecycle.actor` are written `uid:N` (a local user, from `SO_PEERCRED`),
//! `agent:NAME` (a process in an agent cgroup) or an operator identity as their key names it.

use serde_json::{json, Value};

use super::{
    boot::BootClock,
    record::{HaltRow, KeyRow, LifecycleRow, PolicyRow, Record},
};
use crate::{
    policy::Policy,
    signing::{keys::TrustedKey, lease::Lease},
};

/// The row for `policy`, loaded now.
pub fn policy_row(policy: &Policy) -> Record {
    Record::Policy(Box::new(PolicyRow {
        version: policy.version.clone(),
        name: policy.name.clone(),
        owner: policy.owner.clone(),
        source: policy.source.display().to_string(),
        loaded_ns: BootClock::now_ns(),
        text: policy.text.to_string(),
    }))
}

/// The row for a trusted key, first seen now.
pub fn key_row(key: &TrustedKey) -> Record {
    Record::Key(KeyRow {
        key_id: key.id.to_string(),
        operator: key.operator.clone(),
        public_key: crate::signing::keys::encode(key.key.as_bytes()),
        first_seen_ns: BootClock::now_ns(),
    })
}

/// `uid:N`.
pub fn uid_actor(uid: u32) -> String {
    format!("uid:{uid}")
}

/// `agent:NAME`.
pub fn agent_actor(agent: &str) -> String {
    format!("agent:{agent}")
}

/// A step in the life of a lease and/or request, now.
pub fn lifecycle(
    state: &'static str,
    lease_id: Option<&str>,
    request_id: Option<&str>,
    actor: Option<String>,
    detail: Value,
) -> Record {
    lifecycle_at(
        BootClock::now_ns(),
        state,
        lease_id,
        request_id,
        actor,
        detail,
    )
}

pub fn lifecycle_at(
    ts_ns: i64,
    state: &'static str,
    lease_id: Option<&str>,
    request_id: Option<&str>,
    actor: Option<String>,
    detail: Value,
) -> Record {
    Record::Lifecycle(LifecycleRow {
        ts_ns,
        lease_id: lease_id.map(str::to_owned),
        request_id: request_id.map(str::to_owned),
        state,
        actor,
        detail: (!detail.is_null()).then(|| detail.to_string()),
    })
}

/// A lease refused at submit (or at the approval of `request`): the error as the submitter
/// saw it. The lease's id (and request) are named when the text parses far enough to tell.
pub fn refused(text: &str, origin: &str, uid: u32, error: &str, request: Option<&str>) -> Record {
    let parsed = Lease::parse(text, origin).ok();
    let body = parsed.as_ref().map(|l| &l.body);
    lifecycle(
        "refused",
        body.map(|b| b.id.as_str()),
        request.or_else(|| body.and_then(|b| b.request.as_deref())),
        Some(uid_actor(uid)),
        json!({ "error": error, "origin": origin }),
    )
}

/// A halt or resume of `agents` by `uid`, received at `at_ns`, enforced after `enforce_ns`.
pub fn halt_row(
    at_ns: i64,
    action: &'static str,
    agents: Vec<String>,
    by_uid: u32,
    leases_revoked: u32,
    enforce_ns: Option<u64>,
) -> Record {
    Record::Halt(HaltRow {
        ts_ns: at_ns,
        action,
        agents,
        by_uid,
        leases_revoked,
        enforce_ns,
    })
}
