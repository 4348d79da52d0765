//! File hooks: delete, truncate, write, chmod/chown, xattr/ACL, mknod, creating entries in
//! protected directories (rename and link, which give a file new names, are in
//! `crate::names`). Each decides through the walk (`walk`).
//!
//! Protected resources are identified by inode, not by path string: a decision walks from the
//! target up through `d_parent` and, at the root of each mount, on to the mountpoint in the
//! parent mount, checking every inode against the protected map. Hardlinks, symlinks, `..`,
//! `/proc/self/fd`, `O_PATH` reopen and bind mounts all reach the same inodes. A walk that
//! cannot finish within `MAX_PATH_DEPTH` steps is denied (fail closed).
//!
//! Writes through an open file are decided once per file while nothing the answer rests on
//! changes (`write_cache`); a file the open itself just created is not walked again at open,
//! and an operation is decided once, by its path hook, not again by the inode hook of the
//! same call (`note`; the inode hooks are in `stacked`).
//! Writes to files of kernel filesystems (cgroup, procfs, sysfs, ...) are decided on every
//! write, as if the writer had opened the file itself (`kfs::write_on`): the kernel checks
//! those at open only, and the descriptor may have been opened by someone else. Raw devices
//! (block devices, `/dev/mem`, `/dev/kmem`, `/dev/port`) are never written by agents.
//!
//! Opens are decided for read too (the read class), so that a resource can keep agents
//! from reading it at all, and agents see nothing of governor's own directories.
//!
//! Entry points are thin; each quotes the kernel prototype (identical on 6.1 and 6.12 unless
//! noted). The last argument of every LSM program is the previous program's verdict, which we
//! return when it is already a refusal.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::{detail::RAW_BLOCK, Class, EventKind, KernelOffsets, WriteStamp};

use crate::{
    agent::{self, prior, Agent},
    emit::Name,
    exec_setid, kfs, maps, note,
    read_vfs::{self, Loc},
    walk::{decide, decide_as, unresolved, Keep, Leased},
    write_cache,
};

const FMODE_READ: u32 = 0x1;
/// `__FMODE_EXEC`: in `f_flags` (not `f_mode`), an open for execution (`open_exec()`).
const FMODE_EXEC_FLAG: u32 = 0x20;
/// `f_mode` bit of a file open for writing.
pub(crate) const FMODE_WRITE: u32 = 0x2;
/// `f_mode` bit set by the open that created the file (the same value on 6.1 and 6.12).
const FMODE_CREATED: u32 = 0x10_0000;
const MAY_WRITE: i32 = 0x2;
const S_IFMT: u32 = 0o170000;
const S_IFCHR: u32 = 0o020000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;

// int security_path_unlink(const struct path *dir, struct dentry *dentry);
#[lsm(hook = "path_unlink")]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| in_dir(&ctx, 0, ctx.arg(1), Class::Unlink))
}

// int security_path_rmdir(const struct path *dir, struct dentry *dentry);
#[lsm(hook = "path_rmdir")]
pub fn path_rmdir(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| in_dir(&ctx, 0, ctx.arg(1), Class::Rmdir))
}

// int security_path_truncate(const struct path *path);  (truncate(2), O_TRUNC; ftruncate on 6.1)
#[lsm(hook = "path_truncate")]
pub fn path_truncate(ctx: LsmContext) -> i32 {
    prior(&ctx, 1).unwrap_or_else(|| at_path(ctx.arg(0), Class::Truncate))
}

// int security_file_truncate(struct file *file);  (ftruncate(2); 6.2 and later only)
#[lsm(hook = "file_truncate")]
pub fn file_truncate(ctx: LsmContext) -> i32 {
    prior(&ctx, 1).unwrap_or_else(|| at_file(ctx.arg(0), Class::Truncate, Leased::Record, 0))
}

// int security_file_open(struct file *file);
// Every open of every task (not O_PATH) comes here first: an answer an earlier file at the
// same address kept is dropped before anything else (`write_cache`).
#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    write_cache::forget(file);
    prior(&ctx, 1).unwrap_or_else(|| opened(file))
}

