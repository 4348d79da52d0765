//! A path hook's answer serves the inode hook of the same call.
//!
//! Most file operations ask the kernel's security hooks twice for the same dentry: a path
//! hook, with the mount (`security_path_unlink`, `_rename`, `_mknod`, `_chmod`, ...), and a
//! few instructions later in the same call an inode hook, without one (`security_inode_unlink`,
//! `_rename`, `_create`, `_setattr`, ...). governor decides at the path hook, whose walk
//! crosses mounts. The inode hooks are there for what asks them alone: stacked filesystems
//! (overlayfs) carry out an operation on the filesystem beneath, its upper layer, with that
//! filesystem's own dentries and no path hook (`crate::stacked`).
//!
//! For the same dentry the second ask adds nothing: the walk with a mount first follows
//! `d_parent` to the filesystem's root, exactly the walk without one, and only then goes on
//! through the mountpoints. So what a path hook allowed (a plain allow, a lease, or observe
//! mode's would-be deny), the inode hook would allow with the same rule, and would emit a
//! second event for a leased or observed operation. The path hook therefore leaves a note of
//! its allow in a per-CPU slot ([`remember`]), and the inode hook takes it as its answer
//! ([`answered`]) when the note is this task's, for this dentry (and, for a create, this
//! directory inode) and this class, and fresh; the note is used up either way. The class
//! matters: the walk within the filesystem is a prefix of the path hook's walk only for the
//! same question (a chown that also clears set-uid bits is asked as a chown both times).
//!
//! A note that does not match costs nothing but the full check: the task moved to another
//! CPU in between, another task's operation on the same CPU wrote the slot, or the call
//! failed between the hooks. A stacked filesystem's own operation names another dentry, so
//! it is always checked in full.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, generated::bpf_ktime_get_ns};

use governor_common::Class;

use crate::maps;

/// How long a note stands, in nanoseconds of `bpf_ktime_get_ns`: far longer than the
/// instructions between the two hooks, even on an emulated, loaded machine (1 ms was too
/// short under QEMU TCG on 6.1: an observed unlink was recorded twice); a stale note could
/// only answer the same task's same question about the same dentry, which the path hook had
/// just allowed.
const WINDOW_NS: u64 = 50_000_000;

/// The slot of `maps::PATH_NOTE`: an allowed path hook.
#[repr(C)]
pub struct Note {
    /// `bpf_get_current_pid_tgid()` of the task that asked.
    pid_tgid: u64,
    /// The `struct dentry *` the path hook allowed an operation on.
    dentry: u64,
    /// For a create, the `struct inode *` of its directory (the inode hook names it too);
    /// else 0.
    dir: u64,
    /// When the note lapses (0: used up).
    not_after_ns: u64,
    /// The class the path hook allowed (`Class as u32`).
    class: u64,
}

const _: () = assert!(core::mem::size_of::<Note>() == 40);

/// Notes that a path hook allowed the current task an operation of `class` on `dentry` (in
/// directory inode `dir` for a create, else null).
#[inline(always)]
pub fn remember(dentry: *const u8, dir: *const u8, class: Class) {
    let Some(slot) = maps::GOV_PATH_NOTE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a pointer to this CPU's map value, valid for the program run.
    unsafe {
        *slot = Note {
            pid_tgid: bpf_get_current_pid_tgid(),
            dentry: dentry as u64,
            dir: dir as u64,
            not_after_ns: now + WINDOW_NS,
            class: class as u64,
        };
    }
}

/// Whether the inode hook's ask of `class` about `dentry` (in `dir` for a create, else null)
/// is the second ask of an operation whose path hook the current task was just allowed; the
/// note is used up.
#[inline(always)]
pub fn answered(dentry: *const u8, dir: *const u8, class: Class) -> bool {
    let Some(slot) = maps::GOV_PATH_NOTE.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: a pointer to this CPU's map value, valid for the program run.
    let slot = unsafe { &mut *slot };
    let me = bpf_get_current_pid_tgid();
    if slot.not_after_ns == 0
        || slot.pid_tgid != me
        || slot.dentry != dentry as u64
        || slot.dir != dir as u64
        || slot.class != class as u64
    {
        return false;
    }
    // SAFETY: plain helper call.
    let fresh = unsafe { bpf_ktime_get_ns() } < slot.not_after_ns;
    slot.not_after_ns = 0;
    fresh
}
