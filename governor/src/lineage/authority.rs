//! The rows acts of authority leave in the lineage: the policy the daemon loaded, the
//! operator keys it trusts, the leases it accepted (with the signatures that counted), each
//! step of a lease's or request's life, and halts. The lease authority, the request socket
//! and the kill switch build them here and hand them to their [`super::recorder::Recorder`].
//!
//! Actors in `lease_lifecycle.actor` are written `uid:N` (a local user, from `SO_PEERCRED`),
//! `agent:NAME` (a process in an agent cgroup) or an operator identity as their key names it.

use serde_json::{json, Value};

use super::{
    boot::BootClock,
    record::{HaltRow, KeyRow, LeaseRow, LifecycleRow, PolicyRow, Record, SignerRow},
};
use crate::{
    leases::store,
    policy::Policy,
    signing::{
        keys::TrustedKey,
        lease::{Lease, Role},
    },
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

fn lifecycle_at(
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

/// Unix seconds as Unix ns.
fn secs_ns(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX)
}

/// The rows of a lease the daemon just accepted, in the order it happened: the lease with
/// its counted signers, `issued` (at the issuer's signing time, by the issuer) and
/// `submitted` (at `received_ns`, by the submitter). Each counted signer's `signed_at` is
/// its first signature in the file.
pub fn accepted(
    lease: &Lease,
    record: &store::Record,
    text: &str,
    policy_version: &str,
    received_ns: i64,
    origin: &str,
) -> Vec<Record> {
    let signed_at = |key_id: &str, role: Role| {
        lease
            .signatures
            .iter()
            .find(|s| s.key_id.to_string() == key_id && s.role == role)
            .or_else(|| {
                lease
                    .signatures
                    .iter()
                    .find(|s| s.key_id.to_string() == key_id)
            })
            .map_or(0, |s| s.signed_at)
    };
    let signers: Vec<SignerRow> = record
        .signers
        .iter()
        .map(|s| {
            let role = if s.role == "issuer" {
                Role::Issuer
            } else {
                Role::Approver
            };
            SignerRow {
                key_id: s.key_id.clone(),
                operator: s.operator.clone(),
                role: s.role.clone(),
                signed_at: signed_at(&s.key_id, role),
            }
        })
        .collect();
    let issuer = lease.signatures.iter().find(|s| s.role == Role::Issuer);
    let id = record.id.as_str();
    let request = record.request.as_deref();
    let mut out = vec![Record::Lease(Box::new(LeaseRow {
        id: record.id.clone(),
        agent: record.agent.clone(),
        host: lease.body.host.clone(),
        scopes: serde_json::to_string(&record.scopes).unwrap_or_else(|_| "[]".to_owned()),
        not_before: record.not_before,
        not_after: record.not_after,
        reason: record.reason.clone(),
        ticket: record.ticket.clone(),
        request_id: record.request.clone(),
        document: text.to_owned(),
        policy_version: policy_version.to_owned(),
        signers,
    }))];
    if let Some(s) = issuer {
        out.push(lifecycle_at(
            secs_ns(s.signed_at),
            "issued",
            Some(id),
            request,
            Some(s.operator.clone()),
            json!({ "key_id": s.key_id.to_string() }),
        ));
    }
    out.push(lifecycle_at(
        received_ns,
        "submitted",
        Some(id),
        request,
        Some(uid_actor(record.submitted_by_uid)),
        json!({ "origin": origin }),
    ));
    out
}

/// The lifecycle row for a lease entering `state` (`None` for a state the lineage does not
/// name: scheduled); `how` says what moved it (`enforced`, `reinstalled`, `expired`, ...).
pub fn transition(record: &store::Record, how: &str, detail: &str) -> Option<Record> {
    let (state, actor, detail) = match &record.state {
        store::State::Scheduled => return None,
        store::State::Enforced => (
            "enforced",
            None,
            json!({ "how": how, "detail": detail, "not_after": record.not_after }),
        ),
        store::State::Expired => ("expired", None, json!({ "not_after": record.not_after })),
        store::State::Revoked { by_uid, reason } => (
            "revoked",
            Some(uid_actor(*by_uid)),
            json!({ "reason": reason }),
        ),
        store::State::Dropped { reason } => ("dropped", None, json!({ "reason": reason })),
    };
    Some(lifecycle(
        state,
        Some(&record.id),
        record.request.as_deref(),
        actor,
        detail,
    ))
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
