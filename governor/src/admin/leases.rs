//! The lease and request commands of the admin socket: submit, list, show and revoke leases;
//! list, show, approve and reject agents' requests. Each runs under the lease manager's lock and
//! answers with the record it produced.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::{
    protocol::{ErrorCode, Request, Response},
    Peer,
};
use crate::leases::{LeaseError, LeaseManager};

/// Runs one lease or request command.
pub fn handle(auth: &Arc<Mutex<LeaseManager>>, peer: &Peer, req: Request) -> Response {
    let Ok(mut auth) = auth.lock() else {
        return Response::error(ErrorCode::Internal, "the lease manager lock is poisoned");
    };
    let result: Result<Value, LeaseError> = match req {
        Request::LeaseSubmit { lease, origin } => auth
            .submit(&lease, &origin, peer.uid)
            .and_then(|r| auth.show(&r.id)),
        Request::LeaseList { all } => Ok(json!({ "leases": auth.list(all) })),
        Request::LeaseShow { id } => auth.show(&id),
        Request::LeaseRevoke { id, reason } => auth
            .revoke(&id, peer.uid, reason)
            .and_then(|r| auth.show(&r.id)),
        Request::RequestList { all } => Ok(json!({
            "requests": auth.requests(all),
            "host": auth.host(),
        })),
        Request::RequestShow { id } => auth.request(&id),
        Request::RequestApprove { id, lease } => auth.approve(&id, &lease, peer.uid),
        Request::RequestReject { id, reason } => auth.reject(&id, peer.uid, &reason),
        Request::Status
        | Request::Halt { .. }
        | Request::Resume { .. }
        | Request::PolicyReload { .. }
        | Request::ProtectSecret { .. } => {
            Err(LeaseError::Internal("not a lease command".to_owned()))
        }
    };
    match result {
        Ok(v) => Response::ok(v),
        Err(e) => error_reply(&e),
    }
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
