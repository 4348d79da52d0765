//! Reading VFS objects (dentry, inode, super_block) through the BTF-resolved offsets.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use governor_common::{InodeKey, KernelOffsets};

/// Reads a `T` at `base + off` from kernel memory.
#[inline(always)]
unsafe fn read_at<T>(base: *const u8, off: u32) -> Option<T> {
    // SAFETY: the caller passes a kernel pointer; bpf_probe_read_kernel copes with bad ones.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()).ok() }
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
