//! Agents' requests, the "recommend" rung: an agent asks, an operator answers with a signed
//! lease (or a rejection). Filing a request changes nothing in the kernel; approving one
//! submits the operator's lease through every check of [`LeaseManager::submit`], after making
//! sure it answers exactly what was asked. A lease that still lacks approvals is kept on the
//! request for the next operator to cosign. Each filing, rejection and refused approval is a
//! lineage row; an approval's lease records its own rows, naming the request.

use serde_json::json;

use super::{
    clock,
    resolve::{self, ScopeSpec},
    store::ScopeRecord,
    LeaseError, LeaseManager,
};
use crate::{
    api::reply::{Decided, RequestState, RequestView},
    lineage::authority::{agent_actor, lifecycle, refused, uid_actor},
    requests::book::{self, LeaseRequest, ReqState, MAX_REASON},
};

/// What an agent asks for.
pub struct Ask<'a> {
    pub agent: &'a str,
    pub class: &'a str,
    pub target: &'a str,
    pub reason: &'a str,
    pub ttl_secs: Option<u64>,
    pub pid: i32,
    pub uid: u32,
}

impl LeaseManager {
    /// Files an agent's request, after checking a lease could grant it at all.
    pub fn file_request(&mut self, ask: &Ask<'_>) -> Result<LeaseRequest, LeaseError> {
        let rejected = |m: String| Err(LeaseError::Rejected(m));
        if self.halted(ask.agent).is_some() {
            return rejected(format!(
                "agent `{}` is halted; it cannot ask for leases",
                ask.agent
            ));
        }
        if ask.reason.trim().is_empty() || ask.reason.len() > MAX_REASON {
            return rejected(format!(
                "a request needs a reason of 1 to {MAX_REASON} bytes: say what you want to do \
                 and why"
            ));
        }
        let Some(agent_id) = self
            .compiled
            .agents
            .iter()
            .position(|a| a.name == ask.agent)
        else {
            return Err(LeaseError::Internal(format!(
                "agent `{}` is not compiled",
                ask.agent
            )));
        };
        let max = self
            .policy
            .agent(ask.agent)
            .map_or(3600, |a| a.max_lease_ttl.as_secs());
        let ttl_secs = ask.ttl_secs.unwrap_or(max.min(900));
        if ttl_secs == 0 || ttl_secs > max {
            return rejected(format!(
                "a lease for agent `{}` lasts at most {max} s (the policy's max_lease_ttl); \
                 ask for less than {ttl_secs} s",
                ask.agent
            ));
        }
        let spec = ScopeSpec {
            class: ask.class,
            target: ask.target,
            pin: None,
        };
        let resolved = resolve::resolve(
            &self.policy,
            &self.compiled,
            agent_id as u32,
            ask.agent,
            &spec,
        )?;
        let req = self
            .requests
            .file(LeaseRequest {
                id: String::new(),
                agent: ask.agent.to_owned(),
                class: ask.class.to_owned(),
                target: ask.target.to_owned(),
                reason: ask.reason.to_owned(),
                ttl_secs,
                created_ms: clock::wall_ms(),
                pid: ask.pid,
                uid: ask.uid,
                resource: resolved.resource,
                state: ReqState::Pending,
            })
            .map_err(LeaseError::Rejected)?;
        self.recorder.record(lifecycle(
            "requested",
            None,
            Some(&req.id),
            Some(agent_actor(&req.agent)),
            json!({
                "class": req.class,
                "target": req.target,
                "reason": req.reason,
                "ttl_secs": req.ttl_secs,
                "resource": req.resource,
                "pid": req.pid,
                "uid": req.uid,
            }),
        ));
        tracing::warn!(target: "governor::request", request = %req.id, agent = %req.agent,
            class = %req.class, target_path = %req.target, reason = %req.reason,
            ttl_secs = req.ttl_secs, pid = req.pid,
            approve = %format!("governor lease approve {} --key KEY", req.id),
            "lease requested by agent `{}`: {}:{} ({}); an operator approves with `governor \
             lease approve {} --key KEY` or rejects with `governor lease reject {} --reason ...`",
            req.agent, req.class, req.target, req.reason, req.id, req.id);
        Ok(req)
    }

    /// Requests as clients see them, with the command that approves each open one.
    /// Agents' requests as operators see them: each open one with the snapshot its approval
    /// would cost, estimated now.
    pub fn requests(&self, all: bool) -> Vec<RequestView> {
        self.requests
            .list(all)
            .into_iter()
            .map(|r| self.with_cost(request_view(r)))
            .collect()
    }

