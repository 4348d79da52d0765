//! Agents' lease requests, kept in `<state>/requests/<id>.json` until an operator decides.
//! A request is only a wish: nothing in it is ever installed. An operator answers it with a
//! signed lease (`governor lease approve`), which goes through every check a submitted lease
//! does, or rejects it.

use std::{
    collections::BTreeMap,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    api::reply::{RequestState, RequestView},
    host::write,
};

pub use crate::host::write::StoreError;

/// How many undecided requests one agent may have at a time.
pub const MAX_PENDING_PER_AGENT: usize = 16;
/// Longest reason accepted, in bytes.
pub const MAX_REASON: usize = 1024;

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ReqState {
    Pending,
    /// An operator signed a lease for it; it needs more approvals (the partial lease is
    /// kept for the next approver to cosign).
    NeedsApprovals {
        have: u32,
        need: u32,
        lease: String,
    },
    /// Answered by lease `lease`.
    Approved {
        lease: String,
    },
    Rejected {
        by_uid: u32,
        reason: String,
    },
}

impl ReqState {
    pub fn name(&self) -> &'static str {
        match self {
            ReqState::Pending => "pending",
            ReqState::NeedsApprovals { .. } => "needs-approvals",
            ReqState::Approved { .. } => "approved",
            ReqState::Rejected { .. } => "rejected",
        }
    }

    pub fn open(&self) -> bool {
        matches!(self, ReqState::Pending | ReqState::NeedsApprovals { .. })
    }
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub id: String,
    /// The agent, from the requesting process's cgroup (never from the request's text).
    pub agent: String,
    pub class: String,
    pub target: String,
    pub reason: String,
    /// The lifetime asked for, in seconds.
    pub ttl_secs: u64,
    /// Unix milliseconds.
    pub created_ms: u64,
    /// The requesting process (from `SO_PEERCRED`).
    pub pid: i32,
    pub uid: u32,
    /// The policy resource a lease would lift.
    pub resource: String,
    /// Stored nested; clients see its fields at the top level ([`view`]).
    #[serde(rename = "status")]
    pub state: ReqState,
}

/// A request as clients see it: the status's fields (`state`, and `lease`, `reason`, `have`,
/// `need` where they apply) at the top level; a rejected request's `reason` is the
/// operator's.
pub fn view(r: &LeaseRequest) -> RequestView {
    let mut v = RequestView {
        id: r.id.clone(),
        agent: r.agent.clone(),
        class: r.class.clone(),
        target: r.target.clone(),
        reason: r.reason.clone(),
        ttl_secs: r.ttl_secs,
        created_ms: r.created_ms,
        pid: r.pid,
        uid: r.uid,
        resource: r.resource.clone(),
        state: RequestState::Pending,
        have: None,
        need: None,
        lease: None,
        by_uid: None,
        approve_command: None,
        snapshot_cost: None,
    };
    match &r.state {
        ReqState::Pending => {}
        ReqState::NeedsApprovals { have, need, lease } => {
            v.state = RequestState::NeedsApprovals;
            (v.have, v.need, v.lease) = (Some(*have), Some(*need), Some(lease.clone()));
        }
        ReqState::Approved { lease } => {
            v.state = RequestState::Approved;
            v.lease = Some(lease.clone());
        }
        ReqState::Rejected { by_uid, reason } => {
            v.state = RequestState::Rejected;
            v.by_uid = Some(*by_uid);
            v.reason = reason.clone();
        }
    }
    v
}

/// The request book.
pub struct Book {
    dir: PathBuf,
    items: BTreeMap<String, LeaseRequest>,
    next: u64,
}

