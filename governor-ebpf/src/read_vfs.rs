//! Reading VFS objects (dentry, inode, super_block, path, file, mount) through the
//! BTF-resolved offsets.

use aya_ebpf::helpers::{
    bpf_probe_read_kernel, generated::bpf_probe_read_kernel as bpf_probe_read_kernel_raw,
};
use governor_common::{InodeKey, KernelOffsets};

/// Reads a `T` at `base + off` from kernel memory.
#[inline(always)]
unsafe fn read_at<T>(base: *const u8, off: u32) -> Option<T> {
    // SAFETY: the caller passes a kernel pointer; bpf_probe_read_kernel copes with bad ones.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()).ok() }
}

/// A position in the VFS: a dentry and the mount it was reached through (may be null when
/// the hook gives no mount, e.g. inode hooks).
#[derive(Clone, Copy)]
pub struct Loc {
    pub dentry: *const u8,
    pub mnt: *const u8,
}

/// `struct path *` → [`Loc`].
#[inline(always)]
pub fn path_loc(off: &KernelOffsets, path: *const u8) -> Option<Loc> {
    // SAFETY: probe reads of kernel pointers.
    unsafe {
        Some(Loc {
            dentry: read_at(path, off.path_dentry)?,
            mnt: read_at(path, off.path_mnt)?,
        })
    }
}

/// `struct file *` → where the file's inode lies, as a [`Loc`]: its `f_path`, unless the
/// file's inode is not the inode of that path. A stacked filesystem's backing file on 6.1
/// (`open_with_fake_path()`) carries the overlay's path with the real inode beneath; its
/// place is then one of the real inode's own dentries, in its own filesystem (no mount).
#[inline(always)]
pub fn file_loc(off: &KernelOffsets, file: *const u8) -> Option<Loc> {
    let loc = path_loc(off, file.wrapping_add(off.file_f_path as usize))?;
    let inode = ptr_at(file, off.file_f_inode);
    if inode.is_null() || ptr_at(loc.dentry, off.dentry_d_inode) == inode {
        return Some(loc);
    }
    Some(Loc {
        dentry: alias(off, inode),
        mnt: core::ptr::null(),
    })
}

/// `file->f_mode`.
#[inline(always)]
pub fn file_mode(off: &KernelOffsets, file: *const u8) -> Option<u32> {
    // SAFETY: probe read.
    unsafe { read_at(file, off.file_f_mode) }
}

/// The inode identity of `dentry`, or `None` for a negative dentry or an unreadable chain.
#[inline(always)]
pub fn inode_key(off: &KernelOffsets, dentry: *const u8) -> Option<InodeKey> {
    // SAFETY: walking kernel pointers with probe reads only.
    unsafe {
        let inode: *const u8 = read_at(dentry, off.dentry_d_inode)?;
        if inode.is_null() {
            return None;
        }
        let ino: u64 = read_at(inode, off.inode_i_ino)?;
        let sb: *const u8 = read_at(inode, off.inode_i_sb)?;
        if sb.is_null() {
            return None;
        }
        let dev: u32 = read_at(sb, off.super_block_s_dev)?;
        Some(InodeKey::new(dev, ino))
    }
}

/// `dentry->d_parent`; equal to `dentry` at the root of a filesystem.
#[inline(always)]
pub fn parent(off: &KernelOffsets, dentry: *const u8) -> Option<*const u8> {
    // SAFETY: probe read of a kernel pointer.
    unsafe { read_at(dentry, off.dentry_d_parent) }
}

/// From the root of mount `mnt` (a `struct vfsmount *`) to where it is mounted: the
/// mountpoint dentry and the parent mount. `None` at the top of the mount tree.
#[inline(always)]
pub fn mount_up(off: &KernelOffsets, mnt: *const u8) -> Option<Loc> {
    // SAFETY: `mnt` is embedded in a `struct mount` at `mount_mnt`; probe reads only.
    unsafe {
        let mount = mnt.wrapping_sub(off.mount_mnt as usize);
        let parent: *const u8 = read_at(mount, off.mount_mnt_parent)?;
        if parent.is_null() || parent == mount {
            return None;
        }
        let mountpoint: *const u8 = read_at(mount, off.mount_mnt_mountpoint)?;
        Some(Loc {
            dentry: mountpoint,
            mnt: parent.wrapping_add(off.mount_mnt as usize),
        })
    }
}

/// `mnt->mnt_root` of a `struct vfsmount *`: the dentry shown at the mount's root (null if
/// `mnt` is null or unreadable).
#[inline(always)]
pub fn mnt_root(off: &KernelOffsets, mnt: *const u8) -> *const u8 {
    ptr_at(mnt, off.vfsmount_mnt_root)
}

/// `mnt->mnt_sb->s_magic` of a `struct vfsmount *`: which kind of filesystem the mount is of;
/// `None` if unreadable.
#[inline(always)]
pub fn mnt_magic(off: &KernelOffsets, mnt: *const u8) -> Option<u64> {
    sb_magic(off, ptr_at(mnt, off.vfsmount_mnt_sb))
}