// int security_file_permission(struct file *file, int mask);
// Every read/write/fallocate on an open file: catches writes through descriptors opened
// before a rule applied or received from another process.
#[lsm(hook = "file_permission")]
pub fn file_permission(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| {
        let mask: i32 = ctx.arg(1);
        if mask & MAY_WRITE == 0 {
            return 0;
        }
        write_through(ctx.arg(0))
    })
}

// int security_path_chmod(const struct path *path, umode_t mode);
#[lsm(hook = "path_chmod")]
pub fn path_chmod(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| at_path(ctx.arg(0), Class::Chmod))
}

// int security_path_chown(const struct path *path, kuid_t uid, kgid_t gid);
#[lsm(hook = "path_chown")]
pub fn path_chown(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| at_path(ctx.arg(0), Class::Chown))
}

// int security_inode_setxattr(struct mnt_idmap *idmap /* user_namespace on 6.1 */,
//                             struct dentry *dentry, const char *name, const void *value,
//                             size_t size, int flags);
#[lsm(hook = "inode_setxattr")]
pub fn inode_setxattr(ctx: LsmContext) -> i32 {
    prior(&ctx, 6).unwrap_or_else(|| at_dentry(ctx.arg(1), Class::Xattr))
}

// int security_inode_removexattr(struct mnt_idmap *idmap, struct dentry *dentry,
//                                const char *name);
#[lsm(hook = "inode_removexattr")]
pub fn inode_removexattr(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| at_dentry(ctx.arg(1), Class::Xattr))
}

// int security_inode_set_acl(struct mnt_idmap *idmap, struct dentry *dentry,
//                            const char *acl_name, struct posix_acl *kacl);  (6.2+; on 6.1
// ACLs are set through setxattr)
#[lsm(hook = "inode_set_acl")]
pub fn inode_set_acl(ctx: LsmContext) -> i32 {
    prior(&ctx, 4).unwrap_or_else(|| at_dentry(ctx.arg(1), Class::Xattr))
}

// int security_inode_remove_acl(struct mnt_idmap *idmap, struct dentry *dentry,
//                               const char *acl_name);  (6.2+)
#[lsm(hook = "inode_remove_acl")]
pub fn inode_remove_acl(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| at_dentry(ctx.arg(1), Class::Xattr))
}

// int security_path_mknod(const struct path *dir, struct dentry *dentry, umode_t mode,
//                         unsigned int dev);  (also open(O_CREAT) of a new file)
#[lsm(hook = "path_mknod")]
pub fn path_mknod(ctx: LsmContext) -> i32 {
    prior(&ctx, 4).unwrap_or_else(|| {
        let mode: u32 = ctx.arg::<u64>(2) as u32 & 0xffff;
        let kind = mode & S_IFMT;
        if kind == S_IFCHR || kind == S_IFBLK {
            // A device node would let an agent reach storage beneath the filesystem.
            return agent::always(EventKind::FileDecision, Class::Mknod, 0, |off| {
                let mnt = read_vfs::path_loc(off, ctx.arg(0)).map_or(core::ptr::null(), |l| l.mnt);
                Name::Loc(Loc {
                    dentry: ctx.arg(1),
                    mnt,
                })
            });
        }
        // open(O_CREAT) comes here too, with no file type bits: creating a regular file is
        // writing into the directory.
        if kind == 0 || kind == S_IFREG {
            create_in_dir(&ctx, ctx.arg(1))
        } else {
            in_dir(&ctx, 0, ctx.arg(1), Class::Mknod)
        }
    })
}

// int security_path_mkdir(const struct path *dir, struct dentry *dentry, umode_t mode);
#[lsm(hook = "path_mkdir")]
pub fn path_mkdir(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| in_dir(&ctx, 0, ctx.arg(1), Class::Write))
}

// int security_path_symlink(const struct path *dir, struct dentry *dentry,
//                           const char *old_name);
#[lsm(hook = "path_symlink")]
pub fn path_symlink(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| in_dir(&ctx, 0, ctx.arg(1), Class::Write))
}

