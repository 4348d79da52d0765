//! Host-wide classes an agent can never use, whatever its policy: the bpf(2) syscall (Bpf),
//! loading kernel modules (KernelModule) and loading a kernel to boot into (Kexec). Each would
//! let an agent change the kernel that enforces on it. Pushing input into a terminal
//! (TtyInject), which would let it type commands into a shell that runs outside the agent.
//! Setting the clock (Settime), which leases and the lineage keep time by. And raw and packet
//! sockets (RawSocket), which send around every network rule, unless the agent's policy sets
//! `allow_raw_sockets`.
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
    maps::AGENT_FLAG_ALLOW_RAW_SOCKETS,
    Class, EventKind, KernelOffsets,
};

use crate::{agent, emit::Name};

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

// LSM_HOOK(int, 0, settime, const struct timespec64 *ts, const struct timezone *tz)
// clock_settime(2) of CLOCK_REALTIME, settimeofday(2), stime, and adjtimex(2)/clock_adjtime(2)
// when they change anything (do_adjtimex asks with a null `ts`).
#[lsm(hook = "settime")]
pub fn settime(ctx: LsmContext) -> i32 {
    if let Some(refused) = agent::prior(&ctx, 2) {
        return refused;
    }
    deny_always(Class::Settime, 0, |_| Name::None)
}

// LSM_HOOK(int, 0, socket_create, int family, int type, int protocol, int kern)
// Every socket(2) and socketpair(2), and sockets the kernel makes for itself (`kern` = 1).
#[lsm(hook = "socket_create")]
pub fn socket_create(ctx: LsmContext) -> i32 {
    let family: i32 = ctx.arg(0);
    let ty: i32 = ctx.arg(1);
    let kern: i32 = ctx.arg(3);
    if let Some(refused) = agent::prior(&ctx, 4) {
        return refused;
    }
    raw_socket(family as u32, ty as u32, kern)
}

// ---------------------------------------------------------------------------------------

/// `AF_PACKET` and `SOCK_RAW`; the type's low bits (`SOCK_TYPE_MASK`), without the
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC` flags.
const AF_PACKET: u32 = 17;
const SOCK_RAW: u32 = 3;
const SOCK_TYPE_MASK: u32 = 0xf;

/// A new socket: raw (`SOCK_RAW` of any family) and packet (`AF_PACKET`) sockets are refused
/// to agents unless their policy allows them; the kernel's own sockets are not decided.
/// Every other socket returns before the agent lookup.
#[inline(always)]
fn raw_socket(family: u32, ty: u32, kern: i32) -> i32 {
    if kern != 0 || (family != AF_PACKET && ty & SOCK_TYPE_MASK != SOCK_RAW) {
        return 0;
    }
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    if agent.info.flags & AGENT_FLAG_ALLOW_RAW_SOCKETS != 0 {
        return 0;
    }
    let detail = u64::from(family) << 32 | u64::from(ty & SOCK_TYPE_MASK);
    agent::builtin(
        agent,
        EventKind::HostDecision,
        Class::RawSocket,
        detail,
        |_| Name::None,
    )
}

/// `READING_MODULE`, `READING_KEXEC_IMAGE`, `READING_KEXEC_INITRAMFS` of
/// `enum kernel_read_file_id` (the same on 6.1 and 6.12, checked in both kernels' BTF).
const READING_MODULE: u32 = 2;
const READING_KEXEC_IMAGE: u32 = 3;
const READING_KEXEC_INITRAMFS: u32 = 4;
/// `LOADING_MODULE`, `LOADING_KEXEC_IMAGE` of `enum kernel_load_data_id` (likewise).
const LOADING_MODULE: u32 = 2;
const LOADING_KEXEC_IMAGE: u32 = 3;

/// ioctl(2) `cmd` on any file (called from the `file_ioctl` entry points in `crate::ioctl`):
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

/// Refuses `class` to any agent, the event named by `name` ([`agent::always`]).
#[inline(always)]
fn deny_always(class: Class, detail: u64, name: impl FnOnce(&KernelOffsets) -> Name) -> i32 {
    agent::always(EventKind::HostDecision, class, detail, name)
}
