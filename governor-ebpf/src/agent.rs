//! Who is acting: is the current task an agent, and applying a refusal to it. Every hook
//! family starts with [`current`] — the only cost a non-agent task pays is that one lookup —
//! and ends a would-be deny with [`refuse_named`], which honours observe mode and emits the
//! event.
//!
//! A refusal is built in one place: a [`Refusal`] says what is refused (made by its
//! constructor for the hook family: [`Refusal::file`], [`Refusal::task`], [`Refusal::host`],
//! [`Refusal::net`]); [`refusal_decision`] turns it into a decision and counts it, and
//! [`defer`] alone makes its event. [`settle`] is the two in a row, [`refuse_named`] is
//! [`settle`] without a lease; the file walk (`walk::decide_as`) calls the two itself, so that
//! its recorded allows (`record = "all"`) share the one `defer`.

use aya_ebpf::{helpers::generated::bpf_get_current_cgroup_id, programs::LsmContext};
use governor_common::{
    maps::{
        Counter, AGENT_FLAG_OBSERVE, AGENT_FLAG_RECORD_ALL, AGENT_UNKNOWN, RECORD_ALL_CLASSES,
        RULE_BUILTIN,
    },
    AgentInfo, Class, Decision, EventKind, InodeKey, KernelOffsets, Target,
};

use crate::{
    emit::{self, Decided, Name},
    lease, maps,
};

const EPERM: i32 = 1;

/// The current task's agent, if it is one.
#[derive(Clone, Copy)]
pub struct Agent {
    pub cgroup_id: u64,
    pub info: AgentInfo,
}

/// Looks the current task's cgroup up in the agent map. A task is an agent when its cgroup or
/// any ancestor is an agent cgroup; every cgroup below an agent cgroup is in the map too
/// (`crate::cgroup`), so one lookup answers for the whole subtree. `cgroup_id` is the task's
/// own cgroup, `info` names the agent it belongs to.
#[inline(always)]
pub fn current() -> Option<Agent> {
    // SAFETY: plain helper call.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out before any map update can race with it.
    let info = unsafe { maps::GOV_AGENTS.get(&cgroup_id) }.copied()?;
    Some(Agent { cgroup_id, info })
}

/// The current task as an agent, for hooks that only run for tasks in an agent cgroup's
/// subtree (cgroup programs attached to agent cgroups): a task in a descendant cgroup that is
/// not registered (`Counter::CgroupUntracked`: the map was full) is an agent of unknown id, in
/// enforce mode (fail closed).
#[inline(always)]
pub fn current_or_unknown() -> Agent {
    // SAFETY: plain helper call.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out before any map update can race with it.
    let info = unsafe { maps::GOV_AGENTS.get(&cgroup_id) }
        .copied()
        .unwrap_or(AgentInfo {
            agent_id: AGENT_UNKNOWN,
            flags: 0,
        });
    Agent { cgroup_id, info }
}

/// What is being refused (or, for an agent that records everything, allowed): the event's
/// kind, class, rule, target and walk depth.
pub struct Refusal {
    pub kind: EventKind,
    pub class: u32,
    pub rule_id: u32,
    pub target: Target,
    pub depth: u32,
}

impl Refusal {
    /// A file class refused on the inode `inode` (default when unresolved), `depth` levels
    /// above the target where the rule was found; `detail` says how the operation was made.
    #[inline(always)]
    pub fn file(class: Class, rule_id: u32, inode: InodeKey, detail: u64, depth: u32) -> Self {
        Refusal {
            kind: EventKind::FileDecision,
            class: class as u32,
            rule_id,
            target: Target {
                inode,
                detail,
                ..Target::default()
            },
            depth,
        }
    }

    /// A task class refused on the task `pid` (0: unknown).
    #[inline(always)]
    pub fn task(class: Class, rule_id: u32, pid: u32, detail: u64) -> Self {
        Refusal {
            kind: EventKind::TaskDecision,
            class: class as u32,
            rule_id,
            target: Target {
                pid,
                detail,
                ..Target::default()
            },
            depth: 0,
        }
    }

    /// A host-wide class refused; `detail` says what it aimed at.
    #[inline(always)]
    pub fn host(class: Class, rule_id: u32, detail: u64) -> Self {
        Refusal {
            kind: EventKind::HostDecision,
            class: class as u32,
            rule_id,
            target: Target {
                detail,
                ..Target::default()
            },
            depth: 0,
        }
    }

    /// A built-in rule's refusal of `class` (no policy lifts it), reported as `kind`.
    #[inline(always)]
    pub fn builtin(kind: EventKind, class: Class, detail: u64) -> Self {
        Refusal {
            kind,
            class: class as u32,
            rule_id: RULE_BUILTIN,
            target: Target {
                detail,
                ..Target::default()
            },
            depth: 0,
        }
    }

    /// A network class refused on the address and port in `target`.
    #[inline(always)]
    pub fn net(class: Class, rule_id: u32, target: Target) -> Self {
        Refusal {
            kind: EventKind::NetDecision,
            class: class as u32,
            rule_id,
            target,
            depth: 0,
        }
    }
}