/// Operation of `class` on `dentry`, reached through the `struct path *` in argument
/// `dir_arg` (which supplies the mount).
#[inline(always)]
fn in_dir(ctx: &LsmContext, dir_arg: usize, dentry: *const u8, class: Class) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let (loc, _) = entry_in(ctx, off, dir_arg, dentry);
    noted(
        decide(agent, off, loc, class),
        dentry,
        core::ptr::null(),
        class,
    )
}

/// `verdict` of a path hook on `dentry` (created in directory inode `dir`, else null), noted
/// when it allows, for the inode hook of the same call (`note`).
#[inline(always)]
pub(crate) fn noted(verdict: i32, dentry: *const u8, dir: *const u8, class: Class) -> i32 {
    if verdict == 0 {
        note::remember(dentry, dir, class);
    }
    verdict
}

/// `dentry` as reached through the directory `struct path *` in argument `dir_arg`, which
/// supplies the mount (none if unreadable: the walk then stays in the filesystem), and the
/// directory itself when it could be read.
#[inline(always)]
pub(crate) fn entry_in(
    ctx: &LsmContext,
    off: &KernelOffsets,
    dir_arg: usize,
    dentry: *const u8,
) -> (Loc, Option<Loc>) {
    let dir = read_vfs::path_loc(off, ctx.arg(dir_arg));
    let mnt = dir.map_or(core::ptr::null(), |l| l.mnt);
    (Loc { dentry, mnt }, dir)
}

/// `path_mknod` of a regular file (or `open(O_CREAT)`): writing into the directory, as
/// [`in_dir`]; an allow is noted, with the directory's inode, for the `inode_create` of the
/// same call (`note`).
#[inline(always)]
fn create_in_dir(ctx: &LsmContext, dentry: *const u8) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let (loc, dir) = entry_in(ctx, &off, 0, dentry);
    let verdict = decide(agent, &off, loc, Class::Write);
    match dir {
        Some(dir) => noted(
            verdict,
            dentry,
            read_vfs::ptr_at(dir.dentry, off.dentry_d_inode),
            Class::Write,
        ),
        None => verdict,
    }
}

/// Operation of `class` on the object named by a `struct path *`.
#[inline(always)]
fn at_path(path: *const u8, class: Class) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    match read_vfs::path_loc(off, path) {
        Some(loc) => noted(
            decide(agent, off, loc, class),
            loc.dentry,
            core::ptr::null(),
            class,
        ),
        None => unresolved(agent, class, Name::None),
    }
}

/// Operation of `class` on an open `struct file *`, made as `detail` says.
#[inline(always)]
pub(crate) fn at_file(file: *const u8, class: Class, leased: Leased, detail: u64) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    match read_vfs::file_loc(off, file) {
        Some(loc) => noted(
            decide_as(agent, off, loc, class, leased, Keep::NOTHING, detail),
            loc.dentry,
            core::ptr::null(),
            class,
        ),
        None => unresolved(agent, class, Name::None),
    }
}

/// A write (or fallocate) through an open `struct file *`: the answer kept for the file
/// while it holds (`write_cache`), else [`written`], whose plain allow is kept.
#[inline(always)]
fn write_through(file: *const u8) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let stamp = write_cache::stamp();
    if stamp.is_set() && write_cache::holds(file, &stamp) {
        return 0;
    }
    let off = maps::offsets();
    let Some(loc) = read_vfs::file_loc(off, file) else {
        return unresolved(agent, Class::Write, Name::None);
    };
    // A leased write was recorded when the file was opened; each write(2) under the lease
    // is only counted, so a long write does not flood the event stream.
    written(agent, off, file, loc, stamp, Leased::Count, 0, Fs::OfInode)
}

