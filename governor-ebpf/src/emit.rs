//! Emitting decision events and bumping counters. A record that does not fit in the ring
//! buffer is never lost silently: it is counted in `Counter::EventsDropped`.
//!
//! Decisions do not emit where they are made: they [`defer`] to a per-CPU slot, and the
//! program flushes it once at the end (`agent::acting`). One emission site per program keeps
//! the verifier's work linear in what a program decides (6.1 gave up on `file_open` when each
//! decision emitted on its own).

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    bpf_probe_read_kernel_str_bytes, generated::bpf_ktime_get_boot_ns,
};
use core::mem::offset_of;

use governor_common::{
    event::{COMM_LEN, EXE_LEN, NAME_LEN, PATH_LEN},
    maps::Counter,
    Decision, Event, EventKind, InodeKey, KernelOffsets, Target, EVENT_VERSION,
};

use crate::{
    maps, path,
    read_vfs::{self, Loc},
};

/// Adds one to a per-CPU counter.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = maps::GOV_COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
        unsafe { *slot += 1 };
    }
}

/// What happened, as the deciding hook knows it.
pub struct Decided {
    pub kind: EventKind,
    pub cgroup_id: u64,
    pub agent_id: u32,
    pub class: u32,
    pub decision: Decision,
    pub rule_id: u32,
    pub target: Target,
    pub depth: u32,
    /// The lease that allowed the operation, or 0.
    pub lease_id: u64,
}

/// Bound on the copy into `Event::path` (see [`path::record`]): `path` holds `PATH_LEN`
/// bytes, and the mask stays inside the record.
const PATH_MASK: u32 = 511;
const _: () = assert!(PATH_LEN as u32 <= PATH_MASK);
const _: () = assert!(offset_of!(Event, path) + PATH_MASK as usize <= Event::SIZE);
/// `exe` is the record's last field, so its mask cannot exceed it: the walk fills at most
/// `EXE_LEN - 1` bytes.
const EXE_MASK: u32 = EXE_LEN as u32 - 1;
const EXE_CAP: u32 = EXE_MASK;
const _: () = assert!((EXE_MASK + 1).is_power_of_two());
const _: () = assert!(offset_of!(Event, exe) + EXE_MASK as usize <= Event::SIZE);

/// Where an event's `name` and `path` come from.
#[derive(Clone, Copy)]
pub enum Name {
    None,
    /// A dentry and the mount it was reached through: `name` is `d_name`, `path` is absolute.
    /// Skipped if the dentry is null. With a null mount (inode hooks, which are given none)
    /// `path` goes up to the root of the dentry's filesystem and is marked unrooted.
    Loc(Loc),
    /// An open `struct file *`: named by its `f_path`, like [`Name::Loc`]. Skipped if null.
    File(*const u8),
    /// A NUL-terminated kernel string: a task's `comm`, a module name (skipped if null). No
    /// path.
    Str(*const u8),
}

/// A settled decision waiting for its event (one slot per CPU, `GOV_PENDING`): decisions
/// [`defer`] here, and the program's one [`flush`] emits. So the event code, the largest part
/// of any program, has a single call site per program for the verifier to walk, however many
/// places in the program decide.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pending {
    /// The task whose decision this is (`bpf_get_current_pid_tgid()`); 0 when empty.
    owner: u64,
    cgroup_id: u64,
    lease_id: u64,
    name_a: u64,
    name_b: u64,
    target: Target,
    kind: u32,
    agent_id: u32,
    class: u32,
    decision: u32,
    rule_id: u32,
    depth: u32,
    name_kind: u32,
    _pad: u32,
}

const NAME_NONE: u32 = 0;
const NAME_LOC: u32 = 1;
const NAME_FILE: u32 = 2;
const NAME_STR: u32 = 3;

/// Records `d`, named by `name`, as the current task's pending event. The first decision of a
/// program run is the one recorded: an operation makes one event; only a recorded allow
/// (`Decision::Allow`, `record = "all"`) gives way to a later decision that is not one (a
/// rename allowed at its source and refused at its destination is recorded as refused). A
/// slot still holding another task's event (one preempted between its decision and its
/// flush) is taken over, and that event counted as dropped.
#[inline(always)]
pub fn defer(d: &Decided, name: Name) {
    let Some(slot) = maps::GOV_PENDING.get_ptr_mut(0) else {
        count(Counter::EventsDropped);
        return;
    };
    let me = bpf_get_current_pid_tgid();
    // SAFETY: this CPU's slot, valid for the program run.
    let p = unsafe { &mut *slot };
    if p.owner == me {
        // This operation's own recorded allow gives way to its refusal: nothing is lost.
        if p.decision != Decision::Allow as u32 || d.decision as u32 == Decision::Allow as u32 {
            return;
        }
    } else if p.owner != 0 {
        count(Counter::EventsDropped);
    }
    let (name_kind, name_a, name_b) = match name {
        Name::None => (NAME_NONE, 0, 0),
        Name::Loc(loc) => (NAME_LOC, loc.dentry as u64, loc.mnt as u64),
        Name::File(file) => (NAME_FILE, file as u64, 0),
        Name::Str(s) => (NAME_STR, s as u64, 0),
    };
    *p = Pending {
        owner: me,
        cgroup_id: d.cgroup_id,
        lease_id: d.lease_id,
        name_a,
        name_b,
        target: d.target,
        kind: d.kind as u32,
        agent_id: d.agent_id,
        class: d.class,
        decision: d.decision as u32,
        rule_id: d.rule_id,
        depth: d.depth,
        name_kind,
        _pad: 0,
    };
}

