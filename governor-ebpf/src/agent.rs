//! Who is acting: is the current task an agent, and applying a refusal to it. Every hook
//! family starts with [`current`] — the only cost a non-agent task pays is that one lookup —
//! and ends a would-be deny with [`refuse`], which honours observe mode and emits the event.

use aya_ebpf::{helpers::generated::bpf_get_current_cgroup_id, programs::LsmContext};
use governor_common::{
    maps::{Counter, AGENT_FLAG_OBSERVE, AGENT_UNKNOWN},
    AgentInfo, Decision, EventKind, KernelOffsets, Target,
};

use crate::{
    emit::{self, Decided, Name},
    maps,
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

/// What is being refused.
pub struct Refusal {
    pub kind: EventKind,
    pub class: u32,
    pub rule_id: u32,
    pub target: Target,
    pub depth: u32,
}

/// Refuses `r` for `agent`: counts it, emits one event and returns `-EPERM`, or 0 (allowed,
/// recorded as a would-be deny) when the agent is in observe mode. `name` names the target in
/// the event (and, for a file, gives its path).
#[inline(always)]
pub fn refuse_named(agent: &Agent, r: Refusal, off: &KernelOffsets, name: Name) -> i32 {
    verdict(decide_named(agent, r, off, name))
}

/// Decides a would-be deny of `r` for `agent`: [`Decision::Deny`], or
/// [`Decision::ObserveDeny`] when the agent is in observe mode. Counts it and emits exactly
/// one event, its `name` taken from `name`; the caller turns the decision into its hook's
/// return convention.
#[inline(always)]
pub fn decide_named(agent: &Agent, r: Refusal, off: &KernelOffsets, name: Name) -> Decision {
    settle(agent, r, 0, off, name)
}

/// Settles an operation that is not a plain allow, with one event: allowed under lease
/// `lease_id` when it is non-zero ([`Decision::LeaseAllow`]), else a would-be deny
/// ([`decide_named`]). One emission site, so that hooks deciding several targets stay small for
/// the verifier.
#[inline(always)]
pub fn settle(
    agent: &Agent,
    r: Refusal,
    lease_id: u64,
    off: &KernelOffsets,
    name: Name,
) -> Decision {
    let decision = if lease_id != 0 {
        emit::count(Counter::LeaseAllowed);
        Decision::LeaseAllow
    } else if agent.info.flags & AGENT_FLAG_OBSERVE != 0 {
        emit::count(Counter::Observed);
        Decision::ObserveDeny
    } else {
        emit::count(Counter::Denied);
        Decision::Deny
    };
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
    emit::event(off, &decided, name);
    decision
}

/// An LSM hook's return value for `decision`.
#[inline(always)]
pub fn verdict(decision: Decision) -> i32 {
    match decision {
        Decision::Deny => -EPERM,
        Decision::ObserveDeny | Decision::LeaseAllow => 0,
    }
}

/// The previous LSM program's refusal, if any: argument `n` of an LSM program is the phony
/// `retval` after the hook's own arguments. Every hook returns it unchanged when non-zero.
#[inline(always)]
pub fn prior(ctx: &LsmContext, n: usize) -> Option<i32> {
    let retval: i32 = ctx.arg(n);
    (retval != 0).then_some(retval)
}