/// A shared writable mapping of `file`, made now (`detail`: `WRITE_VIA_MMAP` or
/// `WRITE_VIA_MPROTECT`): every later store writes the file with no system call, after any
/// lease has ended, so a lease does not lift it (see `crate::mapping`).
#[inline(always)]
pub(crate) fn mapped(agent: &Agent, file: *const u8, detail: u64) -> i32 {
    let off = maps::offsets();
    let Some(loc) = read_vfs::file_loc(off, file) else {
        return unresolved(agent, Class::Write, Name::None);
    };
    written(
        agent,
        off,
        file,
        loc,
        WriteStamp::NONE,
        Leased::Refused,
        detail,
        Fs::OfMount,
    )
}

/// Where [`written`] reads which filesystem the file is on. Its inode's superblock and its
/// mount's are one, except for a 6.1 stacked filesystem's backing file (`read_vfs::file_loc`),
/// which has no mount: a write(2) through it asks the inode. A mapping made writable asks the
/// mount (`file_mprotect` has no stack left for the other read: 6.1's verifier counts 512
/// bytes over the whole call chain), so an mprotect of a shared mapping through an overlay
/// on 6.1 fails closed (a known gap, docs/enforcement.md).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fs {
    OfInode,
    OfMount,
}

/// Writing through the open `file` at `loc`, by whoever holds it now:
/// - a file on a kernel filesystem (cgroup, procfs, sysfs, ...) is decided by who writes
///   (`crate::kfs`, which the kernel otherwise asks at open only) and never kept;
/// - a raw device is refused ([`raw_device`]);
/// - anything else is walked, a plain allow kept under `stamp`.
#[inline(always)]
fn written(
    agent: &Agent,
    off: &KernelOffsets,
    file: *const u8,
    loc: Loc,
    stamp: WriteStamp,
    leased: Leased,
    detail: u64,
    fs: Fs,
) -> i32 {
    let inode = read_vfs::file_inode(off, file);
    let magic = match fs {
        Fs::OfInode => read_vfs::inode_magic(off, inode),
        Fs::OfMount => read_vfs::mnt_magic(off, loc.mnt),
    };
    let keep = match magic {
        Some(magic) if kfs::decides(magic) => {
            let verdict = kfs::write_on(agent, off, inode, magic);
            if verdict != 0 {
                return verdict;
            }
            Keep::NOTHING
        }
        Some(_) => Keep { file, stamp },
        None => return unresolved(agent, Class::Write, Name::Loc(loc)),
    };
    let verdict = raw_device(agent, off, inode, loc);
    if verdict != 0 {
        return verdict;
    }
    decide_as(agent, off, loc, Class::Write, leased, keep, detail)
}

/// `/dev/mem`, `/dev/kmem` and `/dev/port` (`MKDEV(1, n)` in the kernel's encoding).
const DEV_MEM: u32 = 1 << 20 | 1;
const DEV_KMEM: u32 = 1 << 20 | 2;
const DEV_PORT: u32 = 1 << 20 | 4;

/// Writing a raw device, wherever its node lies: a block device (the disk under every
/// file rule) or memory (`/dev/mem`, `/dev/kmem`, `/dev/port`). Refused to agents
/// (RawDevice); 0 for every other inode. An unreadable mode fails closed.
#[inline(always)]
fn raw_device(agent: &Agent, off: &KernelOffsets, inode: *const u8, loc: Loc) -> i32 {
    let mut mode: u16 = 0;
    let mut rdev: u32 = 0;
    let detail = if !read_vfs::read_into(inode, off.inode_i_mode, &mut mode) {
        0
    } else {
        let kind = u32::from(mode) & S_IFMT;
        if kind != S_IFBLK && kind != S_IFCHR {
            return 0;
        }
        if !read_vfs::read_into(inode, off.inode_i_rdev, &mut rdev) {
            0
        } else if kind == S_IFBLK {
            RAW_BLOCK | u64::from(rdev)
        } else if rdev == DEV_MEM || rdev == DEV_KMEM || rdev == DEV_PORT {
            u64::from(rdev)
        } else {
            return 0;
        }
    };
    agent::builtin(
        agent,
        EventKind::FileDecision,
        Class::RawDevice,
        detail,
        |_| Name::Loc(loc),
    )
}

