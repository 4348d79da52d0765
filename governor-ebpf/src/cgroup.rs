//! Agent cgroup subtrees: which cgroups belong to an agent, and keeping agents inside them.
//!
//! A task is an agent when its cgroup, or any ancestor, is an agent cgroup. So that this stays
//! one hash lookup of the current cgroup id ([`crate::agent::current`]), every cgroup below an
//! agent cgroup is itself registered in `GOV_AGENTS`, with its parent's agent and flags plus
//! `AGENT_FLAG_INHERITED`: the `cgroup:cgroup_mkdir` tracepoint adds it, `cgroup_rmdir` removes
//! it (userspace registers the ones that exist when the daemon starts). `cgroup_mkdir` fires
//! under `cgroup_mutex`, before `kernfs_activate()` makes the new directory visible: nothing
//! can open it, write its `cgroup.procs` or clone into it before it is registered.
//!
//! Agents may not move any task into a cgroup outside their agent (`CgroupEscape`). Every
//! such move passes the kernel's write-permission check on a `cgroup.procs` inode
//! (`inode_permission` with `MAY_WRITE`): opening `cgroup.procs`/`cgroup.threads` for write
//! (`may_open`), writing a pid through any descriptor, however obtained (`cgroup_may_write`
//! on the common ancestor of source and destination, which lies outside the agent whenever
//! the destination does), and `clone3(CLONE_INTO_CGROUP)` (`cgroup_may_write` on the target).
//! The hook refuses when the file's cgroup is not registered for the acting agent.
//!
//! The same hook keeps agents' hands off cgroups that are not theirs (`CgroupControl`):
//! - opening any other interface file (`cgroup.kill`, `cgroup.freeze`, `memory.max`,
//!   `cgroup.subtree_control`, ...) for write is refused when its cgroup is not registered for
//!   the agent, and also when it is one of the agent's *top* cgroups (named by the policy, not
//!   `AGENT_FLAG_INHERITED`): governor and the operator own those (`governor halt` freezes and
//!   kills through them, their limits are the operator's). `cgroup.procs`/`cgroup.threads` of
//!   a top cgroup stay writable, so tasks can move within the subtree;
//! - write permission on a cgroup *directory* (`may_create`, `may_delete` and rename ask it:
//!   mkdir, rmdir, rename of a cgroup) is refused unless that directory is one of the agent's
//!   cgroups, top included: an agent makes and removes sub-cgroups of its own only.
//!
//! Sub-cgroups the agent made (inherited entries) are its to manage, interface files included.
//!
//! The kernel asks write permission on an interface file only when it is opened, so a
//! descriptor a non-agent opened and handed over (inherited, or sent over a unix socket)
//! would skip the hook. `crate::file` therefore applies the same decision ([`write_on`],
//! through `crate::kfs`) to every agent write through a file on a cgroup filesystem
//! (`file_permission`), and keeps none of those files' answers in `write_cache` (which holds
//! one answer per file for every agent).
//!
//! Cgroup v1 hierarchies the host mounted (agents cannot mount, `sb_mount`) are refused
//! outright: no agent cgroup is v1, and v1 checks no common ancestor when a pid is written
//! to `tasks`/`cgroup.procs`. Writing any of their files (`CgroupEscape` for
//! `tasks`/`cgroup.procs`, `CgroupControl` for the rest) and making or removing cgroups in
//! them (`CgroupControl`) is refused; reading is not.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use governor_common::{
    detail::CGROUP_V1,
    maps::{Counter, AGENT_FLAG_INHERITED, RULE_BUILTIN},
    AgentInfo, Class, KernelOffsets,
};

use crate::{
    agent::{self, Refusal},
    emit::{self, Name},
    maps,
    read_vfs::{ptr_at, read_into},
};

/// `S_IFMT` and `S_IFDIR` (include/uapi/linux/stat.h).
const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;
/// `cgroup.procs` and `cgroup.threads`, NUL-padded to 16 bytes.
const PROCS: [u8; 16] = *b"cgroup.procs\0\0\0\0";
const THREADS: [u8; 16] = *b"cgroup.threads\0\0";
/// `tasks` (cgroup v1's per-thread `cgroup.procs`), NUL-padded to 16 bytes.
const TASKS: [u8; 16] = *b"tasks\0\0\0\0\0\0\0\0\0\0\0";

// TRACE_EVENT(cgroup_mkdir, TP_PROTO(struct cgroup *cgrp, const char *path), ...)
// (include/trace/events/cgroup.h; raw tracepoint arguments are the TP_PROTO arguments)
#[raw_tracepoint(tracepoint = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: RawTracePointContext) -> i32 {
    inherit(ctx.arg::<u64>(0) as *const u8);
    0
}

// TRACE_EVENT(cgroup_rmdir, TP_PROTO(struct cgroup *cgrp, const char *path), ...)
#[raw_tracepoint(tracepoint = "cgroup_rmdir")]
pub fn cgroup_rmdir(ctx: RawTracePointContext) -> i32 {
    forget(ctx.arg::<u64>(0) as *const u8);
    0
}

/// `kn->id`: the cgroup id of a cgroup directory's kernfs node; 0 if unreadable.
#[inline(always)]
fn kn_id(off: &KernelOffsets, kn: *const u8) -> u64 {
    let mut id: u64 = 0;
    read_into(kn, off.kernfs_node_id, &mut id);
    id
}