/// Emits the current task's pending event ([`flush`]) when dropped: held for the agent's path
/// of a program (`agent::acting`).
pub struct Flush;

impl Drop for Flush {
    #[inline(always)]
    fn drop(&mut self) {
        flush();
    }
}

/// Emits the current task's pending event, if any, and empties the slot. Called once per
/// program, at the end of the agent's path ([`Flush`]).
#[inline(always)]
pub fn flush() {
    let Some(slot) = maps::GOV_PENDING.get_ptr_mut(0) else {
        return;
    };
    let me = bpf_get_current_pid_tgid();
    // SAFETY: this CPU's slot, valid for the program run; read in place (a copy would take
    // a hundred bytes of the 512 a program's call chain may use on 6.1), then emptied.
    unsafe {
        if (*slot).owner != me {
            return;
        }
        event(maps::offsets(), &*slot);
        (*slot).owner = 0;
    }
}

/// Writes one event for the pending decision `d`: its `name` and `path` from the name it
/// recorded (for file decisions, the target), its `exe` from the current task.
#[inline(always)]
fn event(off: &KernelOffsets, d: &Pending) {
    let Some(mut entry) = maps::GOV_EVENTS.reserve::<Event>(0) else {
        count(Counter::EventsDropped);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let ev = entry.as_mut_ptr();
    let (dentry, mnt) = match d.name_kind {
        NAME_LOC => (d.name_a as *const u8, d.name_b as *const u8),
        NAME_FILE if d.name_a != 0 => {
            let f_path = (d.name_a as *const u8).wrapping_add(off.file_f_path as usize);
            (
                read_vfs::ptr_at(f_path, off.path_dentry),
                read_vfs::ptr_at(f_path, off.path_mnt),
            )
        }
        _ => (core::ptr::null(), core::ptr::null()),
    };
    let s = if d.name_kind == NAME_STR {
        d.name_a as *const u8
    } else {
        core::ptr::null()
    };
    // SAFETY: `ev` points at a reserved, exclusively owned record of `size_of::<Event>()` bytes;
    // every field is written before submit.
    unsafe {
        (*ev).kind = d.kind as u16;
        (*ev).version = EVENT_VERSION;
        (*ev).size = Event::SIZE as u32;
        (*ev).boot_ns = bpf_ktime_get_boot_ns();
        (*ev).cgroup_id = d.cgroup_id;
        (*ev).pid = pid_tgid as u32;
        (*ev).tgid = (pid_tgid >> 32) as u32;
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).agent_id = d.agent_id;
        (*ev).class = d.class;
        (*ev).decision = d.decision;
        (*ev).rule_id = d.rule_id;
        (*ev).target = d.target;
        (*ev).depth = d.depth;
        (*ev)._pad = 0;
        (*ev).lease_id = d.lease_id;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
        describe(ev, dentry, mnt, s);
    }
    entry.submit(0);
    count(Counter::EventsEmitted);
}

/// Fills `name`, `path` and `exe` of the record at `ev`: `name` from the kernel string `s` or
/// else from `dentry`, `path` by walking up from `dentry` (in mount `mnt`, if known), `exe`
/// from the current task.
///
/// Not inlined: this is most of an event's code, and a program emits from several places;
/// as one BPF subprogram it is in each program once.
#[inline(never)]
fn describe(ev: *mut Event, dentry: *const u8, mnt: *const u8, s: *const u8) {
    let off = &maps::offsets();
    // SAFETY: `ev` is the caller's reserved record (see `event`).
    unsafe {
        path::clear::<{ NAME_LEN as u32 }>((*ev).name.as_mut_ptr());
        path::clear::<{ PATH_LEN as u32 }>((*ev).path.as_mut_ptr());
        path::clear::<{ EXE_LEN as u32 }>((*ev).exe.as_mut_ptr());
        if !s.is_null() {
            let _ = bpf_probe_read_kernel_str_bytes(s, &mut (*ev).name);
        } else if !dentry.is_null() {
            read_vfs::name(off, dentry, &mut (*ev).name);
        }
        let target = Loc { dentry, mnt };
        let (len, flags) =
            path::record::<{ PATH_LEN as u32 }, PATH_MASK>(off, target, (*ev).path.as_mut_ptr());
        (*ev).path_len = len;
        (*ev).path_flags = flags;
        let mut exe_inode = InodeKey::default();
        let (len, flags) =
            path::record_exe::<EXE_CAP, EXE_MASK>(off, (*ev).exe.as_mut_ptr(), &mut exe_inode);
        (*ev).exe_len = len;
        (*ev).exe_flags = flags;
        (*ev).exe_inode = exe_inode;
    }
}
