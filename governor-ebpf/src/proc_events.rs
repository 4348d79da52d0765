//! Process lineage: every process an agent forks, every program an agent process executes and
//! every agent process's exit, recorded as a `ProcEvent` in its own ring buffer (`GOV_PROCS`),
//! so that each decision can be traced up its process ancestry. Enforcement does not depend
//! on any of it.
//!
//! Raw tracepoints on the scheduler's process events (they load on 6.1, 6.12 and kernels
//! without BPF-LSM). Each starts with the one lookup every hook family pays,
//! [`agent::current`]: a task outside agent cgroups goes no further. A record that does not
//! fit is counted (`Counter::ProcsDropped`), never dropped silently.
//!
//! - fork: the child of an agent task, if it is a new process (not a thread); its cgroup is
//!   read from the child (clone3 may place it in another cgroup of the agent).
//! - exec: after the new program is in place (`current->mm` is the new one): its executable
//!   (`mm->exe_file`, walked like an event's `exe`), working directory (`fs->pwd`, walked the
//!   same way) and arguments (`mm->arg_start..arg_end`, read from the new user stack).
//! - exit: when the last thread of an agent process exits (`signal->live` reached 0), with
//!   its wait status.
//!
//! A process is named by its tgid and its group leader's `start_boottime`; its parent by
//! `real_parent`'s tgid and group leader's `start_boottime`.

use aya_ebpf::{
    cty::c_void,
    helpers::{
        bpf_get_current_comm, bpf_get_current_uid_gid,
        generated::{bpf_ktime_get_boot_ns, bpf_probe_read_user},
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use core::mem::offset_of;
use governor_common::{
    event::{COMM_LEN, EXE_LEN},
    maps::Counter,
    process::{
        ProcEvent, ProcKind, ARGV_LEN, ARGV_PRESENT, ARGV_TRUNCATED, CWD_LEN, PROC_EVENT_VERSION,
    },
    InodeKey, KernelOffsets,
};

use crate::{
    agent::{self, Agent},
    emit, maps, path, read_task,
    read_vfs::{ptr_at, read_into, Loc},
};

/// Bounds on the copies into the record's `exe`, `cwd` and `argv` (see `path::record`: a
/// power of two minus one that keeps the copy inside the record).
const EXE_MASK: u32 = EXE_LEN as u32 - 1;
const CWD_MASK: u32 = CWD_LEN as u32 - 1;
const ARGV_MASK: u32 = ARGV_LEN as u32 - 1;
const _: () = assert!(offset_of!(ProcEvent, exe) + EXE_MASK as usize <= ProcEvent::SIZE);
const _: () = assert!(offset_of!(ProcEvent, cwd) + CWD_MASK as usize <= ProcEvent::SIZE);
const _: () = assert!(offset_of!(ProcEvent, argv) + ARGV_MASK as usize <= ProcEvent::SIZE);

// TRACE_EVENT(sched_process_fork,
//     TP_PROTO(struct task_struct *parent, struct task_struct *child), ...)
// (include/trace/events/sched.h; raw tracepoint arguments are the TP_PROTO arguments)
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    forked(ctx.arg::<u64>(1) as *const u8);
    0
}

// TRACE_EVENT(sched_process_exec,
//     TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm), ...)
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(_ctx: RawTracePointContext) -> i32 {
    executed();
    0
}

// DEFINE_EVENT(sched_process_template, sched_process_exit,
//     TP_PROTO(struct task_struct *p), ...)
// (6.16 adds `bool group_dead`; only the task, which is `current`, is used)
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    exited();
    0
}

/// `task->start_boottime` of `task`'s group leader: the process's start time; 0 if
/// unreadable.
#[inline(always)]
fn start_ns(off: &KernelOffsets, task: *const u8) -> u64 {
    let mut ns: u64 = 0;
    read_into(
        ptr_at(task, off.task_struct_group_leader),
        off.task_struct_start_boottime,
        &mut ns,
    );
    ns
}

/// Reserves a record of `kind` for process `task` of `agent`, in cgroup `cgroup_id`, and fills
/// its identity; `None` (counted) when the ring buffer is full.
#[inline(always)]
fn begin(
    off: &KernelOffsets,
    kind: ProcKind,
    task: *const u8,
    agent: &Agent,
    cgroup_id: u64,
) -> Option<aya_ebpf::maps::ring_buf::RingBufEntry<ProcEvent>> {
    let Some(mut entry) = maps::GOV_PROCS.reserve::<ProcEvent>(0) else {
        emit::count(Counter::ProcsDropped);
        return None;
    };
    let ev = entry.as_mut_ptr();
    let parent = ptr_at(task, off.task_struct_real_parent);
    // SAFETY: `ev` points at a reserved, exclusively owned record; the header is written
    // here, the variable parts by the caller before submit (their lengths are zero until).
    unsafe {
        (*ev).kind = kind as u16;
        (*ev).version = PROC_EVENT_VERSION;
        (*ev).size = ProcEvent::SIZE as u32;
        (*ev).boot_ns = bpf_ktime_get_boot_ns();
        (*ev).start_ns = start_ns(off, task);
        (*ev).parent_start_ns = start_ns(off, parent);
        (*ev).cgroup_id = cgroup_id;
        (*ev).pid = read_task::task_tgid(off, task);
        (*ev).ppid = read_task::task_tgid(off, parent);
        (*ev).uid = bpf_get_current_uid_gid() as u32;
        (*ev).agent_id = agent.info.agent_id;
        (*ev).exit_code = 0;
        (*ev).argv_len = 0;
        (*ev).argv_flags = 0;
        (*ev).exe_len = 0;
        (*ev).exe_flags = 0;
        (*ev).cwd_len = 0;
        (*ev).cwd_flags = 0;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
    }
    Some(entry)
}

