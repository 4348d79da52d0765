//! Host-wide classes an agent can never use, whatever its policy: the bpf(2) syscall (Bpf)
//! and loading kernel modules (KernelModule). Either would let an agent change the kernel
//! that enforces on it.
//!
//! Entry points first, each under the hook's declaration from the kernel's
//! `include/linux/lsm_hook_defs.h` (identical on 6.1 and 6.12; checked against both kernels'
//! BTF). The extra last argument is the previous programs' return value, passed on if
//! non-zero. Decisions follow below the entry points.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::{
    detail::{MODULE_VIA_DATA, MODULE_VIA_FILE, MODULE_VIA_REQUEST},
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
// finit_module(2) reads the module file with id READING_MODULE.
#[lsm(hook = "kernel_read_file")]
pub fn kernel_read_file(ctx: LsmContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    let id: u32 = ctx.arg(1);
    if let Some(refused) = agent::prior(&ctx, 3) {
        return refused;
    }
    if id != READING_MODULE {
        return 0;
    }
    deny_always(Class::KernelModule, MODULE_VIA_FILE, |_| Name::File(file))
}

// LSM_HOOK(int, 0, kernel_load_data, enum kernel_load_data_id id, bool contents)
// init_module(2) loads the module image from memory with id LOADING_MODULE.
#[lsm(hook = "kernel_load_data")]
pub fn kernel_load_data(ctx: LsmContext) -> i32 {
    let id: u32 = ctx.arg(0);
    if let Some(refused) = agent::prior(&ctx, 2) {
        return refused;
    }
    if id != LOADING_MODULE {
        return 0;
    }
    deny_always(Class::KernelModule, MODULE_VIA_DATA, |_| Name::None)
}

// ---------------------------------------------------------------------------------------

/// `READING_MODULE` of `enum kernel_read_file_id` (2 on 6.1 and 6.12).
const READING_MODULE: u32 = 2;
/// `LOADING_MODULE` of `enum kernel_load_data_id` (2 on 6.1 and 6.12).
const LOADING_MODULE: u32 = 2;

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
