//! Each reply reads the JSON the daemon sent before its replies were typed (literal samples
//! of the old `json!` builders, keys sorted as a `serde_json::Value` writes them) and writes
//! it back byte for byte: no field is renamed, lost or added.

use serde::{de::DeserializeOwned, Serialize};

use super::*;
use crate::host::freeze::Action;

/// `literal` reads as a `T` and writes back as the same bytes.
fn same<T: Serialize + DeserializeOwned>(command: &'static str, literal: &str) -> T {
    let v: Value = serde_json::from_str(literal).expect("literal is JSON");
    let typed: T = read(command, v).expect("reads");
    let back = serde_json::to_value(&typed).expect("writes").to_string();
    assert_eq!(back, literal, "{command}");
    typed
}

const LEASE: &str = concat!(
    r#"{"agent":"a","by_uid":3,"enforced_at_ms":5,"file":"[lease]\n","#,
    r#""history":[{"at_ms":5,"what":"enforced"},{"at_ms":9,"detail":"by uid 3","what":"revoked"}],"#,
    r#""id":"l-1","kernel_id":7,"left_secs":0,"not_after":200,"not_before":100,"#,
    r#""policy":"p 1","reason":null,"request":"r-1","#,
    r#""scopes":[{"class":"delete","object":"/srv/x","resource":"data","target":"/srv/x"}],"#,
    r#""signers":[{"key_id":"k","operator":"op","role":"issuer"}],"#,
    r#""state":"revoked","submitted_by_uid":0,"ticket":null}"#
);

const LIVE_LEASE: &str = concat!(
    r#"{"agent":"a","boot":{"boot_id":"b","not_after_ns":2,"not_before_ns":1},"#,
    r#""enforced_at_ms":null,"history":[],"id":"l-2","kernel_id":8,"left_secs":60,"#,
    r#""not_after":200,"not_before":100,"policy":"p 1","reason":"cleanup","request":null,"#,
    r#""scopes":[],"signers":[],"state":"scheduled","submitted_by_uid":0,"ticket":"T-1"}"#
);

const PENDING: &str = concat!(
    r#"{"agent":"a","approve_command":"governor lease approve r-1 --key KEY","#,
    r#""class":"delete","created_ms":1,"id":"r-1","pid":42,"reason":"why","#,
    r#""resource":"/x","state":"pending","target":"/x","ttl_secs":60,"uid":1000}"#
);

const NEEDS: &str = concat!(
    r#"{"agent":"a","approve_command":"governor lease approve r-2 --key KEY","#,
    r#""class":"delete","created_ms":1,"have":1,"id":"r-2","lease":"[lease]","need":2,"#,
    r#""pid":42,"reason":"why","resource":"/x","state":"needs-approvals","target":"/x","#,
    r#""ttl_secs":60,"uid":1000}"#
);

const REJECTED: &str = concat!(
    r#"{"agent":"a","by_uid":0,"class":"delete","created_ms":1,"id":"r-3","pid":42,"#,
    r#""reason":"no","resource":"/x","state":"rejected","target":"/x","ttl_secs":60,"uid":1000}"#
);

const APPROVED: &str = concat!(
    r#"{"agent":"a","class":"delete","created_ms":1,"id":"r-4","lease":"l-1","pid":42,"#,
    r#""reason":"why","resource":"/x","state":"approved","target":"/x","ttl_secs":60,"uid":1000}"#
);