/// A task forked by the current task: recorded if the current task is an agent's and the
/// child is a process of its own (its thread id is its tgid).
#[inline(always)]
fn forked(child: *const u8) {
    let Some(agent) = agent::current() else {
        return;
    };
    let off = maps::offsets();
    if off.valid == 0 {
        return;
    }
    let mut pid: u32 = 0;
    if !read_into(child, off.task_struct_pid, &mut pid) || pid != read_task::task_tgid(&off, child)
    {
        return;
    }
    let mut cgroup_id = read_task::cgroup_id(&off, read_task::task_cgroup(&off, child));
    if cgroup_id == 0 {
        cgroup_id = agent.cgroup_id;
    }
    if let Some(entry) = begin(&off, ProcKind::Fork, child, &agent, cgroup_id) {
        entry.submit(0);
    }
}

/// The current task executed a program: records it with its executable, working directory
/// and arguments.
#[inline(always)]
fn executed() {
    let Some(agent) = agent::current() else {
        return;
    };
    let off = maps::offsets();
    if off.valid == 0 {
        return;
    }
    let task = read_task::current_task();
    let Some(mut entry) = begin(&off, ProcKind::Exec, task, &agent, agent.cgroup_id) else {
        return;
    };
    describe(entry.as_mut_ptr(), task);
    entry.submit(0);
}

/// Fills `exe`, `cwd` and `argv` of the exec record at `ev` for `task` (the current task).
///
/// Not inlined: its own BPF subprogram, verified once.
#[inline(never)]
fn describe(ev: *mut ProcEvent, task: *const u8) {
    let off = &maps::offsets();
    // SAFETY: `ev` is the caller's reserved record (see `executed`).
    unsafe {
        let mut exe_inode = InodeKey::default();
        let (len, flags) =
            path::record_exe::<EXE_MASK, EXE_MASK>(off, (*ev).exe.as_mut_ptr(), &mut exe_inode);
        (*ev).exe_len = len;
        (*ev).exe_flags = flags;
        let fs = ptr_at(task, off.task_struct_fs);
        if !fs.is_null() {
            let pwd = fs.wrapping_add(off.fs_struct_pwd as usize);
            let cwd = Loc {
                dentry: ptr_at(pwd, off.path_dentry),
                mnt: ptr_at(pwd, off.path_mnt),
            };
            let (len, flags) = path::record::<CWD_MASK, CWD_MASK>(off, cwd, (*ev).cwd.as_mut_ptr());
            (*ev).cwd_len = len;
            (*ev).cwd_flags = flags;
        }
        let (len, flags) = args(off, task, (*ev).argv.as_mut_ptr());
        (*ev).argv_len = len;
        (*ev).argv_flags = flags;
    }
}

/// Copies the new program's arguments (`mm->arg_start..arg_end` of `task`, NUL-separated as
/// the kernel laid them out on its stack) into `out`, at most `ARGV_MASK` bytes. Returns the
/// bytes copied and the `ARGV_*` flags.
#[inline(always)]
fn args(off: &KernelOffsets, task: *const u8, out: *mut u8) -> (u16, u16) {
    let mm = ptr_at(task, off.task_struct_mm);
    let mut start: u64 = 0;
    let mut end: u64 = 0;
    if !read_into(mm, off.mm_struct_arg_start, &mut start)
        || !read_into(mm, off.mm_struct_arg_end, &mut end)
        || end <= start
    {
        return (0, 0);
    }
    let total = end - start;
    let mut flags = ARGV_PRESENT;
    let want = if total > u64::from(ARGV_MASK) {
        flags |= ARGV_TRUNCATED;
        ARGV_MASK
    } else {
        total as u32
    };
    // The mask changes nothing at run time; it bounds the copy for the verifier.
    let len = want & ARGV_MASK;
    // SAFETY: `out` has room for `ARGV_MASK >= len` bytes; the helper copes with a bad source.
    let ret = unsafe { bpf_probe_read_user(out.cast::<c_void>(), len, start as *const c_void) };
    if ret != 0 {
        return (0, ARGV_PRESENT | ARGV_TRUNCATED);
    }
    (len as u16, flags)
}

/// A thread of the current task exited: if it was the last one of an agent process, records
/// the process's end with its wait status.
#[inline(always)]
fn exited() {
    let Some(agent) = agent::current() else {
        return;
    };
    let off = maps::offsets();
    if off.valid == 0 {
        return;
    }
    let task = read_task::current_task();
    let mut live: i32 = -1;
    if !read_into(
        ptr_at(task, off.task_struct_signal),
        off.signal_struct_live,
        &mut live,
    ) || live != 0
    {
        return;
    }
    let mut code: i32 = 0;
    read_into(task, off.task_struct_exit_code, &mut code);
    if let Some(mut entry) = begin(&off, ProcKind::Exit, task, &agent, agent.cgroup_id) {
        // SAFETY: our reserved record.
        unsafe { (*entry.as_mut_ptr()).exit_code = code };
        entry.submit(0);
    }
}
