//! The decision sink: turns each kernel decision record into a log line (throttled per
//! agent, the lines left out summed up in one) and a lineage `events` row, naming the lease
//! that allowed it.

use std::sync::{Arc, Mutex};

use governor_common::{detail, Decision, Event, EventKind};
use tokio::sync::mpsc;

use crate::{
    kernel::events,
    leases::LeaseManager,
    lineage::{boot::BootClock, decision, record::Record, recorder::Recorder},
    logging::throttle::{self, Throttle},
    policy::Compiled,
};

/// Events the decision sink handles in a row before it lets other tasks run.
const SINK_BATCH: u32 = 256;

/// Logs and records every decision `rx` brings until the reader side closes, then reports
/// what the throttle still held back.
pub async fn run(
    mut rx: mpsc::Receiver<events::Item<Arc<Compiled>>>,
    sink_leases: Arc<Mutex<LeaseManager>>,
    sink_recorder: Recorder,
    clock: BootClock,
) {
    let mut throttle = Throttle::default();
    let mut in_a_row = 0u32;
    loop {
        // Under a flood the next event is already queued (no timer per event); an idle
        // sink wakes at least once a window, to report lines a throttled agent left out.
        // It lets the runtime's other tasks (the readers, the request socket) run every
        // SINK_BATCH events: `try_recv` never yields by itself.
        in_a_row += 1;
        if in_a_row >= SINK_BATCH {
            in_a_row = 0;
            tokio::task::yield_now().await;
        }
        let next = match rx.try_recv() {
            Ok(item) => Ok(Some(item)),
            Err(mpsc::error::TryRecvError::Disconnected) => Ok(None),
            Err(mpsc::error::TryRecvError::Empty) => {
                tokio::time::timeout(throttle::WINDOW, rx.recv()).await
            }
        };
        let now = std::time::Instant::now();
        for s in throttle.expired(now) {
            log_suppressed(&s);
        }
        let (ev, compiled, ring) = match next {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(_) => continue,
        };
        let lease = (ev.lease_id != 0)
            .then(|| {
                sink_leases
                    .lock()
                    .ok()
                    .and_then(|a| a.by_kernel_id(ev.lease_id).map(|r| r.id.clone()))
            })
            .flatten();
        let d = decision::describe(&ev, &compiled);
        // An allow recorded for an agent that records everything (`record = "all"`) goes to
        // the lineage only: the log is for decisions that stopped or needed something.
        if ev.decision != Decision::Allow as u32 && throttle.allow(d.agent, now) {
            log_decision(&ev, &d, &compiled, lease.as_deref());
        }
        sink_recorder.record(Record::Event(Box::new(decision::event_row(
            &ev,
            &d,
            &clock,
            lease,
            &compiled.policy_version,
            ring,
        ))));
    }
    for s in throttle.finish(std::time::Instant::now()) {
        log_suppressed(&s);
    }
}

/// One line for the decision lines an agent's flood left out of the log.
/// Its target is not `governor::decision` (those lines are one per decision, with the
/// decision's fields), but `RUST_LOG` directives for `governor::decision` cover it.
fn log_suppressed(s: &throttle::Suppressed) {
    tracing::warn!(
        target: "governor::decision::suppressed",
        agent = %s.agent,
        suppressed = s.lines,
        window_ms = s.over.as_millis() as u64,
        "{} more decisions of agent {} in {:.1}s not logged (over {} lines a second); every \
         one is in the lineage: governor lineage events --agent {}",
        s.lines,
        s.agent,
        s.over.as_secs_f64(),
        throttle::LINES_PER_WINDOW,
        s.agent
    );
}

