//! Decisions on protected resources: what the policy says for (agent, class, resource), and
//! the lease lift: whether a lease currently lifts a `lease` decision. File (`crate::walk`),
//! exec (`crate::exec_setid`) and network (`crate::net`) decisions all lift through [`lift`]
//! (or, for a walk over several inodes, [`held`] then [`lifted`]) and count a lift with
//! [`count_allowed`].
//!
//! The policy's verdict is the decision rule of `governor_common::decision`, with the agent's
//! own decisions looked up in `GOV_AGENT_RULES`. A class whose verdict is `lease` is allowed
//! only while `GOV_LEASES` holds an entry for (agent, class, object) whose boot-time window
//! (start included, end excluded) holds the present. Both bounds are compared with
//! `bpf_ktime_get_boot_ns()`, a clock that setting the wall clock does not move: a scheduled
//! lease cannot start early, nor any lease end late.

use aya_ebpf::helpers::generated::bpf_ktime_get_boot_ns;
pub use governor_common::decision::Verdict;
use governor_common::{maps::Counter, AgentRuleKey, InodeKey, LeaseKey, ProtectedRule};

use crate::{emit, maps};

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

/// The lease lift for (`agent_id`, `class`, `object`): the id of the lease in force, or 0
/// when none is (an expired one counted, [`lifted`]). Lease ids are never 0 (the daemon's
/// `kernel_id`): 0 means "no lease" in events.
#[inline(always)]
pub fn lift(agent_id: u32, class: u32, object: InodeKey) -> u64 {
    lifted(held(agent_id, class, object))
}

/// What the lease `found` lifts: its id when it is in force, else 0, counting
/// `Counter::LeaseExpired` when the lease found had expired.
#[inline(always)]
pub fn lifted(found: Held) -> u64 {
    match found {
        Held::Valid(id) => id,
        Held::Expired => {
            emit::count(Counter::LeaseExpired);
            0
        }
        Held::None => 0,
    }
}

/// Counts an operation a lease allowed (`Counter::LeaseAllowed`): every lift that allows,
/// whether it is recorded with an event (`agent::settle`) or only counted.
#[inline(always)]
pub fn count_allowed() {
    emit::count(Counter::LeaseAllowed);
}
