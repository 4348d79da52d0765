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
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_loop, bpf_probe_read_kernel, bpf_probe_read_kernel_str},
    },
};
use governor_common::{
    event::{PATH_PRESENT, PATH_TRUNCATED, PATH_UNROOTED},
    InodeKey, KernelOffsets,
};

use crate::{
    maps, read_task,
    read_vfs::{self, Loc},
};

/// Longest name read per component: `NAME_MAX` plus its NUL.
const NAME_READ: u32 = 256;
/// Mask keeping the write offset provably inside the scratch buffer; every field the walk
/// fills is at most this + 1 bytes long.
const AT_MASK: u32 = 511;
/// Size of the names buffer: any masked offset plus one whole name fits.
const NAMES_BYTES: usize = AT_MASK as usize + 1 + NAME_READ as usize;
/// Steps per walk: one per component or mount crossed. More than the 64 of a decision, so a
/// target too deep to decide on is still named (up to the field's size).
const STEPS: u32 = 128;

/// The per-CPU scratch value (`GOV_PATH_SCRATCH`): one walk's state and the names it
/// collected.
///
/// The state lives in a map value, not on the stack, on purpose: the verifier does not track
/// values in map memory, so every `bpf_loop` iteration of [`step`] starts from the same
/// verifier state and is checked once. Tracked on the stack, the growing `len` would make
/// each iteration a new state to explore.
///
/// Programs do not migrate between CPUs while they run, but on a preemptible kernel another
/// task may run the walk on the same CPU between two steps of ours. `owner` detects that: a
/// walk that finds another owner stops and records no components, marked truncated. (The
/// decision never depends on this buffer, only the event's description.)
#[repr(C)]
pub struct Scratch {
    /// `bpf_get_current_pid_tgid()` of the task whose walk this is.
    owner: u64,
    /// Current dentry.
    dentry: u64,
    /// Its `struct vfsmount *`, 0 when unknown.
    mnt: u64,
    /// `mnt->mnt_root`, 0 when the mount is unknown.
    root: u64,
    len: u32,
    cap: u32,
    flags: u32,
    done: u32,
    names: [u8; NAMES_BYTES],
    /// Never written, so all zero (map values start zeroed): the source for clearing record
    /// fields with one helper call. Plain assignment of a zero array compiles to a call of
    /// `memset`, a byte loop the verifier would walk through once per byte.
    zeros: [u8; ZEROS_BYTES],
}

/// Size of [`Scratch::zeros`]: the largest field cleared.
const ZEROS_BYTES: usize = 512;

/// Zeroes `N` bytes at `out` (`N <= ZEROS_BYTES`) from the scratch map's zero area.
#[inline(always)]
pub fn clear<const N: u32>(out: *mut u8) {
    const { assert!(N as usize <= ZEROS_BYTES) };
    if let Some(w) = maps::GOV_PATH_SCRATCH.get_ptr(0) {
        // SAFETY: `out` has room for `N` bytes; the source is our own map value.
        unsafe { bpf_probe_read_kernel(out.cast(), N, (*w).zeros.as_ptr().cast()) };
    }
}

/// One step: at the root of a mount, move to its mountpoint in the parent mount (stopping at
/// the top of the tree); otherwise append this dentry's name and move to its parent.
/// Returns 1 to stop.
unsafe extern "C" fn step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(w) = maps::GOV_PATH_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: our CPU's scratch value; `owner` tells whether another walk took it over.
    let w = unsafe { &mut *w };
    if w.owner != bpf_get_current_pid_tgid() {
        return 1;
    }
    let off = maps::offsets();
    let dentry = w.dentry as *const u8;
    let parent = read_vfs::ptr_at(dentry, off.dentry_d_parent);
    if parent.is_null() {
        w.flags |= PATH_TRUNCATED as u32;
        w.done = 1;
        return 1;
    }
    if w.dentry == w.root || parent == dentry {
        // The root of a filesystem that is not the root of a known mount: an inode hook's
        // dentry (no mount given) or a disconnected one. Nothing says where it is mounted.
        if w.dentry != w.root {
            w.flags |= PATH_UNROOTED as u32;
            w.done = 1;
            return 1;
        }
        return match read_vfs::mount_up(&off, w.mnt as *const u8) {
            Some(up) => {
                w.dentry = up.dentry as u64;
                w.mnt = up.mnt as u64;
                w.root = read_vfs::mnt_root(&off, up.mnt) as u64;
                0
            }
            // The top of the mount tree: the path is complete.
            None => {
                w.done = 1;
                1
            }
        };
    }
    let name = read_vfs::ptr_at(dentry, off.dentry_d_name_name);
    let at = (w.len & AT_MASK) as usize;
    // SAFETY: `at + NAME_READ <= NAMES_BYTES`; the helper copes with a bad source.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            w.names.as_mut_ptr().wrapping_add(at).cast(),
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
    w.dentry = parent as u64;
    0
}

