//! ioctl(2), one hook for several families: file owners set by ioctl (Signal, in
//! `outside`), pushing input into a terminal (TtyInject, in `host`) and inode flags
//! (Chattr, in `attr`). Every other command returns before the agent lookup.
//!
//! Entry points under the hook's declaration from `include/linux/lsm_hook_defs.h`; the
//! extra last argument is the previous programs' verdict, passed on if non-zero.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::detail::{OWNER_FIOSETOWN, OWNER_SIOCSPGRP};

use crate::{agent, attr, host, outside};

/// `FIOSETOWN` and `SIOCSPGRP` from `<asm-generic/sockios.h>`.
const FIOSETOWN: u32 = 0x8901;
const SIOCSPGRP: u32 = 0x8902;

// LSM_HOOK(int, 0, file_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
#[lsm(hook = "file_ioctl")]
pub fn file_ioctl(ctx: LsmContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    let cmd: u32 = ctx.arg(1);
    agent::prior(&ctx, 3).unwrap_or_else(|| any_ioctl(file, cmd))
}

// LSM_HOOK(int, 0, file_ioctl_compat, struct file *file, unsigned int cmd, unsigned long arg)
// The same from 32-bit tasks (Debian backported this hook to 6.1).
#[lsm(hook = "file_ioctl_compat")]
pub fn file_ioctl_compat(ctx: LsmContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    let cmd: u32 = ctx.arg(1);
    agent::prior(&ctx, 3).unwrap_or_else(|| any_ioctl(file, cmd))
}

/// ioctl `cmd` on `file`, dispatched to the family that decides it.
#[inline(always)]
fn any_ioctl(file: *const u8, cmd: u32) -> i32 {
    match cmd {
        FIOSETOWN => outside::owner_by_pointer(OWNER_FIOSETOWN),
        SIOCSPGRP => outside::owner_by_pointer(OWNER_SIOCSPGRP),
        _ if attr::is_chattr(cmd) => attr::chattr(file, cmd),
        _ => host::tty_ioctl(cmd),
    }
}