    /// `view` with the snapshot approving it would cost, if it is still open.
    fn with_cost(&self, mut view: RequestView) -> RequestView {
        if matches!(
            view.state,
            RequestState::Pending | RequestState::NeedsApprovals
        ) {
            let object = std::fs::canonicalize(&view.target)
                .map_or_else(|_| view.target.clone(), |p| p.display().to_string());
            let scope = ScopeRecord {
                class: view.class.clone(),
                target: view.target.clone(),
                object,
                resource: view.resource.clone(),
            };
            view.snapshot_cost = Some(self.snapshot_cost(&view.agent, &[scope]));
        }
        view
    }

    /// How many requests wait for an operator.
    pub fn pending_requests(&self) -> usize {
        self.requests.list(false).len()
    }

    pub fn request(&self, id: &str) -> Result<RequestView, LeaseError> {
        self.requests
            .get(id)
            .map(|r| self.with_cost(request_view(r)))
            .ok_or_else(|| LeaseError::NotFound(format!("no request {id}")))
    }

    /// The request as its agent may see it: only its own.
    pub fn request_for(&self, agent: &str, id: &str) -> Result<RequestView, LeaseError> {
        match self.requests.get(id) {
            Some(r) if r.agent == agent => Ok(request_view(r)),
            _ => Err(LeaseError::NotFound(format!(
                "agent `{agent}` has no request {id}"
            ))),
        }
    }

    /// An operator's signed lease answering request `id`.
    pub fn approve(&mut self, id: &str, text: &str, uid: u32) -> Result<Decided, LeaseError> {
        let Some(req) = self.requests.get(id).cloned() else {
            return Err(LeaseError::NotFound(format!("no request {id}")));
        };
        if !req.state.open() {
            return Err(LeaseError::Rejected(format!(
                "request {id} is already {}",
                req.state.name()
            )));
        }
        let origin = format!("the lease approving request {id}");
        let checked = match self
            .check(text, &origin, false, clock::wall_secs())
            .and_then(|checked| {
                let body = &checked.lease.body;
                let answers = body.request.as_deref() == Some(id)
                    && body.agent == req.agent
                    && body.scopes.len() == 1
                    && body.scopes[0].class == req.class
                    && body.scopes[0].target == req.target;
                if answers {
                    Ok(checked)
                } else {
                    Err(LeaseError::Rejected(format!(
                        "{origin}: it must answer exactly the request (request = \"{id}\", agent \
                     `{}`, one scope `{}:{}`); `governor lease approve {id}` builds such a \
                     lease",
                        req.agent, req.class, req.target
                    )))
                }
            }) {
            Ok(c) => c,
            Err(e) => {
                self.recorder
                    .record(refused(text, &origin, uid, &e.to_string(), Some(id)));
                return Err(e);
            }
        };
        if checked.have < checked.need {
            let r = self.requests.decide(
                id,
                ReqState::NeedsApprovals {
                    have: checked.have,
                    need: checked.need,
                    lease: text.to_owned(),
                },
            )?;
            tracing::info!(target: "governor::request", request = id, uid,
                have = checked.have, need = checked.need,
                "request approved by {} of the {} operators it needs; another runs `governor \
                 lease approve {id} --key KEY`", checked.have, checked.need);
            return Ok(Decided {
                request: request_view(&r),
                lease: None,
            });
        }
        let record = self.submit(text, &origin, uid)?;
        let r = self.requests.decide(
            id,
            ReqState::Approved {
                lease: record.id.clone(),
            },
        )?;
        Ok(Decided {
            request: request_view(&r),
            lease: Some(self.show(&record.id)?),
        })
    }

    pub fn reject(&mut self, id: &str, uid: u32, reason: &str) -> Result<Decided, LeaseError> {
        match self.requests.get(id) {
            None => return Err(LeaseError::NotFound(format!("no request {id}"))),
            Some(r) if !r.state.open() => {
                return Err(LeaseError::Rejected(format!(
                    "request {id} is already {}",
                    r.state.name()
                )))
            }
            Some(_) => {}
        }
        let r = self.requests.decide(
            id,
            ReqState::Rejected {
                by_uid: uid,
                reason: reason.to_owned(),
            },
        )?;
        self.recorder.record(lifecycle(
            "rejected",
            None,
            Some(id),
            Some(uid_actor(uid)),
            json!({ "reason": reason }),
        ));
        tracing::info!(target: "governor::request", request = id, uid, reason,
            "request rejected");
        Ok(Decided {
            request: request_view(&r),
            lease: None,
        })
    }
}

fn request_view(r: &LeaseRequest) -> RequestView {
    let mut v = book::view(r);
    if r.state.open() {
        v.approve_command = Some(format!("governor lease approve {} --key KEY", r.id));
    }
    v
}
