//! Inodes protected for a place they have elsewhere (`GOV_LINKED`): protection follows the
//! inode, not the name used.
//!
//! A walk decides by the inodes on the way up from the name used. Two objects lie in a
//! protected tree without being on that way:
//! - a file with a second name (a hard link) outside the tree: the walk from that name never
//!   meets the protected directory. Its inode is registered with the rule of the protected
//!   inode above its name inside, by the daemon for the links that exist when it loads a
//!   policy, and here for every link made later, by anyone: `link(2)` of a file below a
//!   protected inode, or into one, and `rename(2)` of a file that has other names into one;
//! - a filesystem mounted inside the tree, reached by a hook that is given no mount
//!   (`inode_setxattr`, `inode_setattr`, `inode_create`, ...): its walk ends at the root of
//!   that filesystem. The daemon registers the roots of mounts inside protected trees.
//!
//! A registered inode decides only where the walk met no protected inode that decides the
//! class (`walk::decide_as`): through a name inside the tree, the tree's own rules decide as
//! before, leases on its directories included. Through another name, a lease must name the
//! file itself (or, for a mount, a directory of that filesystem up to its root).
//!
//! Entries are never removed while a policy generation lives: a registered inode that lost
//! its name inside the tree stays protected until the next policy load (the daemon scans
//! afresh), which errs on the side of refusing.

use governor_common::{maps::RULE_LINKED_FLAG, InodeKey, KernelOffsets, ProtectedRule};

use crate::{
    maps,
    read_vfs::{self, Loc},
    walk,
};

/// `Linked::rule.rule_id` when nothing is registered.
pub const ABSENT: u32 = u32::MAX;

/// A registered inode's rule (its id tagged with `RULE_LINKED_FLAG`), and how far above the
/// walk's target the inode lies.
#[derive(Clone, Copy)]
pub struct Linked {
    pub rule: ProtectedRule,
    pub depth: u32,
}

/// Nothing registered.
pub const NONE: Linked = Linked {
    rule: ProtectedRule {
        rule_id: ABSENT,
        deny_mask: 0,
        lease_mask: 0,
        agent_mask: 0,
    },
    depth: 0,
};

/// The registered inode for a walk that ended clear: `target` itself, else `root`, the
/// dentry the walk ended at `depth` steps above the target when it could not cross mounts
/// (null otherwise).
#[inline(always)]
pub fn registered(off: &KernelOffsets, target: &InodeKey, root: *const u8, depth: u32) -> Linked {
    // SAFETY: the value is copied out immediately.
    if let Some(rule) = unsafe { maps::GOV_LINKED.get(target) } {
        return tagged(rule, 0);
    }
    if root.is_null() {
        return NONE;
    }
    let Some(key) = read_vfs::inode_key(off, root) else {
        return NONE;
    };
    // SAFETY: the value is copied out immediately.
    match unsafe { maps::GOV_LINKED.get(&key) } {
        Some(rule) => tagged(rule, depth),
        None => NONE,
    }
}

#[inline(always)]
fn tagged(rule: &ProtectedRule, depth: u32) -> Linked {
    Linked {
        rule: ProtectedRule {
            rule_id: rule.rule_id | RULE_LINKED_FLAG,
            deny_mask: rule.deny_mask,
            lease_mask: rule.lease_mask,
            agent_mask: rule.agent_mask,
        },
        depth,
    }
}

/// A new name for `old` (a `struct dentry *`) made at `new` (the new dentry, in the same
/// mount `mnt`: link(2) does not cross mounts), by anyone: registers the inode if either
/// name lies below a protected inode, with that inode's rule (the old name's first).
///
/// Not inlined, and given plain scalars: its walks' state then lives in its own frame, not
/// in the hook's (6.1 limits the combined stack of a program's call chain to 512 bytes).
#[inline(never)]
pub fn link(old: u64, new: u64, mnt: u64) -> u32 {
    let (old, new, mnt) = (old as *const u8, new as *const u8, mnt as *const u8);
    let off = maps::offsets();
    if off.valid == 0 {
        return 0;
    }
    let Some(key) = read_vfs::inode_key(off, old) else {
        return 0;
    };
    register(key, Loc { dentry: old, mnt }, Loc { dentry: new, mnt })
}

/// `old` renamed to `new` in mount `mnt`, by anyone. Two cases register `old`'s inode:
/// - it replaces a protected (or registered) inode, as an editor or `passwd` replaces a
///   file: it takes that inode's rule, so that protecting `/etc/shadow` does not end when the
///   file is rewritten;
/// - it has other names and lands below a protected inode: it takes that inode's rule.
///
/// Not inlined, like [`link`].
#[inline(never)]
pub fn rename(old: u64, new: u64, mnt: u64) -> u32 {
    let (old, new, mnt) = (old as *const u8, new as *const u8, mnt as *const u8);
    let off = maps::offsets();
    if off.valid == 0 {
        return 0;
    }
    let inode = read_vfs::ptr_at(old, off.dentry_d_inode);
    let mut key = InodeKey::default();
    if !read_vfs::inode_key_into(off, inode, &mut key) {
        return 0;
    }
    if let Some(replaced) = read_vfs::inode_key(off, new) {
        // SAFETY: the values are copied out immediately.
        let rule = unsafe { maps::GOV_PROTECTED.get(&replaced) }
            .or_else(|| unsafe { maps::GOV_LINKED.get(&replaced) })
            .copied();
        if let Some(rule) = rule {
            return u32::from(maps::GOV_LINKED.insert(&key, &rule, 0).is_ok());
        }
    }
    if read_vfs::nlink(off, inode) <= 1 {
        return 0;
    }
    let nowhere = Loc {
        dentry: core::ptr::null(),
        mnt,
    };
    register(key, nowhere, Loc { dentry: new, mnt })
}

/// Registers `key` with the rule above `first`, else above `second` (a null dentry is
/// skipped), unless it is registered already or neither lies below a protected inode: 1 if
/// it registered. A full map only means the inode is not registered (the daemon's scan
/// reports that).
#[inline(always)]
fn register(key: InodeKey, first: Loc, second: Loc) -> u32 {
    // SAFETY: only the presence is looked at.
    if unsafe { maps::GOV_LINKED.get(&key) }.is_some() {
        return 0;
    }
    let mut rule = walk::rule_above(first);
    if rule.rule_id == ABSENT {
        rule = walk::rule_above(second);
    }
    if rule.rule_id == ABSENT {
        return 0;
    }
    u32::from(maps::GOV_LINKED.insert(&key, &rule, 0).is_ok())
}
