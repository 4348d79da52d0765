//! The lease and request commands of the admin socket: submit, list, show and revoke leases;
//! list, show, approve and reject agents' requests. Each runs under the lease manager's lock and
//! answers with the record it produced.

use std::sync::{Arc, Mutex};

use super::Peer;
use crate::api::protocol::{ErrorCode, Request, Response};
use crate::{
    api::reply::{LeaseList, RequestList},
    leases::{LeaseError, LeaseManager},
};

/// Runs one lease or request command.
pub fn handle(auth: &Arc<Mutex<LeaseManager>>, peer: &Peer, req: Request) -> Response {
    let Ok(mut auth) = auth.lock() else {
        return Response::error(ErrorCode::Internal, "the lease manager lock is poisoned");
    };
    let result: Result<Response, LeaseError> = match req {
        Request::LeaseSubmit { lease, origin } => auth
            .submit(&lease, &origin, peer.uid)
            .and_then(|r| auth.show(&r.id))
            .map(|v| Response::reply(&v)),
        Request::LeaseList { all } => Ok(Response::reply(&LeaseList {
            leases: auth.list(all),
        })),
        Request::LeaseShow { id } => auth.show(&id).map(|v| Response::reply(&v)),
        Request::LeaseRevoke { id, reason } => auth
            .revoke(&id, peer.uid, reason)
            .and_then(|r| auth.show(&r.id))
            .map(|v| Response::reply(&v)),
        Request::RequestList { all } => Ok(Response::reply(&RequestList {
            requests: auth.requests(all),
            host: auth.host().to_owned(),
        })),
        Request::RequestShow { id } => auth.request(&id).map(|v| Response::reply(&v)),
        Request::RequestApprove { id, lease } => auth
            .approve(&id, &lease, peer.uid)
            .map(|v| Response::reply(&v)),
        Request::RequestReject { id, reason } => auth
            .reject(&id, peer.uid, &reason)
            .map(|v| Response::reply(&v)),
        Request::SnapshotCost { agent, scopes } => {
            auth.cost_of(&agent, &scopes).map(|c| Response::reply(&c))
        }
        Request::Status
        | Request::Halt { .. }
        | Request::Resume { .. }
        | Request::Rollback { .. }
        | Request::PolicyReload { .. }
        | Request::ProtectSecret { .. } => {
            Err(LeaseError::Internal("not a lease command".to_owned()))
        }
    };
    result.unwrap_or_else(|e| error_reply(&e))
}

/// The reply for a lease error.
pub fn error_reply(e: &LeaseError) -> Response {
    let code = match e {
        LeaseError::Rejected(_) => ErrorCode::Rejected,
        LeaseError::NotFound(_) => ErrorCode::NotFound,
        LeaseError::Internal(_) => ErrorCode::Internal,
    };
    Response::error(code, e.to_string())
}
