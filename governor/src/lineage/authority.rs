//! The rows acts of authority leave in the lineage: the policy the daemon loaded, the
//! operator keys it trusts, each step of a lease's or request's life, and halts. The lease
//! manager, the request socket and the kill switch build them from here and hand them to
//! their [`super::recorder::Recorder`]; the rows of a lease itself are built by the lease
//! manager from its store records (`crate::leases::rows`), so the lineage never imports it.
//!
//! Actors in `lease_lifecycle.actor` are written `uid:N` (a local user, from `SO_PEERCRED`),
//! `agent:NAME` (a process in an agent cgroup) or an operator identity as their key names it.
//!
//! Reversibility: a lease's snapshot ([`snapshotted`], or why it has none:
//! [`not_snapshotted`]) and each restore of it ([`rollback_row`]). The daemon converts the
//! snapshot library's results into [`SnapshotFacts`] and [`RestoreFacts`] (the lineage
//! imports nothing above it).

use std::path::{Path, PathBuf};

use governor_common::Class;
use serde_json::{json, Value};

use super::{
    boot::{BootClock, Stamp},
    record::{HaltRow, KeyRow, LifecycleRow, PolicyRow, Record, RollbackRow},
};
use crate::{
    policy::Policy,
    signing::{keys::TrustedKey, lease::Lease},
};

/// The file classes whose lifting makes a lease destructive, so that it is snapshotted before
/// it takes effect: every class that changes a protected path (`modify`: delete, rename,
/// truncate, write, chmod, chown, xattr, link, and mknod, chattr and utimes). `lineage` dates
/// an incident from the first lease-allowed one of these. One list with the policy's.
pub const SNAPSHOT_CLASSES: &[Class] = crate::policy::FILE_CLASSES;

/// Whether a policy class name (`delete`, `write`, ...) or kernel class name names a class
/// of [`SNAPSHOT_CLASSES`].
pub fn destructive(class_name: &str) -> bool {
    crate::policy::classes_for_name(class_name)
        .is_some_and(|cs| cs.iter().any(|c| SNAPSHOT_CLASSES.contains(c)))
}

/// Paths listed at most, per kind, in a snapshot's or restore's detail (the counts are
/// whole; `truncated` says a list was cut).
pub const MAX_PATHS: usize = 100;

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
    let mut detail = json!({ "error": error, "origin": origin });
    if let Some(b) = body {
        // Whose authority it was, and whether it had run out: a refused expired lease is
        // an unsafe action blocked before execution (`lineage stats`, safety).
        detail["agent"] = json!(b.agent);
        detail["expired"] = json!(b.not_after <= crate::time::now());
    }
    lifecycle(
        "refused",
        body.map(|b| b.id.as_str()),
        request.or_else(|| body.and_then(|b| b.request.as_deref())),
        Some(uid_actor(uid)),
        detail,
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

/// A snapshot taken for a lease (from the snapshot library's `Taken`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFacts<'a> {
    pub files: u64,
    pub entries: u64,
    /// Logical bytes of content.
    pub bytes: u64,
    /// `reflink`, `copy`, `mixed` or `none` (nothing to copy: the targets held no file).
    pub method: &'a str,
    /// What taking it added to the submit.
    pub took_ms: u64,
    pub targets: &'a [PathBuf],
    /// Unix ms until which the snapshot is kept at least: the lease's `not_after` plus the
    /// policy's `[rollback] retention` (a lease that ends sooner is sealed with an earlier
    /// deadline, so this never undercuts it). `lineage prune` keeps the lease's rows until
    /// then.
    pub retain_until_ms: u64,
}

fn bounded<T: AsRef<Path>>(paths: &[T]) -> (Value, bool) {
    let list: Vec<String> = paths
        .iter()
        .take(MAX_PATHS)
        .map(|p| p.as_ref().display().to_string())
        .collect();
    (json!(list), paths.len() > MAX_PATHS)
}

