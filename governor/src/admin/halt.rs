//! `halt` and `resume` on the admin socket: the kill switch. A halt revokes every live lease
//! of the agents (the kernel refuses leased operations again at once), then freezes their
//! cgroups (or kills every task in them), waits until the kernel reports it done, records
//! the halt, and reports how long it took from the command's arrival to enforcement. Each
//! halt and resume is a lineage row with that time.

use std::{path::PathBuf, time::Instant};

use serde_json::json;

use super::{
    leases::error_reply,
    protocol::{Agents, ErrorCode, Response},
    Context, Peer,
};
use crate::{
    halt::{self, Action, Halt},
    leases::{clock, LeaseError},
    lineage::{authority::halt_row, boot::BootClock},
};

/// The agents `which` selects, with their cgroups.
fn select(ctx: &Context, which: &Agents) -> Result<Vec<(String, PathBuf)>, Response> {
    let agent_cgroups = super::current(&ctx.agent_cgroups);
    match which {
        Agents::All => Ok(agent_cgroups),
        Agents::One(name) => agent_cgroups
            .iter()
            .find(|(n, _)| n == name)
            .map(|a| vec![a.clone()])
            .ok_or_else(|| {
                Response::error(
                    ErrorCode::Rejected,
                    format!(
                        "no agent `{name}` in the policy (agents: {})",
                        agent_cgroups
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            }),
    }
}

pub async fn halt(
    ctx: &Context,
    peer: &Peer,
    which: &Agents,
    kill: bool,
    reason: Option<String>,
) -> Response {
    let received = Instant::now();
    let at_ms = clock::wall_ms();
    let at_ns = BootClock::now_ns();
    let targets = match select(ctx, which) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let Some(auth) = &ctx.authority else {
        return Response::error(ErrorCode::Internal, "this daemon has no lease authority");
    };
    let action = if kill { Action::Kill } else { Action::Freeze };
    let why = reason.clone().unwrap_or_else(|| "halt".to_owned());
    let mut revoked = Vec::new();
    {
        let Ok(mut a) = auth.lock() else {
            return Response::error(ErrorCode::Internal, "the lease authority lock is poisoned");
        };
        for (name, path) in &targets {
            revoked.push(a.revoke_agent(name, peer.uid, &format!("halt: {why}")));
            if let Err(e) = halt::start(path, action) {
                return Response::error(ErrorCode::Internal, format!("halting `{name}`: {e}"));
            }
        }
    }
    let mut halts = Vec::new();
    for ((name, path), revoked) in targets.iter().zip(revoked) {
        let what = if kill { "emptied" } else { "frozen" };
        let took = match halt::wait_until(path, what, received, |p| halt::done(p, action)).await {
            Ok(d) => d,
            Err(e) => {
                return Response::error(ErrorCode::Internal, format!("halting `{name}`: {e}"))
            }
        };
        halts.push(Halt {
            agent: name.clone(),
            action,
            at_ms,
            by_uid: peer.uid,
            reason: reason.clone(),
            revoked,
            enforced_in_us: took.as_micros() as u64,
        });
    }
    let Ok(mut a) = auth.lock() else {
        return Response::error(ErrorCode::Internal, "the lease authority lock is poisoned");
    };
    for h in &halts {
        tracing::warn!(target: "governor::halt", agent = %h.agent, action = ?h.action,
            uid = h.by_uid, reason = h.reason.as_deref().unwrap_or(""),
            leases_revoked = h.revoked.len(), enforced_in_us = h.enforced_in_us,
            "agent halted: leases revoked and cgroup {} in {} µs", if kill { "killed" } else { "frozen" },
            h.enforced_in_us);
        if let Err(e) = a.record_halt(h.clone()) {
            return error_reply(&e);
        }
    }
    a.recorder().record(halt_row(
        at_ns,
        if kill { "kill" } else { "freeze" },
        halts.iter().map(|h| h.agent.clone()).collect(),
        peer.uid,
        halts.iter().map(|h| h.revoked.len() as u32).sum(),
        halts.iter().map(|h| h.enforced_in_us * 1000).max(),
    ));
    Response::ok(json!({
        "halts": halts,
        "total_us": received.elapsed().as_micros() as u64,
    }))
}

pub async fn resume(ctx: &Context, peer: &Peer, which: &Agents) -> Response {
    let received = Instant::now();
    let at_ns = BootClock::now_ns();
    let targets = match select(ctx, which) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let Some(auth) = &ctx.authority else {
        return Response::error(ErrorCode::Internal, "this daemon has no lease authority");
    };
    let mut resumed = Vec::new();
    let mut thawed_in = std::time::Duration::ZERO;
    for (name, path) in &targets {
        let halted = auth
            .lock()
            .map_err(|_| LeaseError::Internal("the lease authority lock is poisoned".into()))
            .map(|a| a.halted(name).cloned());
        let halted = match halted {
            Ok(h) => h,
            Err(e) => return error_reply(&e),
        };
        if halted.is_none() && matches!(which, Agents::One(_)) {
            return Response::error(ErrorCode::Rejected, format!("agent `{name}` is not halted"));
        }
        if halted.is_none() {
            continue;
        }
        if let Err(e) = halt::thaw(path) {
            return Response::error(ErrorCode::Internal, format!("resuming `{name}`: {e}"));
        }
        match halt::wait_until(path, "thawed", received, halt::thawed).await {
            Ok(took) => thawed_in = thawed_in.max(took),
            Err(e) => {
                return Response::error(ErrorCode::Internal, format!("resuming `{name}`: {e}"))
            }
        }
        match auth.lock() {
            Ok(mut a) => {
                if let Err(e) = a.clear_halt(name) {
                    return error_reply(&e);
                }
            }
            Err(_) => {
                return Response::error(ErrorCode::Internal, "the lease authority lock is poisoned")
            }
        }
        tracing::warn!(target: "governor::halt", agent = %name, uid = peer.uid,
            "agent resumed: cgroup thawed; it may take leases again");
        resumed.push(name.clone());
    }
    if !resumed.is_empty() {
        if let Ok(a) = auth.lock() {
            a.recorder().record(halt_row(
                at_ns,
                "resume",
                resumed.clone(),
                peer.uid,
                0,
                Some(thawed_in.as_nanos() as u64),
            ));
        }
    }
    Response::ok(json!({
        "resumed": resumed,
        "total_us": received.elapsed().as_micros() as u64,
    }))
}
