//! The mount tree (Mount): agents may never change it, in any form. A mount could hide or
//! replace protected data, and an unmount removes it from view (a tmpfs's data is gone with
//! its last mount) or takes governor's own pins away (`/sys/fs/bpf`).
//!
//! Every way the kernel offers is refused, each with its own `detail`:
//! - mount(2) in every form, bind, remount, propagation changes (`sb_mount`);
//! - moving a mount: `mount --move`, move_mount(2), which also attaches what fsmount(2) and
//!   open_tree(2) made (`move_mount`);
//! - unmounting: umount2(2) with any flags, `MNT_DETACH` and `MNT_FORCE` included
//!   (`sb_umount`);
//! - configuring a filesystem through the new mount API: fsconfig(2) setting any parameter
//!   of a context from fsopen(2) or fspick(2) (`fs_context_parse_param`), which is also
//!   where a picked superblock would be reconfigured;
//! - remounting a superblock (`sb_remount`), and pivot_root(2) (`sb_pivotroot`).
//!
//! mount_setattr(2) (read-only, noexec, propagation of an existing mount) passes no LSM
//! hook on 6.1 or 6.12; see README "Enforcement" for what that leaves.
//!
//! Entry points under the hook's declaration from `include/linux/lsm_hook_defs.h`
//! (identical on 6.1 and 6.12, checked against both kernels' BTF). The extra last argument
//! is the previous programs' verdict, passed on if non-zero.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::{
    detail::{
        MOUNT_VIA_FSCONFIG, MOUNT_VIA_MOUNT, MOUNT_VIA_MOVE, MOUNT_VIA_PIVOT_ROOT,
        MOUNT_VIA_REMOUNT, MOUNT_VIA_UMOUNT,
    },
    Class, EventKind,
};

use crate::{
    agent::{self, prior},
    emit::Name,
    read_vfs::{self, Loc},
};

// LSM_HOOK(int, 0, sb_mount, const char *dev_name, const struct path *path,
//          const char *type, unsigned long flags, void *data)
#[lsm(hook = "sb_mount")]
pub fn sb_mount(ctx: LsmContext) -> i32 {
    prior(&ctx, 5).unwrap_or_else(|| at_path(MOUNT_VIA_MOUNT, ctx.arg(1)))
}

// LSM_HOOK(int, 0, move_mount, const struct path *from_path, const struct path *to_path)
#[lsm(hook = "move_mount")]
pub fn move_mount(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| at_path(MOUNT_VIA_MOVE, ctx.arg(1)))
}

// LSM_HOOK(int, 0, sb_umount, struct vfsmount *mnt, int flags)
#[lsm(hook = "sb_umount")]
pub fn sb_umount(ctx: LsmContext) -> i32 {
    let mnt: *const u8 = ctx.arg(0);
    prior(&ctx, 2).unwrap_or_else(|| {
        mount_change(MOUNT_VIA_UMOUNT, |off| {
            Name::Loc(Loc {
                dentry: read_vfs::mnt_root(off, mnt),
                mnt,
            })
        })
    })
}

// LSM_HOOK(int, 0, fs_context_parse_param, struct fs_context *fc, struct fs_parameter *param)
#[lsm(hook = "fs_context_parse_param")]
pub fn fs_context_parse_param(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| mount_change(MOUNT_VIA_FSCONFIG, |_| Name::None))
}

// LSM_HOOK(int, 0, sb_remount, struct super_block *sb, void *mnt_opts)
#[lsm(hook = "sb_remount")]
pub fn sb_remount(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| mount_change(MOUNT_VIA_REMOUNT, |_| Name::None))
}

// LSM_HOOK(int, 0, sb_pivotroot, const struct path *old_path, const struct path *new_path)
#[lsm(hook = "sb_pivotroot")]
pub fn sb_pivotroot(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| at_path(MOUNT_VIA_PIVOT_ROOT, ctx.arg(1)))
}

/// A change of the mount tree at the `struct path *` `path` (where the mount lands).
#[inline(always)]
fn at_path(how: u64, path: *const u8) -> i32 {
    mount_change(how, |off| {
        read_vfs::path_loc(off, path).map_or(Name::None, Name::Loc)
    })
}

/// Refuses a change of the mount tree to any agent; `name` names where it aims, if known.
#[inline(always)]
fn mount_change(how: u64, name: impl FnOnce(&governor_common::KernelOffsets) -> Name) -> i32 {
    agent::always(EventKind::HostDecision, Class::Mount, how, name)
}
