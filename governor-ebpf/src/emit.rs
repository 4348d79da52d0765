//! Emitting decision events and bumping counters. A record that does not fit in the ring
//! buffer is never lost silently: it is counted in `Counter::EventsDropped`.

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
    vfs::{self, Loc},
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

/// Writes one event for `d`, its `name` and `path` taken from `name` (for file decisions, the
/// target), its `exe` from the current task.
#[inline(always)]
pub fn event(off: &KernelOffsets, d: &Decided, name: Name) {
    let Some(mut entry) = maps::GOV_EVENTS.reserve::<Event>(0) else {
        count(Counter::EventsDropped);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let ev = entry.as_mut_ptr();
    let target = match name {
        Name::Loc(loc) => loc,
        Name::File(file) if !file.is_null() => {
            let f_path = file.wrapping_add(off.file_f_path as usize);
            Loc {
                dentry: vfs::ptr_at(f_path, off.path_dentry),
                mnt: vfs::ptr_at(f_path, off.path_mnt),
            }
        }
        Name::None | Name::File(_) | Name::Str(_) => Loc {
            dentry: core::ptr::null(),
            mnt: core::ptr::null(),
        },
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
        (*ev).decision = d.decision as u32;
        (*ev).rule_id = d.rule_id;
        (*ev).target = d.target;
        (*ev).depth = d.depth;
        (*ev)._pad = 0;
        (*ev).lease_id = d.lease_id;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
        let s = match name {
            Name::Str(s) => s,
            _ => core::ptr::null(),
        };
        describe(ev, target.dentry, target.mnt, s);
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
            vfs::name(off, dentry, &mut (*ev).name);
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
