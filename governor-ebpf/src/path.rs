//! Resolved paths for events: the target's path and the acting task's executable, recorded
//! at emit time only (an allowed operation never walks for a name).
//!
//! The walk goes from a dentry up through `d_parent`; at the root of a mount
//! (`vfsmount.mnt_root`) it continues at the mountpoint in the parent mount, so a target
//! reached through a bind mount is named through that mount. Each dentry's name is appended
//! NUL-terminated to a per-CPU scratch buffer (target first), which is then copied into the
//! ring-buffer record: the encoding `governor_common::path::RecordedPath` decodes. The walk
//! runs under `bpf_loop` (6.1's verifier rejects the unrolled loop).

use aya_ebpf::{
    cty::c_void,
    helpers::generated::{bpf_loop, bpf_probe_read_kernel, bpf_probe_read_kernel_str},
};
use governor_common::{
    event::{PATH_PRESENT, PATH_TRUNCATED, PATH_UNROOTED},
    InodeKey, KernelOffsets,
};

use crate::{
    kread, maps,
    vfs::{self, Loc},
};

/// Longest name read per component: `NAME_MAX` plus its NUL.
const NAME_READ: u32 = 256;
/// Mask keeping the write offset provably inside the scratch buffer; every field the walk
/// fills is at most this + 1 bytes long.
const AT_MASK: u32 = 511;
/// Size of the per-CPU scratch buffer: any masked offset plus one whole name fits.
pub const SCRATCH_BYTES: usize = AT_MASK as usize + 1 + NAME_READ as usize;
/// Steps per walk: one per component or mount crossed. More than the 64 of a decision, so a
/// target too deep to decide on is still named (up to the field's size).
const STEPS: u32 = 128;

/// State of one walk, shared with the `bpf_loop` callback [`step`].
#[repr(C)]
struct PathWalk {
    dentry: *const u8,
    /// The `struct vfsmount *` of `dentry`, null when unknown.
    mnt: *const u8,
    /// `mnt->mnt_root`, null when the mount is unknown.
    root: *const u8,
    len: u32,
    cap: u32,
    flags: u32,
    done: u32,
}

/// One step: at the root of a mount, move to its mountpoint in the parent mount (stopping at
/// the top of the tree); otherwise append this dentry's name and move to its parent.
/// Returns 1 to stop.
unsafe extern "C" fn step(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `PathWalk` on the caller's stack, passed to bpf_loop in `walk`.
    let w = unsafe { &mut *ctx.cast::<PathWalk>() };
    let off = maps::offsets();
    let parent = vfs::ptr_at(w.dentry, off.dentry_d_parent);
    if parent.is_null() {
        w.flags |= PATH_TRUNCATED as u32;
        w.done = 1;
        return 1;
    }
    if w.dentry == w.root || parent == w.dentry {
        // The root of a filesystem that is not the root of a known mount: an inode hook's
        // dentry (no mount given) or a disconnected one. Nothing says where it is mounted.
        if w.dentry != w.root {
            w.flags |= PATH_UNROOTED as u32;
            w.done = 1;
            return 1;
        }
        return match vfs::mount_up(&off, w.mnt) {
            Some(up) => {
                w.dentry = up.dentry;
                w.mnt = up.mnt;
                w.root = vfs::mnt_root(&off, up.mnt);
                0
            }
            // The top of the mount tree: the path is complete.
            None => {
                w.done = 1;
                1
            }
        };
    }
    let Some(buf) = maps::GOV_PATH_SCRATCH.get_ptr_mut(0) else {
        w.flags |= PATH_TRUNCATED as u32;
        w.done = 1;
        return 1;
    };
    let name = vfs::ptr_at(w.dentry, off.dentry_d_name_name);
    let at = (w.len & AT_MASK) as usize;
    // SAFETY: `at + NAME_READ <= SCRATCH_BYTES`; the helper copes with a bad source.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            buf.cast::<u8>().wrapping_add(at).cast(),
            NAME_READ,
            name.cast(),
        )
    };
    if n <= 0 || i64::from(w.len) + n > i64::from(w.cap) {
        w.flags |= PATH_TRUNCATED as u32;
        w.done = 1;
        return 1;
    }
    w.len += n as u32;
    w.dentry = parent;
    0
}

/// Walks up from `loc` and copies the names into `out` (`CAP` bytes, already zeroed).
/// Returns the bytes used and the `PATH_*` flags. A null `loc.mnt` means the mount is not
/// known: the walk ends at the filesystem's root, marked [`PATH_UNROOTED`].
#[inline(always)]
pub fn record<const CAP: u32>(off: &KernelOffsets, loc: Loc, out: *mut u8) -> (u16, u16) {
    if off.valid == 0 || loc.dentry.is_null() {
        return (0, 0);
    }
    let mut w = PathWalk {
        dentry: loc.dentry,
        mnt: loc.mnt,
        root: vfs::mnt_root(off, loc.mnt),
        len: 0,
        cap: CAP,
        flags: PATH_PRESENT as u32,
        done: 0,
    };
    // SAFETY: bpf_loop calls `step` with a pointer to `w`, which outlives the call.
    unsafe {
        bpf_loop(
            STEPS,
            step as *mut c_void,
            (&mut w as *mut PathWalk).cast(),
            0,
        )
    };
    if w.done == 0 {
        w.flags |= PATH_TRUNCATED as u32;
    }
    let mut len = w.len;
    if len > CAP {
        len = CAP;
    }
    if let Some(buf) = maps::GOV_PATH_SCRATCH.get_ptr_mut(0) {
        // SAFETY: `out` has room for `CAP >= len` bytes; the source is our scratch buffer.
        if unsafe { bpf_probe_read_kernel(out.cast(), len, buf.cast::<c_void>()) } != 0 {
            len = 0;
            w.flags |= PATH_TRUNCATED as u32;
        }
    } else {
        len = 0;
        w.flags |= PATH_TRUNCATED as u32;
    }
    (len as u16, w.flags as u16)
}

/// Records the current task's executable (`current->mm->exe_file`) into `out` and its inode
/// into `inode`. A task without one (a kernel thread) records nothing.
#[inline(always)]
pub fn record_exe<const CAP: u32>(
    off: &KernelOffsets,
    out: *mut u8,
    inode: &mut InodeKey,
) -> (u16, u16) {
    if off.valid == 0 {
        return (0, 0);
    }
    let mm = vfs::ptr_at(kread::current_task(), off.task_struct_mm);
    let file = vfs::ptr_at(mm, off.mm_struct_exe_file);
    if file.is_null() {
        return (0, 0);
    }
    vfs::inode_key_into(off, vfs::file_inode(off, file), inode);
    let f_path = file.wrapping_add(off.file_f_path as usize);
    let loc = Loc {
        dentry: vfs::ptr_at(f_path, off.path_dentry),
        mnt: vfs::ptr_at(f_path, off.path_mnt),
    };
    record::<CAP>(off, loc, out)
}
