//! Kernel filesystems: files whose writes act on the kernel or on other tasks, not on stored
//! data. Who may write them depends on who writes, not on where they lie, so they are
//! decided by the writing agent on every write, never kept (`write_cache`):
//! - cgroup v2 and v1 hierarchies: `crate::cgroup` (CgroupEscape, CgroupControl);
//! - procfs files of a task (`/proc/PID/...`): `crate::outside` (Ptrace, refused outside
//!   the agent);
//! - every other procfs file (`/proc/sys/...`, `/proc/sysrq-trigger`, ...), sysfs
//!   attributes, and the kernel-interface filesystems binfmt_misc, debugfs, tracefs,
//!   securityfs, configfs, efivarfs and pstore: refused to agents (KernelTunable). Through
//!   them a root agent would have the kernel run a helper of its choosing as root in the root
//!   cgroup, where nothing governs it: `kernel.core_pattern` (`|/path` runs on a crash),
//!   `kernel.modprobe`, `/sys/kernel/uevent_helper` and `kernel.hotplug`, binfmt_misc
//!   interpreters, `kernel.usermodehelper`; or change the kernel under governor
//!   (`vm.drop_caches`, `kernel.sysrq`, ...).
//!
//! The kernel asks write permission on these files (`inode_permission` with `MAY_WRITE`)
//! when they are opened for write, when entries are created, removed or renamed in their
//! directories, and when a pid is written to `cgroup.procs` or a task is cloned into a
//! cgroup. A descriptor opened by someone else skips that check, so `crate::file` asks
//! [`write_on`] again at every write through a file on these filesystems.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::{Class, EventKind, KernelOffsets};

use crate::{
    agent::{self, prior, Agent},
    cgroup,
    emit::Name,
    file, maps, outside,
    read_vfs::{self, read_into},
};

/// Superblock magics (include/uapi/linux/magic.h).
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
const PROC_SUPER_MAGIC: u64 = 0x9fa0;
const SYSFS_MAGIC: u64 = 0x6265_6572;
const BINFMTFS_MAGIC: u64 = 0x4249_4e4d;
const DEBUGFS_MAGIC: u64 = 0x6462_6720;
const TRACEFS_MAGIC: u64 = 0x7472_6163;
const SECURITYFS_MAGIC: u64 = 0x7363_6673;
const CONFIGFS_MAGIC: u64 = 0x6265_6570;
const EFIVARFS_MAGIC: u64 = 0xde5e_81e4;
const PSTOREFS_MAGIC: u64 = 0x6165_676c;
const MAY_WRITE: i32 = 0x2;
const MAY_READ: i32 = 0x4;

// int security_inode_permission(struct inode *inode, int mask);
// Path walks ask for MAY_EXEC only, reads for MAY_READ: both return before any lookup.
#[lsm(hook = "inode_permission")]
pub fn inode_permission(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| {
        let mask: i32 = ctx.arg(1);
        if mask & MAY_WRITE == 0 {
            return 0;
        }
        permission(ctx.arg(0), mask)
    })
}

/// Write permission on `inode` (with `mask`), asked by the kernel: decided by [`write_on`]
/// from the inode's superblock magic. Read permission asked with it (an open for reading and
/// writing) is decided here too, as the read class (`crate::file::read_with_write`): the
/// open's own hook decides the write.
#[inline(always)]
fn permission(inode: *const u8, mask: i32) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let magic = if off.valid == 0 {
        None
    } else {
        read_vfs::inode_magic(off, inode)
    };
    let Some(magic) = magic else {
        // Offsets unset or the inode unreadable: whether this moves a task is unknown.
        return cgroup::unreadable(agent);
    };
    if decides(magic) {
        return write_on(agent, off, inode, magic);
    }
    if mask & MAY_READ != 0 {
        return file::read_with_write(agent, off, inode);
    }
    0
}

/// Whether writes to a filesystem with superblock magic `magic` are decided by [`write_on`]
/// (and never kept in `write_cache`).
#[inline(always)]
pub fn decides(magic: u64) -> bool {
    matches!(
        magic,
        CGROUP2_SUPER_MAGIC
            | CGROUP_SUPER_MAGIC
            | PROC_SUPER_MAGIC
            | SYSFS_MAGIC
            | BINFMTFS_MAGIC
            | DEBUGFS_MAGIC
            | TRACEFS_MAGIC
            | SECURITYFS_MAGIC
            | CONFIGFS_MAGIC
            | EFIVARFS_MAGIC
            | PSTOREFS_MAGIC
    )
}

/// Write permission on `inode`, on a filesystem with superblock magic `magic`, for `agent`
/// (see the module doc); 0 for any other filesystem.
#[inline(always)]
pub fn write_on(agent: &Agent, off: &KernelOffsets, inode: *const u8, magic: u64) -> i32 {
    match magic {
        CGROUP2_SUPER_MAGIC => cgroup::write_on(agent, off, inode, false),
        CGROUP_SUPER_MAGIC => cgroup::write_on(agent, off, inode, true),
        PROC_SUPER_MAGIC => {
            // Every procfs inode is embedded in a `struct proc_inode`, whose `pid` names the
            // task the file belongs to (null for files of no task).
            let proc_inode = inode.wrapping_sub(off.proc_inode_vfs_inode as usize);
            let mut pid: *const u8 = core::ptr::null();
            if !read_into(proc_inode, off.proc_inode_pid, &mut pid) {
                // Unreadable: decided as a task's file whose task cannot be told.
                return outside::proc_write(agent, off, core::ptr::null());
            }
            if pid.is_null() {
                return tunable(agent, inode, magic);
            }
            outside::proc_write(agent, off, pid)
        }
        m if decides(m) => tunable(agent, inode, m),
        _ => 0,
    }
}

/// Refuses a write to a kernel interface: `detail` is the filesystem's magic; the event is
/// named by one of the inode's dentries (its path within that filesystem, e.g.
/// `(fsroot)/sys/kernel/core_pattern` on procfs).
#[inline(always)]
fn tunable(agent: &Agent, inode: *const u8, magic: u64) -> i32 {
    agent::builtin(
        agent,
        EventKind::FileDecision,
        Class::KernelTunable,
        magic,
        |off| {
            Name::Loc(read_vfs::Loc {
                dentry: read_vfs::alias(off, inode),
                mnt: core::ptr::null(),
            })
        },
    )
}
