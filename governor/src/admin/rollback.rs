//! `rollback` on the admin socket: restore one lease's snapshot, or every snapshotted lease
//! of an agent since a time (newest first), under the lease manager's lock. A restore that
//! brought back a protected resource itself (a new inode where the policy's was) reloads
//! the policy, so that the resource is protected again under its new identity.

use super::{leases::error_reply, Context, Peer};
use crate::{
    api::{
        protocol::{ErrorCode, Response, RollbackOf},
        rollback::{NotRestored, RestoreView, RolledBack},
    },
    leases::{LeaseManager, Trigger},
};

pub async fn rollback(
    ctx: &Context,
    peer: &Peer,
    of: RollbackOf,
    revoke: bool,
    force: bool,
) -> Response {
    let Some(auth) = &ctx.leases else {
        return Response::error(ErrorCode::Internal, "this daemon has no lease manager");
    };
    let (restores, refused, reprotect) = {
        let Ok(mut a) = auth.lock() else {
            return Response::error(ErrorCode::Internal, "the lease manager lock is poisoned");
        };
        let ids = match &of {
            RollbackOf::Lease(id) => vec![id.clone()],
            RollbackOf::Agent { agent, since_ms } => {
                let ids = a.leases_since(agent, *since_ms);
                if ids.is_empty() {
                    return Response::error(
                        ErrorCode::NotFound,
                        format!(
                            "agent `{agent}` has no lease with a snapshot submitted since {} \
                             (see `governor lease list --all`)",
                            crate::time::rfc3339(since_ms / 1000)
                        ),
                    );
                }
                ids
            }
        };
        let mut restores = Vec::new();
        let mut refused = Vec::new();
        for id in &ids {
            match a.rollback(id, peer.uid, revoke, force, Trigger::Rollback) {
                Ok(v) => restores.push(v),
                Err(e) if ids.len() == 1 => return error_reply(&e),
                Err(e) => refused.push(NotRestored {
                    lease: id.clone(),
                    why: e.to_string(),
                }),
            }
        }
        let reprotect = brought_back_protected(&a, &restores);
        (restores, refused, reprotect)
    };
    if reprotect {
        reprotect_after_restore(ctx, peer).await;
    }
    Response::reply(&RolledBack { restores, refused })
}

/// Whether `restores` recreated a protected resource (or a directory above one): its
/// inode is new, and the kernel knows the old one.
pub fn brought_back_protected(a: &LeaseManager, restores: &[RestoreView]) -> bool {
    restores
        .iter()
        .flat_map(|r| r.recreated.iter())
        .any(|p| a.protects_at_or_below(std::path::Path::new(p)))
}

/// Reloads the policy so that resources a restore brought back are protected under their
/// new inodes. Logged: the restore itself stands either way.
pub async fn reprotect_after_restore(ctx: &Context, peer: &Peer) {
    let Some(reloader) = &ctx.reload else {
        tracing::error!(target: "governor::rollback",
            "a restore brought back a protected resource, and this daemon cannot reload its \
             policy: restart it so that the resource is protected again");
        return;
    };
    match reloader.reload(None, peer.uid).await {
        Ok(_) => tracing::info!(target: "governor::rollback",
            "policy reloaded: the protected resources a restore brought back are protected \
             again"),
        Err(r) => tracing::error!(target: "governor::rollback", error = %r.message,
            "a restore brought back a protected resource, and reloading the policy failed: \
             run `governor policy reload`"),
    }
}
