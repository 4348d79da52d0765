//! A create is one decision. `open(O_CREAT)` of a new file and `mknod(2)` of a regular file
//! ask `security_path_mknod` (with the directory's path, so the walk crosses mounts) and,
//! a few instructions later in the same call (`may_o_create()`, `do_mknodat()` →
//! `vfs_create()`), `security_inode_create` for the very same dentry, without a mount.
//! `inode_create` is hooked for stacked filesystems, which create on the filesystem beneath
//! (overlayfs: its upper layer) through `vfs_create()` alone, with that filesystem's own
//! dentry and directory.
//!
//! For the same dentry the second ask adds nothing: the walk with a mount first follows
//! `d_parent` to the filesystem's root, exactly the walk without one, and only then goes on
//! through the mountpoints. So what `path_mknod` allowed (a plain allow, a lease, or
//! observe mode's would-be deny), `inode_create` would allow with the same rule, and would
//! emit a second event for a leased or observed create. `path_mknod` therefore leaves a note
//! of its allow in a per-CPU slot ([`remember`]), and `inode_create` takes it as its answer
//! ([`answered`]) when the note is this task's, for this dentry and this directory inode,
//! and fresh; the note is used up either way.
//!
//! A note that does not match costs nothing but the full check: the task moved to another
//! CPU in between, another task's create on the same CPU wrote the slot, or the call failed
//! between the hooks. A stacked filesystem's own `vfs_create()` names another dentry and
//! another directory inode, so it is always checked in full.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, generated::bpf_ktime_get_ns};

use crate::maps;

/// How long a note stands, in nanoseconds of `bpf_ktime_get_ns`: far longer than the
/// instructions between the two hooks, far too short for the task to start another create
/// of the same dentry without `path_mknod` noting it first.
const WINDOW_NS: u64 = 1_000_000;

/// The slot of `maps::CREATE_ASKED`: an allowed `path_mknod` of a regular file.
#[repr(C)]
pub struct Asked {
    /// `bpf_get_current_pid_tgid()` of the task that asked.
    pid_tgid: u64,
    /// The `struct dentry *` being created.
    dentry: u64,
    /// The `struct inode *` of its directory.
    dir: u64,
    /// When the note lapses (0: used up).
    not_after_ns: u64,
}

const _: () = assert!(core::mem::size_of::<Asked>() == 32);

/// Notes that `path_mknod` allowed the current task to create `dentry` in the directory
/// `dir` (its inode).
#[inline(always)]
pub fn remember(dentry: *const u8, dir: *const u8) {
    if dir.is_null() {
        return;
    }
    let Some(slot) = maps::GOV_CREATE_ASKED.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a pointer to this CPU's map value, valid for the program run.
    unsafe {
        *slot = Asked {
            pid_tgid: bpf_get_current_pid_tgid(),
            dentry: dentry as u64,
            dir: dir as u64,
            not_after_ns: now + WINDOW_NS,
        };
    }
}

/// Whether `inode_create` of `dentry` in `dir` is the second ask of a create whose
/// `path_mknod` the current task was just allowed; the note is used up.
#[inline(always)]
pub fn answered(dentry: *const u8, dir: *const u8) -> bool {
    let Some(slot) = maps::GOV_CREATE_ASKED.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: a pointer to this CPU's map value, valid for the program run.
    let slot = unsafe { &mut *slot };
    let me = bpf_get_current_pid_tgid();
    if slot.not_after_ns == 0
        || slot.pid_tgid != me
        || slot.dentry != dentry as u64
        || slot.dir != dir as u64
    {
        return false;
    }
    // SAFETY: plain helper call.
    let fresh = unsafe { bpf_ktime_get_ns() } < slot.not_after_ns;
    slot.not_after_ns = 0;
    fresh
}
