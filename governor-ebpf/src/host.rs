//! Host-wide classes an agent can never use, whatever its policy: the bpf(2) syscall (Bpf),
//! loading kernel modules (KernelModule) and loading a kernel to boot into (Kexec). Each would
//! let an agent change the kernel that enforces on it. And pushing input into a terminal
//! (TtyInject), which would let it type commands into a shell that runs outside the agent.
//!
//! Entry points first, each under the hook's declaration from the kernel's
//! `include/linux/lsm_hook_defs.h` (identical on 6.1 and 6.12; checked against both kernels'
//! BTF). The extra last argument is the previous programs' return value, passed on if
//! non-zero. Decisions follow below the entry points.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::{
    detail::{
        KEXEC_VIA_DATA, KEXEC_VIA_FILE, KEXEC_VIA_INITRAMFS, MODULE_VIA_DATA, MODULE_VIA_FILE,
        MODULE_VIA_REQUEST, TIOCLINUX, TIOCSTI,
    },
    maps::RULE_BUILTIN,
    Class, EventKind, KernelOffsets, Target,
};

use crate::{
    agent::{self, Refusal},
    emit::Name,
    maps,
};

// LSM_HOOK(int, 0, bpf, int cmd, union bpf_attr *attr, unsigned int size)
// (Later kernels append `bool kernel`; both of ours have these three arguments.)
// Called by every bpf(2) command, after the attributes were copied in.
#[lsm(hook = "bpf")]
pub fn bpf(ctx: LsmContext) -> i32 {
    let cmd: i32 = ctx.arg(0);
    if let Some(refused) = agent::prior(&ctx, 3) {
        return refused;
    }
    deny_always(Class::Bpf, cmd as u32 as u64, |_| Name::None)
}

// LSM_HOOK(int, 0, kernel_module_request, char *kmod_name)
// The kernel is about to run modprobe for the current task (module autoload: an unknown
// socket family, filesystem type, ...).
#[lsm(hook = "kernel_module_request")]
pub fn kernel_module_request(ctx: LsmContext) -> i32 {
    let name: *const u8 = ctx.arg(0);
    if let Some(refused) = agent::prior(&ctx, 1) {
        return refused;
    }
    deny_always(Class::KernelModule, MODULE_VIA_REQUEST, |_| Name::Str(name))
}

// LSM_HOOK(int, 0, kernel_read_file, struct file *file, enum kernel_read_file_id id,
//          bool contents)
// finit_module(2) reads the module file with id READING_MODULE, kexec_file_load(2) the kernel
// image and initramfs with READING_KEXEC_IMAGE and READING_KEXEC_INITRAMFS.
#[lsm(hook = "kernel_read_file")]
pub fn kernel_read_file(ctx: LsmContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    let id: u32 = ctx.arg(1);
    if let Some(refused) = agent::prior(&ctx, 3) {
        return refused;
    }
    let (class, detail) = match id {
        READING_MODULE => (Class::KernelModule, MODULE_VIA_FILE),
        READING_KEXEC_IMAGE => (Class::Kexec, KEXEC_VIA_FILE),
        READING_KEXEC_INITRAMFS => (Class::Kexec, KEXEC_VIA_INITRAMFS),
        _ => return 0,
    };
    deny_always(class, detail, |_| Name::File(file))
}

// LSM_HOOK(int, 0, kernel_load_data, enum kernel_load_data_id id, bool contents)
// init_module(2) loads the module image from memory with id LOADING_MODULE; kexec_load(2)
// asks with LOADING_KEXEC_IMAGE before it copies any segment.
#[lsm(hook = "kernel_load_data")]
pub fn kernel_load_data(ctx: LsmContext) -> i32 {
    let id: u32 = ctx.arg(0);
    if let Some(refused) = agent::prior(&ctx, 2) {
        return refused;
    }
    let (class, detail) = match id {
        LOADING_MODULE => (Class::KernelModule, MODULE_VIA_DATA),
        LOADING_KEXEC_IMAGE => (Class::Kexec, KEXEC_VIA_DATA),
        _ => return 0,
    };
    deny_always(class, detail, |_| Name::None)
}

// ---------------------------------------------------------------------------------------

/// `READING_MODULE`, `READING_KEXEC_IMAGE`, `READING_KEXEC_INITRAMFS` of
/// `enum kernel_read_file_id` (the same on 6.1 and 6.12, checked in both kernels' BTF).
const READING_MODULE: u32 = 2;
const READING_KEXEC_IMAGE: u32 = 3;
const READING_KEXEC_INITRAMFS: u32 = 4;
/// `LOADING_MODULE`, `LOADING_KEXEC_IMAGE` of `enum kernel_load_data_id` (likewise).
const LOADING_MODULE: u32 = 2;
const LOADING_KEXEC_IMAGE: u32 = 3;

/// ioctl(2) `cmd` on any file (called from the `file_ioctl` entry points in `crate::task`):
/// TIOCSTI and TIOCLINUX are refused to agents. Other commands return before the agent
/// lookup. TIOCLINUX is refused whatever its subcommand, which the kernel reads from user
/// memory after this hook (a check of it here could be raced).
#[inline(always)]
pub fn tty_ioctl(cmd: u32) -> i32 {
    let detail = u64::from(cmd);
    if detail != TIOCSTI && detail != TIOCLINUX {
        return 0;
    }
    deny_always(Class::TtyInject, detail, |_| Name::None)
}

/// Refuses `class` to any agent, the event named by `name`; everyone else is allowed after
/// the agent lookup.
#[inline(always)]
fn deny_always(class: Class, detail: u64, name: impl FnOnce(&KernelOffsets) -> Name) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let off = maps::offsets();
    let refusal = Refusal {
        kind: EventKind::HostDecision,
        class: class as u32,
        rule_id: RULE_BUILTIN,
        target: Target {
            detail,
            ..Target::default()
        },
        depth: 0,
    };
    agent::refuse_named(&agent, refusal, &off, name(&off))
}
