//! Emitting decision events and bumping counters. A record that does not fit in the ring
//! buffer is never lost silently: it is counted in `Counter::EventsDropped`.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    bpf_probe_read_kernel_str_bytes, generated::bpf_ktime_get_boot_ns,
};
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

/// Where an event's `name` and `path` come from.
#[derive(Clone, Copy)]
pub enum Name {
    None,
    /// A dentry whose mount is not known (inode hooks): `name` is `d_name`, `path` goes up to
    /// the root of its filesystem and is marked unrooted. Skipped if null.
    Dentry(*const u8),
    /// A dentry and the mount it was reached through: `name` is `d_name`, `path` is absolute.
    /// Skipped if the dentry is null; a null mount is treated like [`Name::Dentry`].
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
        Name::Dentry(dentry) => Loc {
            dentry,
            mnt: core::ptr::null(),
        },
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
        (*ev).exe_inode = InodeKey::default();
        (*ev).path = [0u8; PATH_LEN];
        (*ev).exe = [0u8; EXE_LEN];
        (*ev).comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
        (*ev).name = [0u8; NAME_LEN];
        match name {
            Name::Str(s) if !s.is_null() => {
                let _ = bpf_probe_read_kernel_str_bytes(s, &mut (*ev).name);
            }
            _ if !target.dentry.is_null() => vfs::name(off, target.dentry, &mut (*ev).name),
            _ => {}
        }
        let (len, flags) =
            path::record::<{ PATH_LEN as u32 }>(off, target, (*ev).path.as_mut_ptr());
        (*ev).path_len = len;
        (*ev).path_flags = flags;
        let mut exe_inode = InodeKey::default();
        let (len, flags) =
            path::record_exe::<{ EXE_LEN as u32 }>(off, (*ev).exe.as_mut_ptr(), &mut exe_inode);
        (*ev).exe_len = len;
        (*ev).exe_flags = flags;
        (*ev).exe_inode = exe_inode;
    }
    entry.submit(0);
}
