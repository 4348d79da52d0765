//! The lineage rows of a lease's own life, built from the lease store's records: the lease
//! the daemon accepted (with the signatures that counted, `issued` and `submitted`), and each
//! state it enters. They live with the lease manager, whose records they read, so that the
//! lineage below it needs nothing of the lease manager's.

use serde_json::json;

use super::store;
use crate::{
    lineage::{
        authority::{
            lifecycle, lifecycle_at, not_snapshotted, snapshotted as lineage_snapshotted,
            uid_actor, SnapshotFacts,
        },
        record::{LeaseRow, Record, SignerRow},
    },
    signing::lease::{Lease, Role},
};

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

/// The row of a lease's snapshot, taken before its entries reached the kernel: what it holds,
/// what it added to the submit (`took_ms`) and until when it is kept at least
/// (`retain_until_ms`: the lease's end plus `retention`); or, for a lease with nothing to
/// snapshot, why.
pub fn snapshotted(record: &store::Record, retention_ms: u64) -> Option<Record> {
    let s = record.snapshot.as_ref()?;
    let actor = Some(uid_actor(record.submitted_by_uid));
    if s.state != "taken" {
        return Some(not_snapshotted(
            &record.id,
            record.request.as_deref(),
            actor,
            &s.skipped.join("; "),
        ));
    }
    let targets: Vec<std::path::PathBuf> = s.targets.iter().map(Into::into).collect();
    Some(lineage_snapshotted(
        &record.id,
        record.request.as_deref(),
        actor,
        &SnapshotFacts {
            files: s.files,
            entries: s.entries,
            bytes: s.bytes,
            method: &s.method,
            took_ms: s.took_ms,
            targets: &targets,
            retain_until_ms: record
                .not_after
                .saturating_mul(1000)
                .saturating_add(retention_ms),
        },
    ))
}
