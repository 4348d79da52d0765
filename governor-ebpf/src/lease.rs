//! Decisions on protected resources: what the policy says for (agent, class, resource), and
//! whether a lease currently lifts a `lease` decision.
//!
//! A resource's default masks sit in its [`ProtectedRule`]; an agent with its own decisions
//! for that resource has an entry in `GOV_AGENT_RULES` that replaces them. A class in the
//! deny mask is denied outright (no lease can lift it), one in the lease mask is allowed only
//! while `GOV_LEASES` holds an entry for (agent, class, object) whose boot-time expiry lies
//! ahead, and any other class is allowed. The expiry is compared with
//! `bpf_ktime_get_boot_ns()`, a clock that setting the wall clock does not move.

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
    /// Unexpired: its id.
    Valid(u64),
    /// Present but past its expiry.
    Expired,
}

/// Looks up the lease for (`agent_id`, `class`, `object`) and checks its expiry against the
/// boot-time clock.
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
    if now < entry.not_after_boot_ns {
        Held::Valid(entry.lease_id)
    } else {
        Held::Expired
    }
}
