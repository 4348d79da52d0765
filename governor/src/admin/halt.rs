//! `halt` and `resume` on the admin socket: the kill switch. A halt first freezes the agents'
//! cgroups (or kills every task in them), before anything that could wait on a lock or a
//! disk, then revokes every live lease of the agents (the kernel refuses leased operations
//! again at once), waits until the kernel reports the cgroups done, records the halt, and
//! reports how long it took from when the client sent the command (the request carries that
//! instant on the boot clock) to enforcement, and how much of it passed before the daemon
//! read the request. Each halt and resume is a lineage row with that time.

use std::{path::PathBuf, time::Instant};

use super::{leases::error_reply, Context, Peer};
use crate::api::{
    protocol::{Agents, ErrorCode, Response},
    reply::{Halted, Resumed},
};
use crate::{
    api::rollback::NotRestored,
    host::freeze::{self, Action, Halt},
    leases::{clock, LeaseError, Trigger},
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

/// When the client sent a request stamped `sent_boot_ns`, given that the daemon read it at
/// boot time `received_ns`: the stamp, unless it is missing or cannot be right (ahead of
/// the daemon's reading, or an hour older), then the reading.
pub fn sent_at(sent_boot_ns: Option<u64>, received_ns: u64) -> u64 {
    const HOUR_NS: u64 = 3_600_000_000_000;
    sent_boot_ns
        .filter(|s| *s <= received_ns && received_ns - s < HOUR_NS)
        .unwrap_or(received_ns)
}

/// How a halt is carried out.
pub struct How {
    /// Kill every task instead of freezing.
    pub kill: bool,
    pub reason: Option<String>,
    /// When the client sent it (boot clock).
    pub sent_boot_ns: Option<u64>,
    /// Then restore the snapshots of the leases it revoked.
    pub rollback: bool,
}

pub async fn halt(ctx: &Context, peer: &Peer, which: &Agents, how: How) -> Response {
    let How {
        kill,
        reason,
        sent_boot_ns,
        rollback,
    } = how;
    let received = Instant::now();
    let received_ns = clock::boot_ns();
    let sent_ns = sent_at(sent_boot_ns, received_ns);
    let at_ms = clock::wall_ms();
    let at_ns = BootClock::now_ns();
    let targets = match select(ctx, which) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let Some(auth) = &ctx.leases else {
        return Response::error(ErrorCode::Internal, "this daemon has no lease manager");
    };
    let action = if kill { Action::Kill } else { Action::Freeze };
    // The kill switch first: nothing before it takes a lock or touches a disk.
    for (name, path) in &targets {
        if let Err(e) = freeze::start(path, action) {
            return Response::error(ErrorCode::Internal, format!("halting `{name}`: {e}"));
        }
    }
    let why = reason.clone().unwrap_or_else(|| "halt".to_owned());
    let mut revoked = Vec::new();
    {
        let Ok(mut a) = auth.lock() else {
            return Response::error(ErrorCode::Internal, "the lease manager lock is poisoned");
        };
        for (name, _) in &targets {
            revoked.push(a.revoke_agent(name, peer.uid, &format!("halt: {why}")));
        }
    }
    let mut halts = Vec::new();
    for ((name, path), revoked) in targets.iter().zip(revoked) {
        let what = if kill { "emptied" } else { "frozen" };
        if let Err(e) = freeze::wait_until(path, what, received, |p| freeze::done(p, action)).await
        {
            return Response::error(ErrorCode::Internal, format!("halting `{name}`: {e}"));
        }
        let took = std::time::Duration::from_nanos(clock::boot_ns().saturating_sub(sent_ns));
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
    let (rolled_back, not_rolled_back, reprotect) = {
        let Ok(mut a) = auth.lock() else {
            return Response::error(ErrorCode::Internal, "the lease manager lock is poisoned");
        };
        for h in &halts {
            tracing::warn!(target: "governor::halt", agent = %h.agent, action = ?h.action,
            uid = h.by_uid, reason = h.reason.as_deref().unwrap_or(""),
            leases_revoked = h.revoked.len(), enforced_in_us = h.enforced_in_us,
            queued_us = (received_ns - sent_ns) / 1000,
            "agent halted: cgroup {} {} µs after the command was sent, leases revoked",
            if kill { "killed" } else { "frozen" }, h.enforced_in_us);
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
        // The reversal path: the agents are frozen and hold no lease, so nothing races the
        // restore of what their leases allowed.
        let mut rolled_back = Vec::new();
        let mut not_rolled_back = Vec::new();
        if rollback {
            for id in halts.iter().flat_map(|h| h.revoked.iter()) {
                if !a.has_snapshot(id) {
                    // A lease that changed nothing on disk (network, exec, read) has nothing
                    // to restore.
                    continue;
                }
                match a.rollback(id, peer.uid, false, false, Trigger::Halt { halt_ns: at_ns }) {
                    Ok(v) => rolled_back.push(v),
                    Err(e) => not_rolled_back.push(NotRestored {
                        lease: id.clone(),
                        why: e.to_string(),
                    }),
                }
            }
        }
        let reprotect = super::rollback::brought_back_protected(&a, &rolled_back);
        (rolled_back, not_rolled_back, reprotect)
    };
    if reprotect {
        super::rollback::reprotect_after_restore(ctx, peer).await;
    }
    Response::reply(&Halted {
        halts,
        queued_us: (received_ns - sent_ns) / 1000,
        total_us: clock::boot_ns().saturating_sub(sent_ns) / 1000,
        rolled_back,
        not_rolled_back,
    })
}

pub async fn resume(ctx: &Context, peer: &Peer, which: &Agents) -> Response {
    let received = Instant::now();
    let at_ns = BootClock::now_ns();
    let targets = match select(ctx, which) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let Some(auth) = &ctx.leases else {
        return Response::error(ErrorCode::Internal, "this daemon has no lease manager");
    };
    let mut resumed = Vec::new();
    let mut thawed_in = std::time::Duration::ZERO;
    for (name, path) in &targets {
        let halted = auth
            .lock()
            .map_err(|_| LeaseError::Internal("the lease manager lock is poisoned".into()))
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
        if let Err(e) = freeze::thaw(path) {
            return Response::error(ErrorCode::Internal, format!("resuming `{name}`: {e}"));
        }
        match freeze::wait_until(path, "thawed", received, freeze::thawed).await {
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
                return Response::error(ErrorCode::Internal, "the lease manager lock is poisoned")
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
    Response::reply(&Resumed {
        resumed,
        total_us: received.elapsed().as_micros() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::sent_at;

    #[test]
    fn times_count_from_the_clients_stamp_when_it_can_be_right() {
        let hour = 3_600_000_000_000;
        // Sent 40 ms before the daemon read it.
        assert_eq!(sent_at(Some(960_000_000), 1_000_000_000), 960_000_000);
        // No stamp (an older client), one ahead of the daemon's clock, or one an hour old:
        // the daemon's own reading.
        assert_eq!(sent_at(None, 1_000_000_000), 1_000_000_000);
        assert_eq!(sent_at(Some(1_000_000_001), 1_000_000_000), 1_000_000_000);
        assert_eq!(sent_at(Some(5), hour + 5), hour + 5);
        assert_eq!(sent_at(Some(6), hour + 5), 6);
    }
}
