//! Decisions on protected resources: what the policy says for (agent, class, resource), and
//! whether a lease currently lifts a `lease` decision.
//!
//! A resource's default masks sit in its [`ProtectedRule`]; an agent with its own decisions
//! for that resource has an entry in `GOV_AGENT_RULES` that replaces them. A class in the
//! deny mask is denied outright (no lease can lift it), one in the lease mask is allowed only
//! while `GOV_LEASES` holds an entry for (agent, class, object) whose boot-time window
//! (start included, end excluded) holds the present, and any other class is allowed. Both
//! bounds are compared with `bpf_ktime_get_boot_ns()`, a clock that setting the wall clock
//! does not move: a scheduled lease cannot start early, nor any lease end late.

use aya_ebpf::helpers::generated::bpf_ktime_get_boot_ns;
pub use governor_common::maps::Verdict;
use governor_common::{AgentRuleKey, InodeKey, LeaseKey, ProtectedRule};

use crate::maps;

/// The verdict of `rule` on the class `bit` for `agent_id` ([`ProtectedRule::verdict`]),
/// with the agent's own decisions looked up under `override_id` (the rule id, tagged by
/// resource kind).
#[inline(always)]
pub fn verdict(agent_id: u32, override_id: u32, rule: &ProtectedRule, bit: u32) -> Verdict {
    let key = AgentRuleKey {
        agent_id,
        rule_id: override_id,
    };
    // SAFETY: the value is copied out immediately.
    let own = unsafe { maps::GOV_AGENT_RULES.get(&key) }.copied();
    rule.verdict(own, bit)
}

/// The lease, if any, that `agent_id` holds for `class` on `object`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Held {
    None,
    /// In force (started, not ended): its id.
    Valid(u64),
    /// Present but past its expiry.
    Expired,
}

/// Looks up the lease for (`agent_id`, `class`, `object`) and checks its window against the
/// boot-time clock. A lease whose start is still ahead is [`Held::None`]: nothing is held
/// yet.
#[inline(always)]
pub fn held(agent_id: u32, class: u32, object: InodeKey) -> Held {
    let key = LeaseKey {
        agent_id,
        class,
        object,
    };
    // SAFETY: the value is copied out immediately.
    let Some(entry) = (unsafe { maps::GOV_LEASES.get(&key) }).copied() else {
        return Held::None;
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if entry.applies_at(now) {
        Held::Valid(entry.lease_id)
    } else if now < entry.not_before_boot_ns {
        Held::None
    } else {
        Held::Expired
    }
}
