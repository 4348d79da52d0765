//! Leases as clients see them ([`LeaseView`]): each record with its state's fields at the top
//! level, the seconds it has left on the boot clock and when it was enforced, and (`show`)
//! its signed file.

use super::{
    clock::Now,
    store::{Record, State},
    window::BootWindow,
    LeaseError, LeaseManager,
};
use crate::api::reply::{ChangeView, LeaseState, LeaseView, ScopeView, SignerView};

impl LeaseManager {
    /// The leases, newest first: the live ones, or (`all`) every one on record.
    pub fn list(&self, all: bool) -> Vec<LeaseView> {
        let now = Now::read();
        let mut out: Vec<&Record> = self
            .records
            .values()
            .filter(|r| all || r.state.is_live())
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.history.first().map_or(0, |c| c.at_ms)));
        out.into_iter()
            .map(|r| view(r, self.window(r), now))
            .collect()
    }

    /// One lease's record and its signed file.
    pub fn show(&self, id: &str) -> Result<LeaseView, LeaseError> {
        let r = self
            .records
            .get(id)
            .ok_or_else(|| LeaseError::NotFound(format!("no lease {id}")))?;
        let mut v = view(r, self.window(r), Now::read());
        v.file = Some(self.store.lease_text(id).unwrap_or_default());
        Ok(v)
    }
}

/// A record as clients see it: the record plus the seconds left (on the boot clock, by its
/// window on this boot if it has one). A revoked or dropped lease's `reason` is why.
fn view(r: &Record, window: Option<&BootWindow>, now: Now) -> LeaseView {
    let (state, by_uid, reason) = match &r.state {
        State::Scheduled => (LeaseState::Scheduled, None, Some(r.reason.clone())),
        State::Enforced => (LeaseState::Enforced, None, Some(r.reason.clone())),
        State::Expired => (LeaseState::Expired, None, Some(r.reason.clone())),
        State::Revoked { by_uid, reason } => (LeaseState::Revoked, Some(*by_uid), reason.clone()),
        State::Dropped { reason } => (LeaseState::Dropped, None, Some(reason.clone())),
    };
    LeaseView {
        id: r.id.clone(),
        kernel_id: r.kernel_id,
        agent: r.agent.clone(),
        scopes: r
            .scopes
            .iter()
            .map(|s| ScopeView {
                class: s.class.clone(),
                target: s.target.clone(),
                object: s.object.clone(),
                resource: s.resource.clone(),
            })
            .collect(),
        not_before: r.not_before,
        not_after: r.not_after,
        boot: r.boot.as_ref().and_then(|w| serde_json::to_value(w).ok()),
        reason,
        ticket: r.ticket.clone(),
        request: r.request.clone(),
        signers: r
            .signers
            .iter()
            .map(|s| SignerView {
                key_id: s.key_id.clone(),
                operator: s.operator.clone(),
                role: s.role.clone(),
            })
            .collect(),
        submitted_by_uid: r.submitted_by_uid,
        policy: r.policy.clone(),
        state,
        by_uid,
        snapshot: r.snapshot.clone(),
        history: r
            .history
            .iter()
            .map(|c| ChangeView {
                at_ms: c.at_ms,
                what: c.what.clone(),
                detail: c.detail.clone(),
            })
            .collect(),
        left_secs: match window {
            _ if !r.state.is_live() => 0,
            Some(w) => w.left_secs(now.boot_ns),
            None => r.not_after.saturating_sub(now.wall_ms / 1000),
        },
        enforced_at_ms: r.enforced_at_ms(),
        file: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::store::{Change, ScopeRecord, SignerRecord};

    fn record(state: State) -> Record {
        Record {
            id: "l-1".into(),
            kernel_id: 7,
            agent: "a".into(),
            scopes: vec![ScopeRecord {
                class: "delete".into(),
                target: "/srv/x".into(),
                object: "/srv/x".into(),
                resource: "data".into(),
            }],
            not_before: 100,
            not_after: 200,
            boot: None,
            reason: "cleanup".into(),
            ticket: None,
            request: Some("r-1".into()),
            signers: vec![SignerRecord {
                key_id: "k".into(),
                operator: "op".into(),
                role: "issuer".into(),
            }],
            submitted_by_uid: 0,
            policy: "p 1".into(),
            state,
            history: vec![Change {
                at_ms: 5,
                what: "enforced".into(),
                detail: String::new(),
            }],
            snapshot: None,
        }
    }

    /// The view is the record serialized with its `status` lifted to the top level (what
    /// the daemon sent before the reply was typed), plus `left_secs` and `enforced_at_ms`.
    #[test]
    fn the_view_is_the_record_with_its_status_lifted() {
        let now = Now {
            wall_ms: 150_000,
            boot_ns: 0,
        };
        for state in [
            State::Enforced,
            State::Revoked {
                by_uid: 3,
                reason: None,
            },
            State::Revoked {
                by_uid: 3,
                reason: Some("done".into()),
            },
            State::Dropped {
                reason: "key gone".into(),
            },
        ] {
            let r = record(state);
            let mut old = serde_json::to_value(&r).expect("record");
            let obj = old.as_object_mut().expect("object");
            if let Some(serde_json::Value::Object(status)) = obj.remove("status") {
                obj.extend(status);
            }
            old["left_secs"] = serde_json::Value::from(if r.state.is_live() { 50 } else { 0 });
            old["enforced_at_ms"] = serde_json::Value::from(5);
            let new = serde_json::to_value(view(&r, None, now)).expect("view");
            assert_eq!(new.to_string(), old.to_string());
        }
    }
}
