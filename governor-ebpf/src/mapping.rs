//! Mappings of files, which act on the file with no further system call:
//! - executable mappings are executions (Exec, decided in `crate::exec_setid`);
//! - shared writable mappings are writes (Write, decided in `crate::file`). After
//!   `mmap(MAP_SHARED, PROT_WRITE)`, or an `mprotect(PROT_WRITE)` of a shared mapping, every
//!   store changes the file while no write(2) is ever asked, through a descriptor opened by
//!   anyone, inherited or handed over. Such a mapping also outlives any lease, so a lease
//!   does not lift it: a resource whose writes need a lease is never mapped shared and
//!   writable by an agent (private mappings, `MAP_PRIVATE`, never reach the file).
//!
//! Entry points under the hook's declaration from `include/linux/lsm_hook_defs.h`
//! (identical on 6.1 and 6.12); the extra last argument is the previous programs' verdict,
//! passed on if non-zero.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::detail::{EXEC_VIA_MMAP, WRITE_VIA_MMAP, WRITE_VIA_MPROTECT};

use crate::{agent, exec_setid, file, maps, read_task, read_vfs};

/// `PROT_WRITE` and `MAP_SHARED` (also set in `MAP_SHARED_VALIDATE`) from
/// `<asm-generic/mman-common.h>`, `<linux/mman.h>`.
const PROT_WRITE: u64 = 0x2;
const MAP_SHARED: u64 = 0x1;
/// `VM_WRITE`, `VM_SHARED`, `VM_MAYWRITE` from `<linux/mm.h>`.
const VM_WRITE: u64 = 0x2;
const VM_SHARED: u64 = 0x8;
const VM_MAYWRITE: u64 = 0x20;

// LSM_HOOK(int, 0, mmap_file, struct file *file, unsigned long reqprot,
//          unsigned long prot, unsigned long flags)
// `file` is NULL for anonymous mappings.
#[lsm(hook = "mmap_file")]
pub fn mmap_file(ctx: LsmContext) -> i32 {
    let file = read_task::nullable_arg(&ctx, 0);
    let prot: u64 = ctx.arg(2);
    let flags: u64 = ctx.arg(3);
    if let Some(refused) = agent::prior(&ctx, 4) {
        return refused;
    }
    let verdict = exec_setid::exec_mapping(file, prot, EXEC_VIA_MMAP);
    if verdict != 0 {
        return verdict;
    }
    shared_write(file, prot, flags)
}

// LSM_HOOK(int, 0, file_mprotect, struct vm_area_struct *vma, unsigned long reqprot,
//          unsigned long prot)
#[lsm(hook = "file_mprotect")]
pub fn file_mprotect(ctx: LsmContext) -> i32 {
    let vma: *const u8 = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    if let Some(refused) = agent::prior(&ctx, 3) {
        return refused;
    }
    let verdict = exec_setid::exec_remap(vma, prot);
    if verdict != 0 {
        return verdict;
    }
    remap_write(vma, prot)
}

/// mmap(2) of `file` with `prot` and `flags`: a shared writable mapping of a file open for
/// writing is a write. Anything else returns before the agent lookup.
#[inline(always)]
fn shared_write(file: *const u8, prot: u64, flags: u64) -> i32 {
    if file.is_null() || prot & PROT_WRITE == 0 || flags & MAP_SHARED == 0 {
        return 0;
    }
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    // A file not open for writing cannot be mapped so (the kernel answers EACCES itself);
    // unreadable modes are decided (fail closed).
    // Only a file open for writing can be mapped shared and writable.
    if read_vfs::file_mode(off, file).is_some_and(|m| m & crate::file::FMODE_WRITE == 0) {
        return 0;
    }
    file::mapped(agent, file, WRITE_VIA_MMAP)
}

/// mprotect(2) of `vma` to `prot`: adding `PROT_WRITE` to a shared mapping of a file that
/// may be written is a write. Anything else returns before the agent lookup.
#[inline(always)]
fn remap_write(vma: *const u8, prot: u64) -> i32 {
    if prot & PROT_WRITE == 0 {
        return 0;
    }
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let mut flags: u64 = 0;
    let mut file: *const u8 = core::ptr::null();
    let readable = off.valid != 0
        && read_vfs::read_into(vma, off.vm_area_struct_vm_flags, &mut flags)
        && read_vfs::read_into(vma, off.vm_area_struct_vm_file, &mut file);
    if readable
        && (file.is_null()
            || flags & VM_SHARED == 0
            || flags & VM_MAYWRITE == 0
            || flags & VM_WRITE != 0)
    {
        // Anonymous or private memory, a mapping that cannot be made writable (the kernel
        // refuses it itself), or one already writable (decided when it became so).
        return 0;
    }
    // Unreadable: `mapped` fails closed on the null file.
    file::mapped(
        agent,
        if readable { file } else { core::ptr::null() },
        WRITE_VIA_MPROTECT,
    )
}