/// Refuses `r` for `agent` ([`settle`] without a lease): counts it, emits one event and
/// returns `-EPERM`, or 0 (allowed, recorded as a would-be deny) when the agent is in observe
/// mode. `name` names the target in the event (and, for a file, gives its path).
#[inline(always)]
pub fn refuse_named(agent: &Agent, r: Refusal, name: Name) -> i32 {
    verdict(settle(agent, r, 0, name))
}

/// Settles an operation that is not a plain allow, with one event: allowed under lease
/// `lease_id` when it is non-zero ([`Decision::LeaseAllow`]), else a would-be deny:
/// [`Decision::Deny`], or [`Decision::ObserveDeny`] when the agent is in observe mode. Counts
/// it and defers exactly one event, its `name` taken from `name`; the caller turns the
/// decision into its hook's return convention ([`verdict`]). Hooks deciding several targets
/// settle through here, so that they stay small for the verifier.
#[inline(always)]
pub fn settle(agent: &Agent, r: Refusal, lease_id: u64, name: Name) -> Decision {
    let decision = refusal_decision(agent, lease_id);
    defer(agent, r, decision, lease_id, name);
    decision
}

/// What an operation that is not a plain allow comes to, counted: allowed under lease
/// `lease_id` when it is non-zero, else a deny, or a would-be deny in observe mode.
#[inline(always)]
pub fn refusal_decision(agent: &Agent, lease_id: u64) -> Decision {
    if lease_id != 0 {
        lease::count_allowed();
        Decision::LeaseAllow
    } else if agent.info.flags & AGENT_FLAG_OBSERVE != 0 {
        emit::count(Counter::Observed);
        Decision::ObserveDeny
    } else {
        emit::count(Counter::Denied);
        Decision::Deny
    }
}

/// Whether an operation of `class` the policy allows is recorded for `agent`
/// ([`Decision::Allow`]): when the agent records every operation of a file class (`record =
/// "all"`, `AGENT_FLAG_RECORD_ALL`) and `class` is one (`RECORD_ALL_CLASSES`).
#[inline(always)]
pub fn records_allowed(agent: &Agent, class: Class) -> bool {
    agent.info.flags & AGENT_FLAG_RECORD_ALL != 0 && RECORD_ALL_CLASSES & class.bit() != 0
}

/// Defers `r`'s event with `decision` (see [`emit::defer`]): the one place a decision
/// becomes an event.
#[inline(always)]
pub fn defer(agent: &Agent, r: Refusal, decision: Decision, lease_id: u64, name: Name) {
    let decided = Decided {
        kind: r.kind,
        cgroup_id: agent.cgroup_id,
        agent_id: agent.info.agent_id,
        class: r.class,
        decision,
        rule_id: r.rule_id,
        target: r.target,
        depth: r.depth,
        lease_id,
    };
    emit::defer(&decided, name);
}

/// The current task as an agent about to be decided ([`current`]), with a guard that emits
/// the one event its decisions settled, if any, when it goes out of scope ([`emit::Flush`]):
/// at the end of the agent's path, whichever way the decision returns. Every decision of a
/// program runs under one guard, so the program has one emission site.
#[inline(always)]
pub fn acting() -> Option<(Agent, emit::Flush)> {
    current().map(|agent| (agent, emit::Flush))
}

/// Refuses `class` to any agent (a built-in rule no policy lifts), with `detail` saying how
/// and `name` naming what it aimed at; everyone else is allowed after the agent lookup.
/// `name` is only evaluated for an agent.
#[inline(always)]
pub fn always(
    kind: EventKind,
    class: Class,
    detail: u64,
    name: impl FnOnce(&KernelOffsets) -> Name,
) -> i32 {
    let Some((agent, _event)) = acting() else {
        return 0;
    };
    builtin(&agent, kind, class, detail, name)
}

/// [`always`] for an agent already looked up.
#[inline(always)]
pub fn builtin(
    agent: &Agent,
    kind: EventKind,
    class: Class,
    detail: u64,
    name: impl FnOnce(&KernelOffsets) -> Name,
) -> i32 {
    let off = maps::offsets();
    let refusal = Refusal::builtin(kind, class, detail);
    let name = name(off);
    refuse_named(agent, refusal, name)
}

/// An LSM hook's return value for `decision`.
#[inline(always)]
pub fn verdict(decision: Decision) -> i32 {
    match decision {
        // Opaque to the optimizer: folded into arithmetic (`-(decision & 1)`), the result is
        // a negation the 6.12 verifier cannot bound, and it refuses an LSM program whose
        // return value might leave [-4095, 0]. Kept 64 bits wide through the opaque store,
        // so that it comes back sign-extended.
        Decision::Deny => core::hint::black_box(-i64::from(EPERM)) as i32,
        Decision::ObserveDeny | Decision::LeaseAllow | Decision::Allow => 0,
    }
}

/// The previous LSM program's refusal, if any: argument `n` of an LSM program is the phony
/// `retval` after the hook's own arguments. Every hook returns it unchanged when non-zero.
#[inline(always)]
pub fn prior(ctx: &LsmContext, n: usize) -> Option<i32> {
    let retval: i32 = ctx.arg(n);
    (retval != 0).then_some(retval)
}
