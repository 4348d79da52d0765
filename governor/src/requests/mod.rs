//! The request socket (`/run/governor-requests/request.sock`): where a process inside an
//! agent cgroup asks for a lease, and asks how its request stands. The agent is whatever
//! cgroup the connecting process runs in (`SO_PEERCRED`, `/proc/PID/cgroup`); processes
//! outside every agent are refused (operators issue leases directly). Nothing sent here can
//! grant anything: a request waits in the [`book`] for an operator's signed lease.
//!
//! Protocol: the admin socket's framing and envelope, with two commands:
//! `{"version":1,"command":"request","args":{"class":"delete","target":"/srv/db/x",
//! "reason":"...","ttl_secs":600}}` and `{"version":1,"command":"request-status",
//! "args":{"id":"r-3"}}`.

pub mod book;

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    admin::{
        error_reply,
        peer::Access,
        protocol::{self, ErrorCode, Response, VERSION},
        Peer, Reply, Service,
    },
    leases::{Ask, LeaseManager},
};

/// What an agent may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "command",
    content = "args",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
pub enum AgentRequest {
    Request {
        class: String,
        target: String,
        reason: String,
        ttl_secs: Option<u64>,
    },
    RequestStatus {
        id: String,
    },
}

impl AgentRequest {
    pub fn to_line(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Value::Object(obj) = &mut v {
            obj.insert("version".to_owned(), Value::from(VERSION));
        }
        format!("{v}\n")
    }
}

/// Parses one line from an agent.
pub fn parse(line: &[u8]) -> Result<AgentRequest, Response> {
    let example = format!(
        "{{\"version\":{VERSION},\"command\":\"request\",\"args\":{{\"class\":\"delete\",\
         \"target\":\"/path\",\"reason\":\"why\"}}}} (or use `governor request`)"
    );
    let obj = protocol::envelope(line, &example)?;
    AgentRequest::deserialize(Value::Object(obj))
        .map_err(|e| protocol::malformed(&e.to_string(), &example))
}

/// The request socket's service.
pub struct Requests {
    /// Replaced on a policy reload.
    pub access: crate::admin::Shared<Access>,
    pub leases: Arc<Mutex<LeaseManager>>,
}

impl Service for Requests {
    fn name(&self) -> &'static str {
        "request socket"
    }

    fn admit(&self, uid: u32, pid: Option<i32>) -> Result<Peer, String> {
        match crate::admin::current(&self.access).agent_of(pid) {
            Ok(Some(agent)) => Ok(Peer {
                uid,
                pid,
                agent: Some(agent),
            }),
            Ok(None) => Err(
                "only processes in agent cgroups file lease requests here; operators issue \
                 leases with `governor lease issue`"
                    .to_owned(),
            ),
            Err(e) => Err(e.to_string()),
        }
    }

    fn handle<'a>(&'a self, peer: &'a Peer, line: &'a [u8]) -> Reply<'a> {
        Box::pin(async move {
            let req = match parse(line) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            let Some(agent) = peer.agent.as_deref() else {
                return Response::error(ErrorCode::Forbidden, "not an agent");
            };
            let Ok(mut auth) = self.leases.lock() else {
                return Response::error(ErrorCode::Internal, "the lease manager lock is poisoned");
            };
            let result = match req {
                AgentRequest::Request {
                    class,
                    target,
                    reason,
                    ttl_secs,
                } => auth
                    .file_request(&Ask {
                        agent,
                        class: &class,
                        target: &target,
                        reason: &reason,
                        ttl_secs,
                        pid: peer.pid.unwrap_or(0),
                        uid: peer.uid,
                    })
                    .map(|r| book::flat(&r)),
                AgentRequest::RequestStatus { id } => auth.request_for(agent, &id),
            };
            match result {
                Ok(v) => Response::ok(v),
                Err(e) => error_reply(&e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_requests_round_trip_and_bad_ones_are_explained() {
        let req = AgentRequest::Request {
            class: "delete".into(),
            target: "/x".into(),
            reason: "cleanup".into(),
            ttl_secs: Some(60),
        };
        assert_eq!(parse(req.to_line().trim_end().as_bytes()), Ok(req));
        let bad = parse(br#"{"version":1,"command":"grant","args":{}}"#).unwrap_err();
        let msg = bad.error.expect("error").message;
        assert!(msg.contains("grant"), "{msg}");
        let bad = parse(br#"{"command":"request-status","args":{"id":"r-1"}}"#).unwrap_err();
        assert!(bad.error.expect("error").message.contains("version"));
    }
}
