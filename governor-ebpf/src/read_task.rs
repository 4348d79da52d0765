//! Reading tasks, credentials and cgroups through the BTF-resolved offsets, and the one
//! question the task hooks ask about another task: is it inside the acting agent?

use aya_ebpf::{
    helpers::generated::{bpf_get_current_task, bpf_get_func_arg},
    programs::LsmContext,
    EbpfContext,
};
use governor_common::KernelOffsets;

use crate::{
    agent::Agent,
    maps,
    read_vfs::{ptr_at, read_into},
};

/// Deepest cgroup level whose ancestor slot is read; deeper hierarchies fall back to the
/// agent-map lookup. (cgroup v2 defaults to `cgroup.max.depth = max`, real trees are shallow.)
const MAX_CGROUP_LEVEL: i32 = 255;

/// Hook argument `n`, a pointer that the kernel may pass as NULL, as a plain value.
///
/// The verifier types pointer arguments by the hook's BTF and assumes them non-NULL, so a
/// `ctx.arg()` pointer compared with NULL is "never NULL" to it and the NULL branch is
/// removed as dead code. Some are NULL, though: `task_kill`'s `cred` for every kill(2),
/// `mmap_file`'s `file` for anonymous mappings. `bpf_get_func_arg` returns the argument as a
/// scalar, which the verifier does not second-guess.
#[inline(always)]
pub fn nullable_arg(ctx: &LsmContext, n: u32) -> *const u8 {
    let mut value: u64 = 0;
    // SAFETY: helper call writing into a local.
    let ret = unsafe { bpf_get_func_arg(ctx.as_ptr(), n, &mut value) };
    if ret == 0 {
        value as *const u8
    } else {
        core::ptr::null()
    }
}

/// The running task's `task_struct`.
#[inline(always)]
pub fn current_task() -> *const u8 {
    // SAFETY: plain helper call.
    unsafe { bpf_get_current_task() as *const u8 }
}

/// `task->cred`: the subjective credentials the task acts with (null if unreadable).
#[inline(always)]
pub fn task_cred(off: &KernelOffsets, task: *const u8) -> *const u8 {
    ptr_at(task, off.task_struct_cred)
}

/// `task->tgid`: the process id (as the initial pid namespace sees it); 0 if unreadable.
#[inline(always)]
pub fn task_tgid(off: &KernelOffsets, task: *const u8) -> u32 {
    let mut tgid: u32 = 0;
    read_into(task, off.task_struct_tgid, &mut tgid);
    tgid
}

/// `&task->comm`, a NUL-terminated kernel string, for naming the task in events.
#[inline(always)]
pub fn task_comm(off: &KernelOffsets, task: *const u8) -> *const u8 {
    task.wrapping_add(off.task_struct_comm as usize)
}

/// Fills `ids` with the eight ids of `cred`, in [`governor_common::maps::CredId`] order;
/// false if unreadable.
#[inline(always)]
pub fn cred_ids(off: &KernelOffsets, cred: *const u8, ids: &mut [u32; 8]) -> bool {
    // Userspace checked that the ids are 8 contiguous u32s starting at `cred_ids`.
    read_into(cred, off.cred_ids, ids)
}

/// `cred->group_info` (null if unreadable).
#[inline(always)]
pub fn cred_groups(off: &KernelOffsets, cred: *const u8) -> *const u8 {
    ptr_at(cred, off.cred_group_info)
}

/// `group_info->ngroups`; -1 if unreadable.
#[inline(always)]
pub fn ngroups(off: &KernelOffsets, groups: *const u8) -> i64 {
    let mut n: i32 = 0;
    if read_into(groups, off.group_info_ngroups, &mut n) {
        i64::from(n)
    } else {
        -1
    }
}

/// `group_info->gid[i]`; -1 if unreadable.
#[inline(always)]
pub fn group(off: &KernelOffsets, groups: *const u8, i: u32) -> i64 {
    let mut gid: u32 = 0;
    let at = off.group_info_gid.wrapping_add(i.wrapping_mul(4));
    if read_into(groups, at, &mut gid) {
        i64::from(gid)
    } else {
        -1
    }
}

/// `task->cgroups->dfl_cgrp`: the task's cgroup v2 (null if unreadable).
#[inline(always)]
pub fn task_cgroup(off: &KernelOffsets, task: *const u8) -> *const u8 {
    ptr_at(ptr_at(task, off.task_struct_cgroups), off.css_set_dfl_cgrp)
}

/// `cgrp->kn->id`: the cgroup id, as `bpf_get_current_cgroup_id()` reports it; 0 if
/// unreadable (no cgroup has id 0).
#[inline(always)]
pub fn cgroup_id(off: &KernelOffsets, cgrp: *const u8) -> u64 {
    let mut id: u64 = 0;
    read_into(ptr_at(cgrp, off.cgroup_kn), off.kernfs_node_id, &mut id);
    id
}

/// `cgrp->level`; -1 if unreadable.
#[inline(always)]
fn cgroup_level(off: &KernelOffsets, cgrp: *const u8) -> i32 {
    let mut level: i32 = 0;
    if read_into(cgrp, off.cgroup_level, &mut level) {
        level
    } else {
        -1
    }
}

/// Where another task stands relative to the acting agent.
pub enum Relation {
    /// In the agent's cgroup, below it, or in another cgroup of the same agent.
    Inside,
    /// Anywhere else: another agent, a plain host process, the daemon.
    Outside,
    /// Its cgroup could not be read: callers fail closed.
    Unknown,
}

/// Is `target` inside `agent`'s cgroup subtree (or another cgroup of the same agent)?
///
/// The target is inside if its cgroup is the acting task's, or has the acting task's cgroup
/// as ancestor, or is registered for the same agent (every cgroup below an agent cgroup is,
/// see `crate::cgroup`, so this also covers the agent's other branches and its root).
#[inline(always)]
pub fn relation(agent: &Agent, off: &KernelOffsets, target: *const u8) -> Relation {
    let own = task_cgroup(off, current_task());
    let theirs = task_cgroup(off, target);
    if own.is_null() || theirs.is_null() {
        return Relation::Unknown;
    }
    if own == theirs {
        return Relation::Inside;
    }
    let own_level = cgroup_level(off, own);
    let their_level = cgroup_level(off, theirs);
    if own_level >= 0 && own_level <= MAX_CGROUP_LEVEL && their_level > own_level {
        let slot = off
            .cgroup_ancestors
            .wrapping_add((own_level as u32).wrapping_mul(8));
        if ptr_at(theirs, slot) == own {
            return Relation::Inside;
        }
    }
    let id = cgroup_id(off, theirs);
    if id == 0 {
        return Relation::Unknown;
    }
    // SAFETY: the value is copied out immediately.
    match unsafe { maps::GOV_AGENTS.get(&id) } {
        Some(info) if info.agent_id == agent.info.agent_id => Relation::Inside,
        _ => Relation::Outside,
    }
}