/// Walks up from `loc` and copies at most `CAP` bytes of names into `out` (already zeroed).
/// Returns the bytes used and the `PATH_*` flags. A null `loc.mnt` means the mount is not
/// known: the walk ends at the filesystem's root, marked [`PATH_UNROOTED`].
///
/// `MASK` (a power of two minus one, at least `CAP`) bounds the copy for the verifier, which
/// knows nothing of the length read back from the map: `out + MASK` must stay inside the
/// record. A mask holds where a compare-and-clamp does not, because LLVM may spill the length
/// before comparing it and pass the unchecked copy.
#[inline(always)]
pub fn record<const CAP: u32, const MASK: u32>(
    off: &KernelOffsets,
    loc: Loc,
    out: *mut u8,
) -> (u16, u16) {
    if off.valid == 0 || loc.dentry.is_null() {
        return (0, 0);
    }
    let Some(w) = maps::GOV_PATH_SCRATCH.get_ptr_mut(0) else {
        return (0, (PATH_PRESENT | PATH_TRUNCATED));
    };
    let owner = bpf_get_current_pid_tgid();
    // SAFETY: our CPU's scratch value (see `Scratch`).
    unsafe {
        (*w).owner = owner;
        (*w).dentry = loc.dentry as u64;
        (*w).mnt = loc.mnt as u64;
        (*w).root = read_vfs::mnt_root(off, loc.mnt) as u64;
        (*w).len = 0;
        (*w).cap = CAP;
        (*w).flags = PATH_PRESENT as u32;
        (*w).done = 0;
    }
    // SAFETY: `step` keeps its state in the scratch map and ignores its context.
    unsafe { bpf_loop(STEPS, step as *mut c_void, core::ptr::null_mut(), 0) };
    // SAFETY: as above; the loop is over.
    unsafe {
        let mut flags = (*w).flags;
        if (*w).done == 0 {
            flags |= PATH_TRUNCATED as u32;
        }
        // The walk never goes past `CAP <= MASK`, so the mask changes nothing at run time.
        let mut len = (*w).len & MASK;
        // `out` has room for `MASK >= len` bytes; the source is our scratch buffer.
        if bpf_probe_read_kernel(out.cast(), len, (*w).names.as_ptr().cast()) != 0
            || (*w).owner != owner
        {
            // Unreadable, or taken over by another walk before or during the copy: the
            // bytes copied are not ours, and `len = 0` makes the reader ignore them.
            len = 0;
            flags = (PATH_PRESENT | PATH_TRUNCATED) as u32;
        }
        (len as u16, flags as u16)
    }
}

/// Records the current task's executable (`current->mm->exe_file`) into `out` and its inode
/// into `inode`. A task without one (a kernel thread) records nothing.
#[inline(always)]
pub fn record_exe<const CAP: u32, const MASK: u32>(
    off: &KernelOffsets,
    out: *mut u8,
    inode: &mut InodeKey,
) -> (u16, u16) {
    if off.valid == 0 {
        return (0, 0);
    }
    let mm = read_vfs::ptr_at(read_task::current_task(), off.task_struct_mm);
    let file = read_vfs::ptr_at(mm, off.mm_struct_exe_file);
    if file.is_null() {
        return (0, 0);
    }
    read_vfs::inode_key_into(off, read_vfs::file_inode(off, file), inode);
    let f_path = file.wrapping_add(off.file_f_path as usize);
    let loc = Loc {
        dentry: read_vfs::ptr_at(f_path, off.path_dentry),
        mnt: read_vfs::ptr_at(f_path, off.path_mnt),
    };
    record::<CAP, MASK>(off, loc, out)
}