/// Lease `lease_id`'s snapshot was taken (after verification, before its kernel entries),
/// now: lifecycle `snapshotted`, detail the facts. `actor`: who submitted (or approved) it.
pub fn snapshotted(
    lease_id: &str,
    request_id: Option<&str>,
    actor: Option<String>,
    s: &SnapshotFacts<'_>,
) -> Record {
    let (targets, truncated) = bounded(s.targets);
    lifecycle(
        "snapshotted",
        Some(lease_id),
        request_id,
        actor,
        json!({
            "files": s.files,
            "entries": s.entries,
            "bytes": s.bytes,
            "method": s.method,
            "took_ms": s.took_ms,
            "targets": targets,
            "truncated": truncated,
            "retain_until_ms": s.retain_until_ms,
        }),
    )
}

/// Lease `lease_id` was installed without a snapshot, and `why` (its destructive resources
/// say `rollback = "none"`; it lifts no destructive class): lifecycle `not-snapshotted`.
/// `lineage changes` says so instead of offering a rollback.
pub fn not_snapshotted(
    lease_id: &str,
    request_id: Option<&str>,
    actor: Option<String>,
    why: &str,
) -> Record {
    lifecycle(
        "not-snapshotted",
        Some(lease_id),
        request_id,
        actor,
        json!({ "why": why }),
    )
}

/// What set off a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `governor rollback`: the incident began with the lease's first lease-allowed
    /// destructive operation (found in `events` when the time to recovery is read).
    Rollback,
    /// `governor halt --rollback`, received at Unix ns `halt_ns` (the `halts` row's `ts_ns`):
    /// the incident is dated from the halt.
    Halt { halt_ns: i64 },
}

/// A restore of a lease's snapshot (from the snapshot library's `Restored`), with when it
/// ran and who ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreFacts<'a> {
    pub lease_id: &'a str,
    /// The lease's agent.
    pub agent: &'a str,
    /// Who ran it (`SO_PEERCRED`).
    pub uid: u32,
    pub trigger: Trigger,
    /// The boot both stamps are on (the daemon's `BootClock::boot_id`).
    pub boot_id: &'a str,
    /// Taken just before the restore began and just after it ended.
    pub started: Stamp,
    pub ended: Stamp,
    pub restored: &'a [PathBuf],
    pub recreated: &'a [PathBuf],
    pub removed: &'a [PathBuf],
    pub unchanged: u64,
    /// Paths changed outside the lease, and why each is one.
    pub conflicts: &'a [(PathBuf, String)],
    /// `--force`: conflicts were overwritten.
    pub forced: bool,
}

