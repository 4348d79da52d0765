//! File-operation decisions: is the current task an agent, and is the target (or any ancestor
//! dentry of it) a protected inode whose rule denies this class?
//!
//! Protected resources are identified by inode, not by path string, so hardlinks, symlinks,
//! `..` and bind mounts of a protected subtree resolve to the same inodes. A target whose chain
//! cannot be walked to its filesystem root within `MAX_PATH_DEPTH` is denied (fail closed).

use aya_ebpf::helpers::generated::bpf_get_current_cgroup_id;
use governor_common::{
    maps::{Counter, AGENT_FLAG_OBSERVE, MAX_PATH_DEPTH, RULE_UNRESOLVED},
    Class, Decision, InodeKey,
};

use crate::{
    emit::{self, Decided},
    maps, vfs,
};

const EPERM: i32 = 1;

/// Where the walk up from the target ended.
enum Walk {
    /// Reached the filesystem root without meeting a protected inode that denies the class.
    Clear,
    /// Met a protected inode `depth` levels up whose rule denies the class.
    Protected { rule_id: u32, depth: u32 },
    /// Could not finish the walk (too deep, or unreadable): fail closed.
    Unresolved,
}

/// Decides an operation of `class` on `dentry`; returns 0 or `-EPERM`.
#[inline(always)]
pub fn decide(dentry: *const u8, class: Class) -> i32 {
    // SAFETY: plain helper call.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // The only cost a non-agent task pays: one hash lookup.
    // SAFETY: the value is copied out before any map update can race with it.
    let Some(agent) = (unsafe { maps::GOV_AGENTS.get(&cgroup_id) }).copied() else {
        return 0;
    };
    let off = maps::offsets();
    let target = if off.valid == 0 {
        None
    } else {
        vfs::inode_key(&off, dentry)
    };
    let walk = match target {
        Some(_) => walk_up(&off, dentry, class),
        None => Walk::Unresolved,
    };
    let (rule_id, depth) = match walk {
        Walk::Clear => return 0,
        Walk::Protected { rule_id, depth } => (rule_id, depth),
        Walk::Unresolved => {
            emit::count(Counter::Unresolved);
            (RULE_UNRESOLVED, MAX_PATH_DEPTH)
        }
    };
    let observe = agent.flags & AGENT_FLAG_OBSERVE != 0;
    let decision = if observe {
        emit::count(Counter::Observed);
        Decision::ObserveDeny
    } else {
        emit::count(Counter::Denied);
        Decision::Deny
    };
    let decided = Decided {
        cgroup_id,
        agent_id: agent.agent_id,
        class: class as u32,
        decision,
        rule_id,
        target: target.unwrap_or(InodeKey::new(0, 0)),
        depth,
    };
    emit::event(&off, &decided, dentry);
    if observe {
        0
    } else {
        -EPERM
    }
}

/// Walks from `dentry` up through `d_parent` looking for a protected inode denying `class`.
#[inline(always)]
fn walk_up(off: &governor_common::KernelOffsets, dentry: *const u8, class: Class) -> Walk {
    let mut cur = dentry;
    let mut depth = 0u32;
    while depth < MAX_PATH_DEPTH {
        let Some(key) = vfs::inode_key(off, cur) else {
            return Walk::Unresolved;
        };
        // SAFETY: value copied out immediately.
        if let Some(rule) = unsafe { maps::GOV_PROTECTED.get(&key) }.copied() {
            if rule.deny_mask & class.bit() != 0 {
                return Walk::Protected {
                    rule_id: rule.rule_id,
                    depth,
                };
            }
        }
        let Some(parent) = vfs::parent(off, cur) else {
            return Walk::Unresolved;
        };
        if parent == cur || parent.is_null() {
            return Walk::Clear;
        }
        cur = parent;
        depth += 1;
    }
    Walk::Unresolved
}