/// Operation of `class` on a dentry whose mount is not known.
#[inline(always)]
fn at_dentry(dentry: *const u8, class: Class) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    on_dentry(&agent, dentry, class)
}

/// [`at_dentry`] for an agent already looked up: the walk stays in the dentry's filesystem.
#[inline(always)]
fn on_dentry(agent: &Agent, dentry: *const u8, class: Class) -> i32 {
    let off = maps::offsets();
    let loc = Loc {
        dentry,
        mnt: core::ptr::null(),
    };
    decide(agent, &off, loc, class)
}

/// `open()`: for write (the write class, as any write) or for read only (the read class,
/// which only resources that name it, and governor's own directories, decide). Reads
/// through an open file are not decided again: that would cost every task a lookup on every
/// read(2).
#[inline(always)]
fn opened(file: *const u8) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let mode = read_vfs::file_mode(off, file);
    // A named file this very open created: `path_mknod` and `inode_create` have just decided
    // the directory for this task (the kernel sets FMODE_CREATED only after both allowed),
    // and the new inode itself is no protected resource. O_TMPFILE files (no name yet) are
    // still walked: their directory was decided by nobody else; a link giving them a name
    // is decided by `path_link`. Nothing is kept for the file here: the first write walks.
    let created = mode.is_some_and(|m| m & FMODE_CREATED != 0);
    if created && read_vfs::nlink(off, read_vfs::file_inode(off, file)) > 0 {
        return 0;
    }
    let Some(loc) = read_vfs::file_loc(off, file) else {
        return unresolved(agent, Class::Write, Name::None);
    };
    // An open for execution: the exec class first (`exec_setid::exec_open`), then reading it.
    let mut flags: u32 = 0;
    if !read_vfs::read_into(file, off.file_f_flags, &mut flags) || flags & FMODE_EXEC_FLAG != 0 {
        let verdict = exec_setid::exec_open(agent, off, file);
        if verdict != 0 {
            return verdict;
        }
    }
    // One decision per open (each walk costs the verifier dearly): the write class for an
    // open with write access, else the read class. Reading in an open for both is decided
    // when the kernel asks read and write permission together (`kfs::inode_permission`).
    if mode.is_none_or(|m| m & FMODE_WRITE != 0) {
        open_write(agent, off, file, loc)
    } else if mode.is_some_and(|m| m & FMODE_READ != 0) {
        decide(agent, off, loc, Class::Read)
    } else {
        0
    }
}

/// Read permission on `inode`, asked together with write permission (an open for reading and
/// writing, before its `file_open`): the read class, walked from one of the inode's dentries
/// within its filesystem (no mount is given; a filesystem mounted in a protected tree has
/// its root registered, `linked`).
#[inline(always)]
pub(crate) fn read_with_write(agent: &Agent, off: &KernelOffsets, inode: *const u8) -> i32 {
    let loc = Loc {
        dentry: read_vfs::alias(off, inode),
        mnt: core::ptr::null(),
    };
    decide(agent, off, loc, Class::Read)
}

/// `open()` with write access, of `file` at `loc`. Files on kernel filesystems were decided
/// by `crate::kfs` when the kernel asked write permission, moments ago; they are never kept:
/// the next agent to write through one, perhaps another it was handed to, is decided again.
#[inline(always)]
fn open_write(agent: &Agent, off: &KernelOffsets, file: *const u8, loc: Loc) -> i32 {
    let verdict = raw_device(agent, off, read_vfs::file_inode(off, file), loc);
    if verdict != 0 {
        return verdict;
    }
    let on_kfs = read_vfs::mnt_magic(off, loc.mnt).is_none_or(kfs::decides);
    let stamp = if on_kfs {
        WriteStamp::NONE
    } else {
        write_cache::stamp()
    };
    decide_as(
        agent,
        off,
        loc,
        Class::Write,
        Leased::Record,
        Keep { file, stamp },
        0,
    )
}
