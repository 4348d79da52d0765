//! The decision rule: how a class, a resource's rule masks and an agent's own decisions
//! combine into a [`Verdict`]. The kernel (`governor-ebpf/src/lease.rs`) and the daemon's log
//! decide through [`ProtectedRule::verdict`], so both read the policy the same way.
//!
//! A protected resource (a protected inode, a listed binary, a network rule) carries its
//! default masks in a [`ProtectedRule`]: a class whose bit ([`Class::bit`]) is in `deny_mask`
//! is refused, one in `lease_mask` is allowed only under an unexpired lease, and any other is
//! not the resource's concern (`Silent`: a resource further up may decide). An agent with its
//! own decisions on the resource has an entry in [`AGENT_RULES`](crate::maps::AGENT_RULES)
//! (its [`Masks`]) that replaces the defaults for that agent entirely: a class the defaults
//! decide but the agent's own masks leave out is `Allow`ed. `agent_mask` tells the kernel
//! which classes any agent's entry (or an explicit allow) decides, so that it looks the
//! agent's entry up only then. What a `Lease` verdict then needs is the lease lift, in the
//! kernel (`governor-ebpf/src/lease.rs`).

#[cfg(doc)]
use crate::class::Class;

/// What a protected inode (and everything below it) is guarded against, for agents without
/// their own entry in [`AGENT_RULES`](crate::maps::AGENT_RULES).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectedRule {
    /// Index of the protected resource in the loaded policy.
    pub rule_id: u32,
    /// Classes denied for agents, as [`Class::bit`]s.
    pub deny_mask: u32,
    /// Classes allowed only under a lease, as [`Class::bit`]s (disjoint from `deny_mask`).
    pub lease_mask: u32,
    /// Classes some agent's own entry in [`AGENT_RULES`](crate::maps::AGENT_RULES) decides
    /// for this resource (the kernel consults that map only for these), and classes the
    /// resource explicitly allows (the walk stops here for them; with no agent entry the
    /// verdict is `Silent`, allowed).
    pub agent_mask: u32,
}
const _: () = assert!(core::mem::size_of::<ProtectedRule>() == 16);

/// What the policy says about one class on one resource, for one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Refused; no lease can lift it.
    Deny,
    /// Allowed only under an unexpired lease.
    Lease,
    /// The agent's own decisions allow what the resource's defaults would not.
    Allow,
    /// This resource says nothing about the class (a resource further up may).
    Silent,
}

impl ProtectedRule {
    /// Every class this resource decides, for anyone: a walk up the tree stops at the nearest
    /// resource that decides the operation's class. The kernel's walks and the daemon's
    /// compiler ask here.
    #[inline(always)]
    pub const fn decided(&self) -> u32 {
        self.deny_mask | self.lease_mask | self.agent_mask
    }

    /// Whether this resource decides the class `bit` (see [`decided`](Self::decided)).
    #[inline(always)]
    pub const fn decides(&self, bit: u32) -> bool {
        self.decided() & bit != 0
    }

    /// The verdict of this resource on the class `bit` for an agent whose own decisions on it
    /// (its [`AGENT_RULES`](crate::maps::AGENT_RULES) entry) are `own`: those replace the
    /// defaults when present. The kernel and the daemon's log both decide through here.
    #[inline(always)]
    pub fn verdict(&self, own: Option<Masks>, bit: u32) -> Verdict {
        match own {
            Some(own) if own.deny_mask & bit != 0 => Verdict::Deny,
            Some(own) if own.lease_mask & bit != 0 => Verdict::Lease,
            Some(_) if (self.deny_mask | self.lease_mask) & bit != 0 => Verdict::Allow,
            Some(_) => Verdict::Silent,
            None if self.deny_mask & bit != 0 => Verdict::Deny,
            None if self.lease_mask & bit != 0 => Verdict::Lease,
            None => Verdict::Silent,
        }
    }
}

/// The decision masks of one (agent, resource) pair: a class in `deny_mask` is denied, one
/// in `lease_mask` needs a lease, any other is allowed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Masks {
    pub deny_mask: u32,
    pub lease_mask: u32,
}
const _: () = assert!(core::mem::size_of::<Masks>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_decides_what_it_denies_leases_or_names_for_an_agent() {
        let r = ProtectedRule {
            rule_id: 1,
            deny_mask: 0b0001,
            lease_mask: 0b0010,
            agent_mask: 0b0100,
        };
        assert_eq!(r.decided(), 0b0111);
        assert!(r.decides(0b0001) && r.decides(0b0010) && r.decides(0b0100));
        assert!(
            !r.decides(0b1000),
            "a class it says nothing about: the walk goes on"
        );
        // What it decides, the verdict answers; what it does not, it leaves Silent.
        assert_eq!(r.verdict(None, 0b1000), Verdict::Silent);
        assert_eq!(r.verdict(None, 0b0010), Verdict::Lease);
    }
}
