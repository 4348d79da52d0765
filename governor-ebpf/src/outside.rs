//! Acting on tasks outside the agent: signals (Signal), ptrace and writes to `/proc/PID` files
//! (Ptrace), and changing how they run (TaskControl). Each is decided on the target task:
//! allowed inside the agent's own cgroup subtree, refused outside it, and refused when that
//! cannot be told (fail closed).
//!
//! Signals include the ones the kernel sends later on an agent's behalf: a file's owner
//! (fcntl F_SETOWN, ...) gets SIGIO, or any signal F_SETSIG picks, whenever the file has I/O,
//! and that delivery passes no task_kill check. So an agent may only make itself an owner.
//!
//! Task control is the kernel's other way to stop a task without a signal:
//! `prlimit(PID, RLIMIT_CPU, 1s)` has the kernel SIGKILL it once it used a second of CPU,
//! `SCHED_IDLE` or nice 19 starve it, an idle I/O class stalls it.
//!
//! Entry points first, each under the hook's declaration from the kernel's
//! `include/linux/lsm_hook_defs.h` (identical on 6.1 and 6.12; checked against both kernels'
//! BTF). The hooks get one extra argument, the previous BPF-LSM programs' verdict: a non-zero
//! value is passed on unchanged. Decisions follow below the entry points.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::lsm, programs::LsmContext};
use governor_common::{
    detail::{
        self, OWNER_F_SETOWN, OWNER_F_SETOWN_EX, PTRACE_VIA_PROC_WRITE, TASK_VIA_IOPRIO,
        TASK_VIA_NICE, TASK_VIA_SCHEDULER,
    },
    maps::{Counter, RULE_BUILTIN, RULE_UNRESOLVED},
    Class, KernelOffsets,
};

use crate::{
    agent::{self, Agent, Refusal},
    emit::{self, Name},
    maps,
    read_task::{self, Relation},
    read_vfs,
};

// LSM_HOOK(int, 0, task_kill, struct task_struct *p, struct kernel_siginfo *info,
//          int sig, const struct cred *cred)
// `cred` is NULL unless the kernel signals on someone else's behalf.
#[lsm(hook = "task_kill")]
pub fn task_kill(ctx: LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    let sig: i32 = ctx.arg(2);
    let cred = read_task::nullable_arg(&ctx, 3);
    if let Some(refused) = agent::prior(&ctx, 4) {
        return refused;
    }
    signal(target, sig, cred)
}

// LSM_HOOK(int, 0, ptrace_access_check, struct task_struct *child, unsigned int mode)
#[lsm(hook = "ptrace_access_check")]
pub fn ptrace_access_check(ctx: LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    let mode: u32 = ctx.arg(1);
    if let Some(refused) = agent::prior(&ctx, 2) {
        return refused;
    }
    ptrace(target, mode)
}

// LSM_HOOK(int, 0, file_fcntl, struct file *file, unsigned int cmd, unsigned long arg)
// F_SETOWN/F_SETOWN_EX make a task the file's owner, signalled by the kernel on I/O
// without a task_kill check.
#[lsm(hook = "file_fcntl")]
pub fn file_fcntl(ctx: LsmContext) -> i32 {
    let cmd: u32 = ctx.arg(1);
    let arg: u64 = ctx.arg(2);
    if let Some(refused) = agent::prior(&ctx, 3) {
        return refused;
    }
    match cmd {
        F_SETOWN => owner_by_value(arg as i32),
        F_SETOWN_EX => owner_by_pointer(OWNER_F_SETOWN_EX),
        _ => 0,
    }
}

// LSM_HOOK(int, 0, task_setnice, struct task_struct *p, int nice)
// setpriority(2), nice(2) of another task.
#[lsm(hook = "task_setnice")]
pub fn task_setnice(ctx: LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    agent::prior(&ctx, 2).unwrap_or_else(|| control(target, TASK_VIA_NICE))
}

// LSM_HOOK(int, 0, task_setscheduler, struct task_struct *p)
// sched_setscheduler(2), sched_setparam(2), sched_setattr(2), sched_setaffinity(2).
#[lsm(hook = "task_setscheduler")]
pub fn task_setscheduler(ctx: LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    agent::prior(&ctx, 1).unwrap_or_else(|| control(target, TASK_VIA_SCHEDULER))
}

// LSM_HOOK(int, 0, task_setioprio, struct task_struct *p, int ioprio)
#[lsm(hook = "task_setioprio")]
pub fn task_setioprio(ctx: LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    agent::prior(&ctx, 2).unwrap_or_else(|| control(target, TASK_VIA_IOPRIO))
}

// LSM_HOOK(int, 0, task_setrlimit, struct task_struct *p, unsigned int resource,
//          struct rlimit *new_rlim)
// setrlimit(2) and prlimit(2) with new limits, on the target's thread-group leader (reading
// limits passes only `task_prlimit`, which is given credentials, not the task).
#[lsm(hook = "task_setrlimit")]
pub fn task_setrlimit(ctx: LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    let resource: u32 = ctx.arg(1);
    agent::prior(&ctx, 3).unwrap_or_else(|| control(target, detail::rlimit(resource)))
}

// ---------------------------------------------------------------------------------------
// Signals and ptrace

/// `PTRACE_MODE_ATTACH` and `PTRACE_MODE_NOAUDIT` from `<linux/ptrace.h>`.
const PTRACE_MODE_ATTACH: u32 = 0x02;
const PTRACE_MODE_NOAUDIT: u32 = 0x04;

