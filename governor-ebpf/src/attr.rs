//! Inode attributes that no path hook decides: inode flags (Chattr) and timestamps (Utimes).
//!
//! - `chattr` sets flags through the `FS_IOC_SETFLAGS` ioctl (`FS_IOC32_SETFLAGS` from
//!   32-bit tasks) or `FS_IOC_FSSETXATTR`: immutable (`+i`) and append-only (`+a`) would let
//!   an agent freeze a protected file, or governor's own lease store and lineage database,
//!   against their owners. The ioctl entry point is `crate::ioctl`.
//! - `utime(2)`, `utimensat(2)` and `futimens(3)` with explicit times reach the kernel's
//!   `notify_change()` with `ATTR_ATIME_SET`/`ATTR_MTIME_SET`, whose one hook is
//!   `inode_setattr`. Timestamps are what forensics reads; setting them back hides a change.
//!   Setting them to the current time (`touch FILE`, `UTIME_NOW`) records no false time and
//!   is what every write does: not decided.
//!
//! `inode_setattr` is given no mount, so its walk stays within the inode's filesystem (the
//! daemon registers the roots of filesystems mounted inside protected trees, which that walk
//! then meets). chmod, chown and truncate also pass `inode_setattr`, but are decided by their
//! own path hooks; here they return before the agent lookup.

use governor_common::{
    detail::{FS_IOC_FSSETXATTR, FS_IOC_SETFLAGS},
    Class,
};

use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    agent::{self, prior},
    file, maps,
    vfs::Loc,
    walk::{decide, Leased},
};

/// `FS_IOC32_SETFLAGS`: `FS_IOC_SETFLAGS` as a 32-bit task encodes it.
const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;

/// `ATTR_*` bits of `struct iattr::ia_valid` (include/linux/fs.h).
const ATTR_MODE: u32 = 1 << 0;
const ATTR_UID: u32 = 1 << 1;
const ATTR_GID: u32 = 1 << 2;
const ATTR_SIZE: u32 = 1 << 3;
const ATTR_ATIME_SET: u32 = 1 << 7;
const ATTR_MTIME_SET: u32 = 1 << 8;

// 6.1:  LSM_HOOK(int, 0, inode_setattr, struct dentry *dentry, struct iattr *attr)
// 6.12: LSM_HOOK(int, 0, inode_setattr, struct mnt_idmap *idmap, struct dentry *dentry,
//                struct iattr *attr)
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

/// Whether ioctl `cmd` sets inode flags.
#[inline(always)]
pub fn is_chattr(cmd: u32) -> bool {
    u64::from(cmd) == FS_IOC_SETFLAGS
        || u64::from(cmd) == FS_IOC_FSSETXATTR
        || cmd == FS_IOC32_SETFLAGS
}

/// ioctl `cmd` setting the flags of the open `file` (the command is the event's `detail`).
#[inline(always)]
pub fn chattr(file: *const u8, cmd: u32) -> i32 {
    file::at_file(file, Class::Chattr, Leased::Record, u64::from(cmd))
}

/// `notify_change()` of `dentry` with `attr`: decided as Utimes when it sets explicit times
/// (and nothing a path hook decides).
#[inline(always)]
fn setattr(dentry: *const u8, attr: *const u8) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let mut valid: u32 = 0;
    if crate::vfs::read_into(attr, off.iattr_ia_valid, &mut valid)
        && (valid & (ATTR_ATIME_SET | ATTR_MTIME_SET) == 0
            || valid & (ATTR_MODE | ATTR_UID | ATTR_GID | ATTR_SIZE) != 0)
    {
        return 0;
    }
    // Unreadable: decided as a change of times (fail closed).
    let loc = Loc {
        dentry,
        mnt: core::ptr::null(),
    };
    decide(agent, off, loc, Class::Utimes)
}