/// `inode->i_sb->s_magic`: which kind of filesystem the inode is on; `None` if unreadable.
#[inline(always)]
pub fn inode_magic(off: &KernelOffsets, inode: *const u8) -> Option<u64> {
    sb_magic(off, ptr_at(inode, off.inode_i_sb))
}

/// `sb->s_magic` of a `struct super_block *`; `None` if unreadable.
#[inline(always)]
fn sb_magic(off: &KernelOffsets, sb: *const u8) -> Option<u64> {
    let mut magic: u64 = 0;
    read_into(sb, off.super_block_s_magic, &mut magic).then_some(magic)
}

/// Copies `dentry->d_name.name` (NUL-terminated) into `buf`.
#[inline(always)]
pub fn name(off: &KernelOffsets, dentry: *const u8, buf: &mut [u8]) {
    // SAFETY: probe reads of kernel memory into a buffer we own.
    unsafe {
        if let Some(ptr) = read_at::<*const u8>(dentry, off.dentry_d_name_name) {
            let _ = aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(ptr, buf);
        }
    }
}

/// Reads a `T` at `base + off` into `out`; false (and `out` zeroed) if unreadable.
///
/// Unlike [`read_at`] there is no `Option` around the value: an `Option` of a raw pointer or
/// array has an undefined payload when `None`, which LLVM may fill from any dead register,
/// and the verifier rejects reads of those. Callers keep `out` initialized instead.
#[inline(always)]
pub(crate) fn read_into<T>(base: *const u8, off: u32, out: &mut T) -> bool {
    if base.is_null() {
        return false;
    }
    // SAFETY: `out` is valid for `size_of::<T>()` bytes; the helper copes with bad sources.
    let ret = unsafe {
        bpf_probe_read_kernel_raw(
            (out as *mut T).cast(),
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(off as usize).cast(),
        )
    };
    ret == 0
}

/// The kernel pointer at `base + off`; null if that is null or unreadable.
#[inline(always)]
pub fn ptr_at(base: *const u8, off: u32) -> *const u8 {
    let mut p: *const u8 = core::ptr::null();
    if read_into(base, off, &mut p) {
        p
    } else {
        core::ptr::null()
    }
}

/// `file->f_inode` (null if unreadable).
#[inline(always)]
pub fn file_inode(off: &KernelOffsets, file: *const u8) -> *const u8 {
    ptr_at(file, off.file_f_inode)
}

/// `inode->i_sb->s_dev`, the kernel `dev_t` of the inode's superblock.
#[inline(always)]
pub fn sb_dev(off: &KernelOffsets, inode: *const u8) -> Option<u32> {
    let mut dev: u32 = 0;
    read_into(
        ptr_at(inode, off.inode_i_sb),
        off.super_block_s_dev,
        &mut dev,
    )
    .then_some(dev)
}

/// Fills `key` with the identity of `inode`; false if it is null or unreadable.
#[inline(always)]
pub fn inode_key_into(off: &KernelOffsets, inode: *const u8, key: &mut InodeKey) -> bool {
    let mut ino: u64 = 0;
    let mut dev: u32 = 0;
    let sb = ptr_at(inode, off.inode_i_sb);
    if !read_into(inode, off.inode_i_ino, &mut ino)
        || !read_into(sb, off.super_block_s_dev, &mut dev)
    {
        return false;
    }
    *key = InodeKey::new(dev, ino);
    true
}

/// Which inode a dentry has, precisely enough to tell a reused `struct dentry` from the one
/// an entry was made for (`dir_cache.rs`): the inode's address, number and generation.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity {
    pub inode: u64,
    pub ino: u64,
    pub generation: u32,
}

/// Fills `out` with who `dentry`'s inode is now; false if it has none or it cannot be read.
#[inline(always)]
pub fn identity_into(off: &KernelOffsets, dentry: *const u8, out: &mut Identity) -> bool {
    let inode = ptr_at(dentry, off.dentry_d_inode);
    if inode.is_null() {
        return false;
    }
    out.inode = inode as u64;
    read_into(inode, off.inode_i_ino, &mut out.ino)
        && read_into(inode, off.inode_i_generation, &mut out.generation)
}

/// One of `inode`'s dentries (the first on its `i_dentry` list), for naming it in an event
/// or walking up from it when only the inode is known; null if it has none or unreadable.
#[inline(always)]
pub fn alias(off: &KernelOffsets, inode: *const u8) -> *const u8 {
    let first = ptr_at(inode, off.inode_i_dentry);
    if first.is_null() {
        return first;
    }
    first.wrapping_sub(off.dentry_d_alias as usize)
}

/// `inode->i_nlink`: how many names the inode has; 0 for memfd, `O_TMPFILE` and deleted
/// files. -1 if unreadable.
#[inline(always)]
pub fn nlink(off: &KernelOffsets, inode: *const u8) -> i64 {
    let mut n: u32 = 0;
    if read_into(inode, off.inode_i_nlink, &mut n) {
        i64::from(n)
    } else {
        -1
    }
}