/// A signal from the current task to `target`.
///
/// Only signals the current task sends are decided: `cred` is non-null when the kernel
/// delivers a signal on behalf of someone else (USB async I/O completion), and then the
/// current task is not the sender. Signal 0 delivers nothing and only tests whether the
/// target exists, which EPERM would reveal just the same, so it is a plain allow.
#[inline(always)]
fn signal(target: *const u8, sig: i32, cred: *const u8) -> i32 {
    if sig == 0 || !cred.is_null() {
        return 0;
    }
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    aimed_outside(&agent, target, Class::Signal, sig as u64)
}

/// A ptrace access check on `target`. Attach mode (ptrace(2) attach/seize, /proc/PID/mem,
/// process_vm_readv/writev, pidfd_getfd) gives control over the target; read mode
/// (/proc/PID/environ, maps, fd/, cwd, exe, auxv, mem read, kcmp) reveals its secrets: the
/// daemon's environment, any host process's credentials. Both are refused outside the
/// agent. A `PTRACE_MODE_NOAUDIT` check is a probe whose refusal only hides a field
/// (`/proc/PID/stat`'s wchan and addresses, which `ps` reads for every process): allowed,
/// so that listing processes stays quiet.
#[inline(always)]
fn ptrace(target: *const u8, mode: u32) -> i32 {
    if mode & PTRACE_MODE_ATTACH == 0 && mode & PTRACE_MODE_NOAUDIT != 0 {
        return 0;
    }
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    aimed_outside(&agent, target, Class::Ptrace, mode as u64)
}

/// Write permission on a procfs file of the task with `struct pid` `pid` (null: unreadable)
/// for `agent`: refused when the task is outside the agent (`/proc/PID/oom_score_adj`,
/// `attr/*`, `comm`, ... of the daemon or any host process). Procfs files of no task are
/// `crate::kfs`'s business.
#[inline(always)]
pub fn proc_write(agent: &Agent, off: &KernelOffsets, pid: *const u8) -> i32 {
    let mut first: *const u8 = core::ptr::null();
    let target = if pid.is_null() {
        core::ptr::null()
    } else if !read_vfs::read_into(pid, off.pid_tasks, &mut first) {
        core::ptr::null()
    } else if first.is_null() {
        // The task has exited: the write fails with ESRCH, there is nothing to protect.
        return 0;
    } else {
        first.wrapping_sub(off.task_struct_pid_links as usize)
    };
    if target.is_null() {
        let refusal = Refusal::task(Class::Ptrace, unresolved(), 0, PTRACE_VIA_PROC_WRITE);
        return agent::refuse_named(agent, refusal, Name::None);
    }
    aimed_outside(agent, target, Class::Ptrace, PTRACE_VIA_PROC_WRITE)
}

/// Refuses `class` if `target` is outside the agent; fails closed if that cannot be told.
#[inline(always)]
pub(crate) fn aimed_outside(agent: &Agent, target: *const u8, class: Class, detail: u64) -> i32 {
    let off = maps::offsets();
    let relation = if off.valid == 0 {
        Relation::Unknown
    } else {
        read_task::relation(agent, &off, target)
    };
    let rule_id = match relation {
        Relation::Inside => return 0,
        Relation::Outside => RULE_BUILTIN,
        Relation::Unknown => unresolved(),
    };
    let (pid, name) = if off.valid == 0 {
        (0, Name::None)
    } else {
        (
            read_task::task_tgid(&off, target),
            Name::Str(read_task::task_comm(&off, target)),
        )
    };
    let refusal = Refusal::task(class, rule_id, pid, detail);
    agent::refuse_named(agent, refusal, name)
}

// ---------------------------------------------------------------------------------------
// File owners: the signals the kernel sends for an agent later

/// `F_SETOWN` and `F_SETOWN_EX` from `<asm-generic/fcntl.h>`.
const F_SETOWN: u32 = 8;
const F_SETOWN_EX: u32 = 15;

/// fcntl(F_SETOWN, `who`): `who` > 0 is a process, < 0 a process group, 0 clears the owner.
/// An agent may only make itself the owner; no task lookup by number is possible here, so
/// another process of the same agent is refused too (fail closed), as is a number from
/// another pid namespace.
#[inline(always)]
fn owner_by_value(who: i32) -> i32 {
    if who == 0 {
        return 0;
    }
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let pid_tgid = bpf_get_current_pid_tgid();
    if who > 0 && (who as u32 == pid_tgid as u32 || who as u32 == (pid_tgid >> 32) as u32) {
        return 0;
    }
    let group = who < 0;
    let target = if group { who.wrapping_neg() } else { who } as u32;
    refuse_owner(agent, target, detail::owner(OWNER_F_SETOWN, group))
}

/// F_SETOWN_EX, FIOSETOWN, SIOCSPGRP: the owner is read from user memory after this hook,
/// so a check here could be raced by another thread rewriting it. Agents may not use them.
#[inline(always)]
pub(crate) fn owner_by_pointer(how: u64) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    refuse_owner(&agent, 0, detail::owner(how, false))
}

#[inline(always)]
fn refuse_owner(agent: &Agent, pid: u32, detail: u64) -> i32 {
    let refusal = Refusal::task(Class::Signal, RULE_BUILTIN, pid, detail);
    agent::refuse_named(agent, refusal, Name::None)
}

// ---------------------------------------------------------------------------------------
// Task control

/// A change of how `target` runs, by the current task: refused when `target` lies outside
/// the agent.
#[inline(always)]
fn control(target: *const u8, how: u64) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    aimed_outside(&agent, target, Class::TaskControl, how)
}

#[inline(always)]
fn unresolved() -> u32 {
    emit::count(Counter::Unresolved);
    RULE_UNRESOLVED
}