/// A new cgroup `cgrp`: registers it for its parent's agent when the parent is registered.
#[inline(always)]
fn inherit(cgrp: *const u8) {
    let off = maps::offsets();
    let kn = ptr_at(cgrp, off.cgroup_kn);
    let id = kn_id(&off, kn);
    let parent = kn_id(&off, ptr_at(kn, off.kernfs_node_parent));
    // SAFETY: the value is copied out before the map is updated.
    let Some(info) = (unsafe { maps::GOV_AGENTS.get(&parent) }).copied() else {
        return;
    };
    let child = AgentInfo {
        agent_id: info.agent_id,
        flags: info.flags | AGENT_FLAG_INHERITED,
    };
    if id == 0 || maps::GOV_AGENTS.insert(&id, &child, 0).is_err() {
        emit::count(Counter::CgroupUntracked);
    }
}

/// A removed cgroup `cgrp`: drops its entry if it was inherited (policy entries stay).
#[inline(always)]
fn forget(cgrp: *const u8) {
    let off = maps::offsets();
    let id = kn_id(&off, ptr_at(cgrp, off.cgroup_kn));
    // SAFETY: the value is copied out immediately.
    let inherited = unsafe { maps::GOV_AGENTS.get(&id) }
        .is_some_and(|info| info.flags & AGENT_FLAG_INHERITED != 0);
    if inherited {
        let _ = maps::GOV_AGENTS.remove(&id);
    }
}

/// Write permission on `inode`, a file or directory of a cgroup hierarchy (`v1` for a cgroup
/// v1 one), for `agent`:
/// - cgroup v2: refused outside the agent's own cgroups and for the interface files of its
///   top cgroups (see the module doc);
/// - cgroup v1: refused. Governor's agent cgroups are v2, so none of a v1 hierarchy is the
///   agent's, and v1 checks no common ancestor when a pid is written to its
///   `tasks`/`cgroup.procs` (a root agent could move any task, the daemon into a freezer for
///   one), nor is `release_agent` anything an agent should set.
///
/// Asked through `crate::kfs`, by the kernel's permission check (`inode_permission`) and,
/// for writes through an open file, by `crate::file` with the file's inode.
#[inline(always)]
pub fn write_on(agent: &agent::Agent, off: &KernelOffsets, inode: *const u8, v1: bool) -> i32 {
    let hierarchy = if v1 { CGROUP_V1 } else { 0 };
    // The agent entry of cgroup `id`; no cgroup of a v1 hierarchy is any agent's.
    let owner = |id: u64| {
        if v1 {
            None
        } else {
            // SAFETY: the value is copied out immediately.
            unsafe { maps::GOV_AGENTS.get(&id) }.copied()
        }
    };
    let kn = ptr_at(inode, off.inode_i_private);
    let name = ptr_at(kn, off.kernfs_node_name);
    let mut mode: u16 = 0;
    if !read_into(inode, off.inode_i_mode, &mut mode) {
        return refuse(agent, Class::CgroupControl, hierarchy, name);
    }
    if mode & S_IFMT == S_IFDIR {
        // The cgroup itself: creating, removing or renaming cgroups in it.
        let id = kn_id(off, kn);
        return match owner(id) {
            Some(info) if info.agent_id == agent.info.agent_id => 0,
            _ => refuse(agent, Class::CgroupControl, id | hierarchy, name),
        };
    }
    let mut buf = [0u8; 16];
    // SAFETY: probe read of a kernel string into a buffer we own.
    let _ = unsafe { bpf_probe_read_kernel_str_bytes(name, &mut buf) };
    let procs = same(&buf, &PROCS) || same(&buf, &THREADS) || (v1 && same(&buf, &TASKS));
    let class = if procs {
        Class::CgroupEscape
    } else {
        Class::CgroupControl
    };
    let id = kn_id(off, ptr_at(kn, off.kernfs_node_parent));
    match owner(id) {
        Some(info)
            if info.agent_id == agent.info.agent_id
                && (procs || info.flags & AGENT_FLAG_INHERITED != 0) =>
        {
            0
        }
        _ => refuse(agent, class, id | hierarchy, name),
    }
}

/// Refuses `agent` a write permission whose inode could not be read (or offsets unset):
/// whether it would move a task cannot be told (CgroupEscape, fail closed).
#[inline(always)]
pub fn unreadable(agent: &agent::Agent) -> i32 {
    refuse(agent, Class::CgroupEscape, 0, core::ptr::null())
}

/// Byte-wise equality as two 64-bit compares (no `memcmp` in BPF).
#[inline(always)]
fn same(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let word = |x: &[u8; 16], i: usize| {
        u64::from_ne_bytes([
            x[i],
            x[i + 1],
            x[i + 2],
            x[i + 3],
            x[i + 4],
            x[i + 5],
            x[i + 6],
            x[i + 7],
        ])
    };
    word(a, 0) == word(b, 0) && word(a, 8) == word(b, 8)
}

/// Refuses a write of `class` on cgroup `cgroup_id` (0: unknown; with [`CGROUP_V1`] on a v1
/// hierarchy); `name` is the name of the file or directory written.
#[inline(always)]
fn refuse(agent: &agent::Agent, class: Class, cgroup_id: u64, name: *const u8) -> i32 {
    let refusal = Refusal::host(class, RULE_BUILTIN, cgroup_id);
    agent::refuse_named(agent, refusal, Name::Str(name))
}
