//! The request socket (`/run/governor-requests/request.sock`): where a process inside an
//! agent cgroup asks for a lease, and asks how its request stands. The agent is whatever
//! cgroup the connecting process runs in (`SO_PEERCRED`, `/proc/PID/cgroup`); processes
//! outside every agent are refused (operators issue leases directly). Nothing sent here can
//! grant anything: a request waits in the request book ([`crate::requests`]) for an
//! operator's signed lease. The protocol is [`crate::api::agent`].

use std::sync::{Arc, Mutex};

use super::{error_reply, peer::Access, Peer, Reply, Service, Shared};
use crate::{
    api::{
        agent::{parse, AgentRequest},
        protocol::{ErrorCode, Response},
    },
    leases::{Ask, LeaseManager},
    requests::book,
};

/// The request socket's service.
pub struct Requests {
    /// Replaced on a policy reload.
    pub access: Shared<Access>,
    pub leases: Arc<Mutex<LeaseManager>>,
}

impl Service for Requests {
    fn name(&self) -> &'static str {
        "request socket"
    }

    fn admit(&self, uid: u32, pid: Option<i32>) -> Result<Peer, String> {
        match super::current(&self.access).agent_of(pid) {
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
                    .map(|r| Response::reply(&book::view(&r))),
                AgentRequest::RequestStatus { id } => {
                    auth.request_for(agent, &id).map(|v| Response::reply(&v))
                }
            };
            result.unwrap_or_else(|e| error_reply(&e))
        })
    }
}
