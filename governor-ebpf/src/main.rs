//! governor's kernel programs.
//!
//! Entry points are thin: each hook reads its arguments and hands them to the module for its
//! hook family (`file`), which decides. The process classes (`task`) and host-wide classes
//! (`host`) keep their entry points at the top of their own modules. Shared layouts and map names live in `governor-common`.
#![no_std]
#![no_main]

mod agent;
mod emit;
mod file;
mod host;
mod kread;
mod maps;
mod task;
mod vfs;

use aya_ebpf::{macros::lsm, programs::LsmContext};

// int security_path_unlink(const struct path *dir, struct dentry *dentry);
#[lsm(hook = "path_unlink")]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    let dentry: *const u8 = ctx.arg(1);
    let retval: i32 = ctx.arg(2);
    if retval != 0 {
        return retval;
    }
    file::decide(dentry, governor_common::Class::Unlink)
}

// int security_path_rmdir(const struct path *dir, struct dentry *dentry);
#[lsm(hook = "path_rmdir")]
pub fn path_rmdir(ctx: LsmContext) -> i32 {
    let dentry: *const u8 = ctx.arg(1);
    let retval: i32 = ctx.arg(2);
    if retval != 0 {
        return retval;
    }
    file::decide(dentry, governor_common::Class::Rmdir)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
