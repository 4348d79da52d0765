//! Inode hooks: operations asked without a path, above all those a stacked filesystem
//! carries out on the filesystem beneath it.
//!
//! overlayfs does what an agent asks of a merged directory on its upper layer, with the upper
//! layer's own dentries: `vfs_unlink`, `vfs_rename`, `notify_change`, `vfs_link`,
//! `vfs_mkdir`, `vfs_create`, and a whiteout (`vfs_mknod` of a 0:0 character device) to hide
//! a lower file. No path hook is asked for those, only the inode hooks here. An upper layer
//! inside a protected tree is therefore decided here, on the real, backing inode: the walk
//! goes from the upper dentry within its filesystem (no mount is given; a filesystem mounted
//! inside a protected tree has its root registered, `crate::linked`).
//!
//! An ordinary call asks its path hook first, for the same dentry: its allow answers the
//! inode hook (`crate::note`), so an operation is decided, and recorded, once.
//!
//! `inode_setattr` also decides timestamps set to chosen times (Utimes), which no path hook
//! asks about at all.
//!
//! Entry points quote the kernel prototype (identical on 6.1 and 6.12 unless noted); the
//! last argument is the previous programs' verdict, passed on if non-zero.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::Class;

use crate::{
    agent::{self, prior, Agent},
    maps, note,
    read_vfs::Loc,
    walk::decide,
};

/// `ATTR_*` bits of `struct iattr::ia_valid` (include/linux/fs.h).
const ATTR_MODE: u32 = 1 << 0;
const ATTR_UID: u32 = 1 << 1;
const ATTR_GID: u32 = 1 << 2;
const ATTR_SIZE: u32 = 1 << 3;
const ATTR_ATIME_SET: u32 = 1 << 7;
const ATTR_MTIME_SET: u32 = 1 << 8;

// int security_inode_create(struct inode *dir, struct dentry *dentry, umode_t mode);
#[lsm(hook = "inode_create")]
pub fn inode_create(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| asked(ctx.arg(1), ctx.arg(0), Class::Write))
}

// int security_inode_unlink(struct inode *dir, struct dentry *dentry);
#[lsm(hook = "inode_unlink")]
pub fn inode_unlink(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| asked(ctx.arg(1), core::ptr::null(), Class::Unlink))
}

// int security_inode_rmdir(struct inode *dir, struct dentry *dentry);
#[lsm(hook = "inode_rmdir")]
pub fn inode_rmdir(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| asked(ctx.arg(1), core::ptr::null(), Class::Rmdir))
}

// int security_inode_mkdir(struct inode *dir, struct dentry *dentry, umode_t mode);
#[lsm(hook = "inode_mkdir")]
pub fn inode_mkdir(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| asked(ctx.arg(1), core::ptr::null(), Class::Write))
}

// int security_inode_symlink(struct inode *dir, struct dentry *dentry, const char *old_name);
#[lsm(hook = "inode_symlink")]
pub fn inode_symlink(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| asked(ctx.arg(1), core::ptr::null(), Class::Write))
}

// int security_inode_mknod(struct inode *dir, struct dentry *dentry, umode_t mode, dev_t dev);
// (overlayfs makes its whiteouts so: a 0:0 character device in the upper layer)
#[lsm(hook = "inode_mknod")]
pub fn inode_mknod(ctx: LsmContext) -> i32 {
    prior(&ctx, 4).unwrap_or_else(|| asked(ctx.arg(1), core::ptr::null(), Class::Mknod))
}

// int security_inode_rename(struct inode *old_dir, struct dentry *old_dentry,
//                           struct inode *new_dir, struct dentry *new_dentry);
#[lsm(hook = "inode_rename")]
pub fn inode_rename(ctx: LsmContext) -> i32 {
    prior(&ctx, 4).unwrap_or_else(|| pair(ctx.arg(1), Class::Rename, ctx.arg(3), Class::Rename))
}

// int security_inode_link(struct dentry *old_dentry, struct inode *dir,
//                         struct dentry *new_dentry);
#[lsm(hook = "inode_link")]
pub fn inode_link(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| pair(ctx.arg(2), Class::Write, ctx.arg(0), Class::Link))
}

// 6.1:  int security_inode_setattr(struct dentry *dentry, struct iattr *attr);
// 6.12: int security_inode_setattr(struct mnt_idmap *idmap, struct dentry *dentry,
//                                  struct iattr *attr);
// The loader tells which from the hook's BTF (`KernelOffsets::inode_setattr_idmap`), a
// constant the verifier folds, so each kernel keeps only its own branch.
#[lsm(hook = "inode_setattr")]
pub fn inode_setattr(ctx: LsmContext) -> i32 {
    if maps::offsets().inode_setattr_idmap != 0 {
        prior(&ctx, 3).unwrap_or_else(|| setattr(ctx.arg(1), ctx.arg(2)))
    } else {
        prior(&ctx, 2).unwrap_or_else(|| setattr(ctx.arg(0), ctx.arg(1)))
    }
}

/// An operation of `class` on `dentry` (created in directory inode `dir` for a create, else
/// null): answered by the path hook of the same call when it allowed it, else decided
/// within the dentry's filesystem.
#[inline(always)]
fn asked(dentry: *const u8, dir: *const u8, class: Class) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    if note::answered(dentry, dir, class) {
        return 0;
    }
    within(&agent, dentry, class)
}

/// Two dentries of one operation: `noted` (the one its path hook notes) of class `first`,
/// then `other` of class `second`; answered like [`asked`].
#[inline(always)]
fn pair(noted: *const u8, first: Class, other: *const u8, second: Class) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    if note::answered(noted, core::ptr::null(), first) {
        return 0;
    }
    let verdict = within(&agent, noted, first);
    if verdict != 0 {
        return verdict;
    }
    within(&agent, other, second)
}

/// `notify_change()` of `dentry` with `attr`: a size, mode or owner change as truncate,
/// chmod or chown (answered by their path hook in an ordinary call), explicit times as
/// Utimes. Times set to now (`touch`), and changes that are none of these, return before the
/// walk.
#[inline(always)]
fn setattr(dentry: *const u8, attr: *const u8) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let off = maps::offsets();
    let mut valid: u32 = 0;
    // Unreadable: decided as a change of times (fail closed).
    let class = if !crate::read_vfs::read_into(attr, off.iattr_ia_valid, &mut valid) {
        Class::Utimes
    } else if valid & ATTR_SIZE != 0 {
        Class::Truncate
    } else if valid & (ATTR_UID | ATTR_GID) != 0 {
        // Before the mode: a chown of a set-uid file also clears the bit (ATTR_MODE).
        Class::Chown
    } else if valid & ATTR_MODE != 0 {
        Class::Chmod
    } else if valid & (ATTR_ATIME_SET | ATTR_MTIME_SET) != 0 {
        Class::Utimes
    } else {
        return 0;
    };
    if class != Class::Utimes && note::answered(dentry, core::ptr::null(), class) {
        return 0;
    }
    within(&agent, dentry, class)
}

/// The walk from `dentry` within its filesystem.
#[inline(always)]
fn within(agent: &Agent, dentry: *const u8, class: Class) -> i32 {
    let loc = Loc {
        dentry,
        mnt: core::ptr::null(),
    };
    decide(agent, maps::offsets(), loc, class)
}