impl Book {
    /// Opens (creating, mode 0700) `<state>/requests` and reads what is there; unreadable
    /// files are reported and left alone.
    pub fn open(state_dir: &Path) -> Result<(Book, Vec<StoreError>), StoreError> {
        let dir = state_dir.join("requests");
        let io = |source| StoreError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io)?;
        let mut items = BTreeMap::new();
        let mut bad = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match crate::host::files::read(&path, crate::host::files::STATE)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<LeaseRequest>(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => {
                    items.insert(r.id.clone(), r);
                }
                Err(why) => bad.push(StoreError::Corrupt { path, why }),
            }
        }
        let next = items
            .keys()
            .filter_map(|k| k.strip_prefix("r-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        Ok((Book { dir, items, next }, bad))
    }

    /// Files a new request (its id is assigned here).
    pub fn file(&mut self, mut req: LeaseRequest) -> Result<LeaseRequest, String> {
        let open = self
            .items
            .values()
            .filter(|r| r.agent == req.agent && r.state.open())
            .count();
        if open >= MAX_PENDING_PER_AGENT {
            return Err(format!(
                "agent `{}` already has {open} undecided requests (at most \
                 {MAX_PENDING_PER_AGENT}); wait for an operator to decide them",
                req.agent
            ));
        }
        req.id = format!("r-{}", self.next);
        self.next += 1;
        req.state = ReqState::Pending;
        self.save(&req).map_err(|e| e.to_string())?;
        self.items.insert(req.id.clone(), req.clone());
        Ok(req)
    }

    pub fn get(&self, id: &str) -> Option<&LeaseRequest> {
        self.items.get(id)
    }

    /// Requests, oldest first: the undecided ones, or (`all`) every one.
    pub fn list(&self, all: bool) -> Vec<&LeaseRequest> {
        let mut v: Vec<&LeaseRequest> = self
            .items
            .values()
            .filter(|r| all || r.state.open())
            .collect();
        v.sort_by_key(|r| r.created_ms);
        v
    }

    /// Moves request `id` to `state` and saves it.
    pub fn decide(&mut self, id: &str, state: ReqState) -> Result<LeaseRequest, StoreError> {
        let Some(r) = self.items.get_mut(id) else {
            return Err(StoreError::Corrupt {
                path: self.dir.join(format!("{id}.json")),
                why: "no such request".into(),
            });
        };
        r.state = state;
        let r = r.clone();
        self.save(&r)?;
        Ok(r)
    }

    fn save(&self, r: &LeaseRequest) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(r).map_err(|e| StoreError::Corrupt {
            path: self.dir.join(format!("{}.json", r.id)),
            why: e.to_string(),
        })?;
        let path = self.dir.join(format!("{}.json", r.id));
        write::replace(&path, &bytes, 0o600).map_err(|source| StoreError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(agent: &str) -> LeaseRequest {
        LeaseRequest {
            id: String::new(),
            agent: agent.into(),
            class: "delete".into(),
            target: "/x".into(),
            reason: "why".into(),
            ttl_secs: 60,
            created_ms: 1,
            pid: 1,
            uid: 0,
            resource: "/x".into(),
            state: ReqState::Pending,
        }
    }

    #[test]
    fn requests_get_ids_persist_and_are_capped_per_agent() {
        let dir = std::env::temp_dir().join(format!("governor-book-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut book, bad) = Book::open(&dir).expect("open");
        assert!(bad.is_empty());
        let a = book.file(req("a")).expect("file");
        assert_eq!(a.id, "r-1");
        for _ in 1..MAX_PENDING_PER_AGENT {
            book.file(req("a")).expect("file");
        }
        let err = book.file(req("a")).unwrap_err();
        assert!(err.contains("undecided requests"), "{err}");
        // Another agent is not held up.
        book.file(req("b")).expect("another agent");
        book.decide(
            "r-1",
            ReqState::Rejected {
                by_uid: 0,
                reason: "no".into(),
            },
        )
        .expect("decide");
        book.file(req("a")).expect("room again after a decision");
        // Reopened: everything is there, and ids continue.
        let (mut again, _) = Book::open(&dir).expect("reopen");
        assert_eq!(again.list(true).len(), MAX_PENDING_PER_AGENT + 2);
        assert_eq!(again.get("r-1").map(|r| r.state.name()), Some("rejected"));
        let next = again.file(req("b")).expect("file");
        assert_eq!(next.id, format!("r-{}", MAX_PENDING_PER_AGENT + 3));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The view is the request serialized with its `status` lifted to the top level (what
    /// the daemon sent before the reply was typed).
    #[test]
    fn the_view_is_the_request_with_its_status_lifted() {
        for state in [
            ReqState::Pending,
            ReqState::NeedsApprovals {
                have: 1,
                need: 2,
                lease: "[lease]".into(),
            },
            ReqState::Approved {
                lease: "l-1".into(),
            },
            ReqState::Rejected {
                by_uid: 0,
                reason: "no".into(),
            },
        ] {
            let r = LeaseRequest {
                id: "r-1".into(),
                state,
                ..req("a")
            };
            let mut old = serde_json::json!(r);
            let obj = old.as_object_mut().expect("object");
            if let Some(serde_json::Value::Object(status)) = obj.remove("status") {
                obj.extend(status);
            }
            let new = serde_json::to_value(view(&r)).expect("view");
            assert_eq!(new.to_string(), old.to_string());
        }
    }
}
