//! Directories known to lie under no protected inode: an agent's file operation in such a
//! directory checks its target and the directory's entry instead of walking every ancestor
//! (`file::decide_as`). A walk from a target costs one probe-read chain and one map lookup
//! per level, eight or more levels for an ordinary path, and agents' creates, unlinks and
//! write opens each walk.
//!
//! What is kept is a fact about a directory's whole way up — through `d_parent` and, at the
//! root of each mount, on to the mountpoint in the parent mount — not about any class or
//! agent: *no inode on it is in the protected map at all*. A walk that ends clear without
//! meeting any protected inode above its target records its target's directory. Then, for a
//! later operation on an entry of that directory, the walk would give the same plain allow
//! unless the entry itself is protected, and that is the only inode checked.
//!
//! A kept directory stands while nothing the fact rests on can have changed, by the same
//! rules as the write cache (`write_cache.rs`):
//! - its way up: both tree sequences (`rename_lock`, `mount_lock`) read before the walk that
//!   found it, and still the same; and at most `WRITE_CACHE_TTL_NS` old;
//! - the inodes on the way: a directory has one parent, and it only changes by a rename;
//! - the protected map: never changed in place (a new policy is a new generation of maps,
//!   this one included).
//!
//! Entries are keyed by the directory's `struct dentry *` and the mount it was reached
//! through. A dentry can be freed and its memory reused for another directory without either
//! sequence moving, so an entry also names the directory's inode — its address, number and
//! generation — and counts only while the dentry still has that very inode: a reused dentry
//! finds another inode, or one of another number or generation, and the walk runs.
//!
//! Both entry points are separate BPF functions taking plain scalars, so every hook that
//! decides pays their instructions once in the verifier, and their state stays out of the
//! hooks' frames (6.1 limits a call chain's stack to 512 bytes).

use governor_common::{DirClear, DirKey, InodeKey, WriteStamp};

use crate::{
    maps,
    read_vfs::{self, ptr_at, read_into, Identity},
    write_cache,
};

/// `dentry`'s directory, if `dentry` is not the root of its filesystem (a mount root is
/// walked across its mountpoint, which the cache does not follow).
#[inline(always)]
fn directory(dentry: *const u8) -> Option<*const u8> {
    let parent = ptr_at(dentry, maps::offsets().dentry_d_parent);
    (!parent.is_null() && parent != dentry).then_some(parent)
}

/// The two sequences of `stamp` in one scalar, as the functions below take them.
#[inline(always)]
pub fn seqs(stamp: &WriteStamp) -> u64 {
    u64::from(stamp.rename_seq) | u64::from(stamp.mount_seq) << 32
}

/// The stamp that [`seqs`] and its end (`not_after_ns`) were taken from.
#[inline(always)]
fn unpack(seqs: u64, not_after_ns: u64) -> WriteStamp {
    WriteStamp {
        rename_seq: seqs as u32,
        mount_seq: (seqs >> 32) as u32,
        not_after_ns,
    }
}

/// Whether the operation on `dentry` (reached through `mnt`, 0 if unknown) is known to be a
/// plain allow: its directory is kept under the trees as they are (`seqs`, from [`seqs`], and
/// `not_after_ns` of a stamp taken now), and `dentry` itself is not protected. 1 if so, 0 to
/// walk.
#[inline(never)]
pub fn known_clear(dentry: u64, mnt: u64, seqs: u64, not_after_ns: u64) -> u32 {
    let dentry = dentry as *const u8;
    let Some(dir) = directory(dentry) else {
        return 0;
    };
    let key = DirKey {
        dentry: dir as u64,
        mnt,
    };
    // SAFETY: the value is copied out immediately.
    let Some(kept) = (unsafe { maps::GOV_DIR_CACHE.get(&key) }).copied() else {
        return 0;
    };
    if !write_cache::still_holds(&kept.stamp, &unpack(seqs, not_after_ns)) {
        return 0;
    }
    let off = maps::offsets();
    let mut now = Identity::default();
    let was = Identity {
        inode: kept.inode,
        ino: kept.ino,
        generation: kept.generation,
    };
    if !read_vfs::identity_into(off, dir, &mut now) || now != was {
        return 0;
    }
    let inode = ptr_at(dentry, off.dentry_d_inode);
    if inode.is_null() {
        // A negative dentry: the name being created. Its directory decides.
        return 1;
    }
    // The target's superblock is its directory's: only its inode number is read.
    let mut ino: u64 = 0;
    if !read_into(inode, off.inode_i_ino, &mut ino) {
        return 0;
    }
    let target = InodeKey::new(kept.dev, ino);
    // SAFETY: only the presence is looked at.
    if unsafe { maps::GOV_PROTECTED.get(&target) }.is_some()
        || unsafe { maps::GOV_LINKED.get(&target) }.is_some()
    {
        // A rule on the target itself, or one for its place elsewhere: the walk decides.
        return 0;
    }
    1
}

/// Keeps the directory of `dentry` (reached through `mnt`): a walk that started at the stamp
/// (`seqs`, `not_after_ns`) found no protected inode anywhere above `dentry`. A full map
/// evicts its least recently used entry; a failed insert only means the next walk runs.
#[inline(never)]
pub fn remember(dentry: u64, mnt: u64, seqs: u64, not_after_ns: u64) -> u32 {
    let Some(dir) = directory(dentry as *const u8) else {
        return 0;
    };
    let off = maps::offsets();
    let mut who = Identity::default();
    if !read_vfs::identity_into(off, dir, &mut who) {
        return 0;
    }
    let Some(dev) = read_vfs::sb_dev(off, who.inode as *const u8) else {
        return 0;
    };
    let entry = DirClear {
        stamp: unpack(seqs, not_after_ns),
        inode: who.inode,
        ino: who.ino,
        generation: who.generation,
        dev,
    };
    let key = DirKey {
        dentry: dir as u64,
        mnt,
    };
    u32::from(maps::GOV_DIR_CACHE.insert(&key, &entry, 0).is_ok())
}