/// The `rollbacks` row of a restore (the writer adds the lease's `rolled-back` step with it).
/// Its outcome is `partial` when conflicts were left alone, else `restored`.
pub fn rollback_row(r: &RestoreFacts<'_>) -> Record {
    let (restored, t1) = bounded(r.restored);
    let (recreated, t2) = bounded(r.recreated);
    let (removed, t3) = bounded(r.removed);
    let conflicts: Vec<Value> = r
        .conflicts
        .iter()
        .take(MAX_PATHS)
        .map(|(p, why)| json!({ "path": p.display().to_string(), "why": why }))
        .collect();
    let truncated = t1 || t2 || t3 || r.conflicts.len() > MAX_PATHS;
    let n = |v: usize| v as u64;
    Record::Rollback(Box::new(RollbackRow {
        lease_id: r.lease_id.to_owned(),
        agent: r.agent.to_owned(),
        actor: uid_actor(r.uid),
        trigger: match r.trigger {
            Trigger::Rollback => "rollback",
            Trigger::Halt { .. } => "halt",
        },
        incident_ns: match r.trigger {
            Trigger::Rollback => None,
            Trigger::Halt { halt_ns } => Some(halt_ns),
        },
        boot_id: r.boot_id.to_owned(),
        started_boot_ns: r.started.boot_ns,
        ended_boot_ns: r.ended.boot_ns,
        started_ns: r.started.unix_ns,
        ended_ns: r.ended.unix_ns,
        restored: n(r.restored.len()),
        recreated: n(r.recreated.len()),
        removed: n(r.removed.len()),
        unchanged: r.unchanged,
        conflicts: n(r.conflicts.len()),
        forced: r.forced,
        outcome: if r.conflicts.is_empty() || r.forced {
            "restored"
        } else {
            "partial"
        },
        detail: json!({
            "restored": restored,
            "recreated": recreated,
            "removed": removed,
            "conflicts": conflicts,
            "truncated": truncated,
        })
        .to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{
        keys::SecretKey,
        lease::{LeaseBody, Role, Scope},
    };

    fn lease_text(not_after: u64) -> String {
        let now = crate::time::now();
        let body = LeaseBody {
            version: 1,
            id: "l-x".into(),
            agent: "coder".into(),
            host: "0123456789abcdef0123456789abcdef".into(),
            scopes: vec![Scope {
                class: "unlink".into(),
                target: "/srv/a".into(),
                pin: None,
            }],
            not_before: not_after - 600,
            not_after,
            reason: "r".into(),
            ticket: None,
            request: None,
        };
        let key = SecretKey::from_seed([3; 32], "op", now);
        Lease::sign(body, &key, Role::Issuer, now).to_toml()
    }

    fn detail(r: &Record) -> Value {
        let Record::Lifecycle(c) = r else {
            panic!("not a lifecycle row: {r:?}");
        };
        serde_json::from_str(c.detail.as_deref().expect("detail")).expect("json")
    }

    /// A refused lease names its agent and whether it had expired (the safety figures count
    /// the expired ones); text that does not parse names neither.
    #[test]
    fn a_refusal_says_whose_and_whether_expired() {
        let now = crate::time::now();
        let d = detail(&refused(
            &lease_text(now - 5),
            "x.lease",
            7,
            "expired",
            None,
        ));
        assert_eq!(
            (d["agent"].as_str(), d["expired"].as_bool()),
            (Some("coder"), Some(true))
        );
        let d = detail(&refused(&lease_text(now + 600), "x.lease", 7, "ttl", None));
        assert_eq!(d["expired"], false);
        let d = detail(&refused("not a lease", "x.lease", 7, "syntax", None));
        assert!(
            d.get("agent").is_none() && d.get("expired").is_none(),
            "{d}"
        );
    }

    fn restore(conflicts: &[(PathBuf, String)], forced: bool) -> RollbackRow {
        let many: Vec<PathBuf> = (0..MAX_PATHS + 5)
            .map(|i| format!("/t/{i}").into())
            .collect();
        let at = Stamp {
            boot_ns: 5,
            unix_ns: 10,
        };
        let r = rollback_row(&RestoreFacts {
            lease_id: "L",
            agent: "a",
            uid: 42,
            trigger: Trigger::Halt { halt_ns: 3 },
            boot_id: "b",
            started: at,
            ended: at,
            restored: &many,
            recreated: &[],
            removed: &[],
            unchanged: 2,
            conflicts,
            forced,
        });
        let Record::Rollback(r) = r else {
            panic!("not a rollback row: {r:?}");
        };
        *r
    }

    /// Counts are whole, listed paths bounded; conflicts left alone make it partial, forced
    /// over they do not.
    #[test]
    fn a_restore_row_counts_bounds_and_judges() {
        let r = restore(&[], false);
        assert_eq!((r.restored, r.unchanged, r.conflicts), (105, 2, 0));
        assert_eq!(
            (r.actor.as_str(), r.trigger, r.incident_ns),
            ("uid:42", "halt", Some(3))
        );
        assert_eq!(r.outcome, "restored");
        let d: Value = serde_json::from_str(&r.detail).expect("json");
        assert_eq!(d["restored"].as_array().map(Vec::len), Some(MAX_PATHS));
        assert_eq!(d["truncated"], true);
        let conflict = [(
            PathBuf::from("/t/0"),
            "changed since the lease ended".to_owned(),
        )];
        assert_eq!(restore(&conflict, false).outcome, "partial");
        let forced = restore(&conflict, true);
        assert_eq!(
            (forced.outcome, forced.conflicts, forced.forced),
            ("restored", 1, true)
        );
        let d: Value = serde_json::from_str(&forced.detail).expect("json");
        assert_eq!(d["conflicts"][0]["why"], "changed since the lease ended");
    }

    #[test]
    fn destructive_classes_by_policy_name() {
        for c in ["delete", "unlink", "write", "modify", "rename", "xattr"] {
            assert!(destructive(c), "{c}");
        }
        for c in ["connect", "exec", "network", "read", "nonsense"] {
            assert!(!destructive(c), "{c}");
        }
    }
}
