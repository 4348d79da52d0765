//! File-operation decisions: is the target (or any ancestor dentry of it) a protected inode
//! whose rule denies this class for agents?
//!
//! Protected resources are identified by inode, not by path string, so hardlinks, symlinks,
//! `..` and bind mounts of a protected subtree resolve to the same inodes. A target whose chain
//! cannot be walked to its filesystem root within `MAX_PATH_DEPTH` is denied (fail closed).

use governor_common::{
    maps::{Counter, MAX_PATH_DEPTH, RULE_UNRESOLVED},
    Class, EventKind, KernelOffsets, Target,
};

use crate::{
    agent::{self, Refusal},
    emit, maps, vfs,
};

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
    let Some(agent) = agent::current() else {
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
    let refusal = Refusal {
        kind: EventKind::FileDecision,
        class: class as u32,
        rule_id,
        target: Target {
            inode: target.unwrap_or_default(),
            ..Target::default()
        },
        depth,
    };
    agent::refuse(&agent, refusal, &off, dentry)
}

/// Walks from `dentry` up through `d_parent` looking for a protected inode denying `class`.
#[inline(always)]
fn walk_up(off: &KernelOffsets, dentry: *const u8, class: Class) -> Walk {
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
