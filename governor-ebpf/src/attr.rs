//! Inode flags (Chattr), which no path hook decides: `chattr` sets them through the
//! `FS_IOC_SETFLAGS` ioctl (`FS_IOC32_SETFLAGS` from 32-bit tasks) or `FS_IOC_FSSETXATTR`.
//! Immutable (`+i`) and append-only (`+a`) would let an agent freeze a protected file, or
//! governor's own lease store and lineage database, against their owners. The ioctl entry
//! point is `crate::ioctl`; decided on the open file like any file class. (Timestamps, the
//! other attribute no path hook asks about, are decided by `crate::stacked`'s
//! `inode_setattr`.)

use governor_common::{
    detail::{FS_IOC_FSSETXATTR, FS_IOC_SETFLAGS},
    Class,
};

use crate::{file, walk::Leased};

/// `FS_IOC32_SETFLAGS`: `FS_IOC_SETFLAGS` as a 32-bit task encodes it.
const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;

/// Whether ioctl `cmd` sets inode flags.
#[inline(always)]
pub fn is_chattr(cmd: u32) -> bool {
    u64::from(cmd) == FS_IOC_SETFLAGS
        || u64::from(cmd) == FS_IOC_FSSETXATTR
        || cmd == FS_IOC32_SETFLAGS
}

/// ioctl `cmd` setting the flags of the open `file` (the command is the event's `detail`).
#[inline(always)]
pub fn chattr(file: *const u8, cmd: u32) -> i32 {
    file::at_file(file, Class::Chattr, Leased::Record, u64::from(cmd))
}