/// Logs one kernel decision with everything the kernel and the policy know about it. Every
/// kind carries the agent, process identity (with `exe`, the executable's path as the kernel
/// resolved it) and class, and `path`, the target's resolved path (empty when the target is
/// not a file); network decisions add the address, port and rule; the others add `name`,
/// `protected` (the rule), `detail` and its reading `what`, file decisions the target inode
/// and depth, task decisions the target's pid.
fn log_decision(ev: &Event, d: &decision::Described<'_>, compiled: &Compiled, lease: Option<&str>) {
    let (agent, class, class_name, decision) = (d.agent, d.class, d.class_name, d.decision);
    let (comm, exe, target_path) = (&d.comm, &d.exe, &d.target_path);
    let message = match Decision::from_u32(ev.decision) {
        Some(Decision::Deny) => "denied",
        Some(Decision::ObserveDeny) => "would deny (observe mode)",
        Some(Decision::LeaseAllow) => "allowed under lease",
        Some(Decision::Allow) => "allowed (recorded: the agent records everything)",
        None => "unknown decision",
    };
    // The fields every decision carries; each kind adds its own before the message.
    macro_rules! decision {
        ($($extra:tt)*) => {
            tracing::warn!(
                target: "governor::decision",
                decision,
                agent,
                class = class_name,
                pid = ev.pid,
                tgid = ev.tgid,
                uid = ev.uid,
                gid = ev.gid,
                comm = %comm,
                exe = %exe,
                exe_ino = ev.exe_inode.ino,
                path = %target_path,
                cgroup_id = ev.cgroup_id,
                boot_ns = ev.boot_ns,
                lease_id = ev.lease_id,
                lease = lease.unwrap_or(""),
                $($extra)*
                "{}",
                message
            )
        };
    }
    if EventKind::from_u16(ev.kind) == Some(EventKind::NetDecision) {
        let (addr, family) = decision::net_addr(ev);
        let (sock_type, protocol) = ((ev.target.detail >> 32) as u32, ev.target.detail as u32);
        let rule = &d.rule;
        let lease_required = ev.decision != Decision::LeaseAllow as u32
            && class.is_some_and(|c| compiled.needs_lease(ev.agent_id, ev.rule_id, c));
        decision!(
            lease_required,
            addr = %addr,
            port = ev.target.port,
            family,
            proto = %proto_name(sock_type, protocol),
            rule = %rule,
            rule_id = ev.rule_id,
        );
        return;
    }
    let protected = &d.rule;
    let what = class.map_or_else(
        || ev.target.detail.to_string(),
        |c| detail::describe(c, ev.target.detail),
    );
    let name = String::from_utf8_lossy(Event::trim_nul(&ev.name));
    let dev = ev.target.inode.dev;
    let lease_required = ev.decision != Decision::LeaseAllow as u32
        && class.is_some_and(|c| compiled.needs_lease(ev.agent_id, ev.rule_id, c));
    // The exact command that would allow this operation, for the operator.
    let lease_hint = if lease_required {
        format!(
            "governor lease issue --key KEY --agent {agent} --scope {class_name}:{target_path} \
             --ttl 15m --reason '...'"
        )
    } else {
        String::new()
    };
    macro_rules! object_decision {
        ($($extra:tt)*) => {
            decision!(
                lease_required,
                lease_hint = %lease_hint,
                name = %name,
                protected = %protected,
                detail = ev.target.detail,
                what = %what,
                $($extra)*
            )
        };
    }
    match EventKind::from_u16(ev.kind) {
        Some(EventKind::TaskDecision) => object_decision!(target_pid = ev.target.pid,),
        Some(EventKind::HostDecision) => object_decision!(),
        _ => object_decision!(
            depth = ev.depth,
            target_dev = %format!("{}:{}", dev >> 20, dev & 0xf_ffff),
            target_ino = ev.target.inode.ino,
        ),
    }
}

/// `tcp`, `udp`, or the raw socket type and protocol numbers.
fn proto_name(sock_type: u32, protocol: u32) -> String {
    match (sock_type, protocol) {
        (_, 6) => "tcp".to_owned(),
        (_, 17) => "udp".to_owned(),
        (_, 1) | (_, 58) => "icmp".to_owned(),
        (_, 262) => "mptcp".to_owned(),
        (t, p) => format!("type {t} protocol {p}"),
    }
}