#[test]
fn lease_replies_are_unchanged() {
    let l: LeaseView = same("lease-show", LEASE);
    assert_eq!(l.state, LeaseState::Revoked);
    assert_eq!(l.reason, None);
    let l: LeaseView = same("lease-show", LIVE_LEASE);
    assert_eq!(l.reason.as_deref(), Some("cleanup"));
    let list: LeaseList = same(
        "lease-list",
        &format!(r#"{{"leases":[{LEASE},{LIVE_LEASE}]}}"#),
    );
    assert_eq!(list.leases.len(), 2);
    same::<LeaseList>("lease-list", r#"{"leases":[]}"#);
}

#[test]
fn request_replies_are_unchanged() {
    for literal in [PENDING, NEEDS, REJECTED, APPROVED] {
        same::<RequestView>("request-show", literal);
    }
    let list: RequestList = same(
        "request-list",
        &format!(r#"{{"host":"h","requests":[{PENDING},{NEEDS}]}}"#),
    );
    assert_eq!(list.requests[1].state, RequestState::NeedsApprovals);
    let d: Decided = same("request-approve", &format!(r#"{{"request":{NEEDS}}}"#));
    assert!(d.lease.is_none());
    let d: Decided = same(
        "request-approve",
        &format!(r#"{{"lease":{LIVE_LEASE},"request":{APPROVED}}}"#),
    );
    assert_eq!(d.lease.map(|l| l.id), Some("l-2".into()));
}

#[test]
fn halt_and_resume_replies_are_unchanged() {
    let h: Halted = same(
        "halt",
        concat!(
            r#"{"halts":[{"action":"freeze","agent":"a","at_ms":1,"by_uid":0,"#,
            r#""enforced_in_us":5,"reason":null,"revoked":["l-1"]}],"queued_us":2,"total_us":3}"#
        ),
    );
    assert_eq!(
        h.halts,
        [Halt {
            agent: "a".into(),
            action: Action::Freeze,
            at_ms: 1,
            by_uid: 0,
            reason: None,
            revoked: vec!["l-1".into()],
            enforced_in_us: 5,
        }]
    );
    same::<Resumed>("resume", r#"{"resumed":["a","b"],"total_us":4}"#);
    same::<Resumed>("resume", r#"{"resumed":[],"total_us":0}"#);
}

#[test]
fn reload_replies_are_unchanged() {
    let r: Reloaded = same(
        "policy-reload",
        concat!(
            r#"{"file":"/p.toml","leases":{"dropped":[{"id":"l-2","reason":"gone"}],"kept":["l-1"]},"#,
            r#""new":{"generation":3,"name":"p","version":"2"},"#,
            r#""old":{"generation":2,"name":"p","version":"1"},"prepare_ms":1,"retire_ms":2,"#,
            r#""retired":{"entries":["gen-2"],"links":5},"swap_us":300,"total_ms":4}"#
        ),
    );
    assert!(matches!(
        r.retired,
        RetiredGeneration::Gone { links: 5, .. }
    ));
    let r: Reloaded = same(
        "policy-reload",
        concat!(
            r#"{"file":"/p.toml","leases":{"dropped":[],"kept":[]},"#,
            r#""new":{"generation":3,"name":"p","version":"2"},"#,
            r#""old":{"generation":2,"name":"p","version":"1"},"prepare_ms":1,"retire_ms":2,"#,
            r#""retired":{"error":"busy"},"swap_us":300,"total_ms":4}"#
        ),
    );
    assert_eq!(
        r.retired,
        RetiredGeneration::Failed {
            error: "busy".into()
        }
    );
}

#[test]
fn protect_reply_is_unchanged() {
    let p: Protected = same(
        "protect-secret",
        r#"{"inode":12,"new":true,"path":"/keys/k.key"}"#,
    );
    assert!(p.new);
}

#[test]
fn a_reply_missing_a_field_names_the_command_and_the_field() {
    let e = read::<Resumed>("resume", serde_json::json!({ "total_us": 1 })).expect_err("no field");
    let text = e.to_string();
    assert!(text.contains("`resume`"), "{text}");
    assert!(text.contains("`resumed`"), "{text}");
    let e = read::<LeaseList>("lease-list", serde_json::json!({ "leases": [{"id": 1}] }))
        .expect_err("bad lease");
    assert!(e.to_string().contains("`lease-list`"), "{e}");
}
