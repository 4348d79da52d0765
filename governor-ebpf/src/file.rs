//! File hooks: delete, rename, truncate, write, chmod/chown, link, xattr/ACL, mknod, creating
//! entries in protected directories, mount.
//!
//! Protected resources are identified by inode, not by path string: a decision walks from the
//! target up through `d_parent` and, at the root of each mount, on to the mountpoint in the
//! parent mount, checking every inode against the protected map. Hardlinks, symlinks, `..`,
//! `/proc/self/fd`, `O_PATH` reopen and bind mounts all reach the same inodes. A walk that
//! cannot finish within `MAX_PATH_DEPTH` steps is denied (fail closed).
//!
//! Writes through an open file are decided once per file while nothing the answer rests on
//! changes (`write_cache`); a file the open itself just created is not walked again at open,
//! and a create is decided once, by `path_mknod`, not again by `inode_create` (`create`).
//! Writes to cgroup and procfs files are decided on every write, as if the writer had
//! opened the file itself (`cgroup::write_on`): the kernel checks those at open only, and
//! the descriptor may have been opened by someone else.
//!
//! Entry points are thin; each quotes the kernel prototype (identical on 6.1 and 6.12 unless
//! noted). The last argument of every LSM program is the previous program's verdict, which we
//! return when it is already a refusal.

use aya_ebpf::{cty::c_void, helpers::generated::bpf_loop, macros::lsm, programs::LsmContext};
use governor_common::{
    maps::{Counter, MAX_PATH_DEPTH, RULE_ANCESTOR_FLAG, RULE_BUILTIN, RULE_UNRESOLVED},
    Class, EventKind, InodeKey, KernelOffsets, ProtectedRule, Target, WriteStamp,
};

use crate::{
    agent::{self, prior, Agent, Refusal},
    cgroup, create, dir_cache,
    emit::{self, Name},
    lease::{self, Held, Verdict},
    maps,
    vfs::{self, Loc},
    write_cache,
};

const FMODE_WRITE: u32 = 0x2;
/// `f_mode` bit set by the open that created the file (the same value on 6.1 and 6.12).
const FMODE_CREATED: u32 = 0x10_0000;
const MAY_WRITE: i32 = 0x2;
const S_IFMT: u32 = 0o170000;
const S_IFCHR: u32 = 0o020000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;
const RENAME_EXCHANGE: u32 = 1 << 1;

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

// int security_path_rename(const struct path *old_dir, struct dentry *old_dentry,
//                          const struct path *new_dir, struct dentry *new_dentry,
//                          unsigned int flags);
#[lsm(hook = "path_rename")]
pub fn path_rename(ctx: LsmContext) -> i32 {
    prior(&ctx, 5).unwrap_or_else(|| rename(&ctx))
}

// int security_path_truncate(const struct path *path);  (truncate(2), O_TRUNC; ftruncate on 6.1)
#[lsm(hook = "path_truncate")]
pub fn path_truncate(ctx: LsmContext) -> i32 {
    prior(&ctx, 1).unwrap_or_else(|| at_path(ctx.arg(0), Class::Truncate))
}

// int security_file_truncate(struct file *file);  (ftruncate(2); 6.2 and later only)
#[lsm(hook = "file_truncate")]
pub fn file_truncate(ctx: LsmContext) -> i32 {
    prior(&ctx, 1).unwrap_or_else(|| at_file(ctx.arg(0), Class::Truncate, Leased::Record))
}

// int security_file_open(struct file *file);
// Every open of every task (not O_PATH) comes here first: an answer an earlier file at the
// same address kept is dropped before anything else (`write_cache`).
#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    write_cache::forget(file);
    prior(&ctx, 1).unwrap_or_else(|| open_for_write(file))
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

// int security_path_link(struct dentry *old_dentry, const struct path *new_dir,
//                        struct dentry *new_dentry);
#[lsm(hook = "path_link")]
pub fn path_link(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| {
        // A new name for a protected inode, or a new entry in a protected directory.
        let verdict = in_dir(&ctx, 1, ctx.arg(0), Class::Link);
        if verdict != 0 {
            return verdict;
        }
        in_dir(&ctx, 1, ctx.arg(2), Class::Write)
    })
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
            return always(Class::Mknod, |off| {
                let mnt = vfs::path_loc(off, ctx.arg(0)).map_or(core::ptr::null(), |l| l.mnt);
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

// int security_inode_create(struct inode *dir, struct dentry *dentry, umode_t mode);
// (open(O_CREAT) of a new file, right after `path_mknod`, and stacked filesystems' creates
// on the filesystem beneath (overlayfs: its upper layer); no mount is given, so the walk
// stays within the filesystem)
#[lsm(hook = "inode_create")]
pub fn inode_create(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| created(ctx.arg(0), ctx.arg(1)))
}

// int security_sb_mount(const char *dev_name, const struct path *path, const char *type,
//                       unsigned long flags, void *data);
#[lsm(hook = "sb_mount")]
pub fn sb_mount(ctx: LsmContext) -> i32 {
    prior(&ctx, 5).unwrap_or_else(|| always(Class::Mount, |_| Name::None))
}

// int security_move_mount(const struct path *from_path, const struct path *to_path);
#[lsm(hook = "move_mount")]
pub fn move_mount(ctx: LsmContext) -> i32 {
    prior(&ctx, 2).unwrap_or_else(|| always(Class::Mount, |_| Name::None))
}

/// Operation of `class` on `dentry`, reached through the `struct path *` in argument
/// `dir_arg` (which supplies the mount).
#[inline(always)]
fn in_dir(ctx: &LsmContext, dir_arg: usize, dentry: *const u8, class: Class) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let off = maps::offsets();
    let (loc, _) = entry_in(ctx, &off, dir_arg, dentry);
    decide(&agent, &off, loc, class)
}

/// `dentry` as reached through the directory `struct path *` in argument `dir_arg`, which
/// supplies the mount (none if unreadable: the walk then stays in the filesystem), and the
/// directory itself when it could be read.
#[inline(always)]
fn entry_in(
    ctx: &LsmContext,
    off: &KernelOffsets,
    dir_arg: usize,
    dentry: *const u8,
) -> (Loc, Option<Loc>) {
    let dir = vfs::path_loc(off, ctx.arg(dir_arg));
    let mnt = dir.map_or(core::ptr::null(), |l| l.mnt);
    (Loc { dentry, mnt }, dir)
}

/// `path_mknod` of a regular file (or `open(O_CREAT)`): writing into the directory, as
/// [`in_dir`]; an allow is noted for the `inode_create` of the same call (`create.rs`).
#[inline(always)]
fn create_in_dir(ctx: &LsmContext, dentry: *const u8) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let off = maps::offsets();
    let (loc, dir) = entry_in(ctx, &off, 0, dentry);
    let verdict = decide(&agent, &off, loc, Class::Write);
    if verdict == 0 {
        if let Some(dir) = dir {
            create::remember(dentry, vfs::ptr_at(dir.dentry, off.dentry_d_inode));
        }
    }
    verdict
}

/// `inode_create` of `dentry` in the directory inode `dir`: answered by the `path_mknod`
/// of the same call when it allowed it (`create.rs`), else decided within the filesystem.
#[inline(always)]
fn created(dir: *const u8, dentry: *const u8) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    if create::answered(dentry, dir) {
        return 0;
    }
    on_dentry(&agent, dentry, Class::Write)
}

/// Operation of `class` on the object named by a `struct path *`.
#[inline(always)]
fn at_path(path: *const u8, class: Class) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let off = maps::offsets();
    match vfs::path_loc(&off, path) {
        Some(loc) => decide(&agent, &off, loc, class),
        None => unresolved(&agent, &off, class, Name::None),
    }
}

/// Operation of `class` on an open `struct file *`.
#[inline(always)]
fn at_file(file: *const u8, class: Class, leased: Leased) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let off = maps::offsets();
    match vfs::file_loc(&off, file) {
        Some(loc) => decide_as(&agent, &off, loc, class, leased, Keep::NOTHING),
        None => unresolved(&agent, &off, class, Name::None),
    }
}

/// A write (or fallocate) through an open `struct file *`: the answer kept for the file
/// while it holds (`write_cache`), else a walk, whose plain allow is kept.
///
/// A file on a cgroup or procfs filesystem is never kept: the kernel asks write permission
/// on those at open only, so whoever opened it, the agent writing now is decided as if it
/// had opened it itself (`cgroup::write_on`), on every write.
#[inline(always)]
fn write_through(file: *const u8) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let stamp = write_cache::stamp();
    if let Some(now) = &stamp {
        if write_cache::holds(file, now) {
            return 0;
        }
    }
    let off = maps::offsets();
    let Some(loc) = vfs::file_loc(&off, file) else {
        return unresolved(&agent, &off, Class::Write, Name::None);
    };
    let keep = match vfs::mnt_magic(&off, loc.mnt) {
        Some(magic) if cgroup::decides(magic) => {
            let verdict = cgroup::write_on(&agent, &off, vfs::file_inode(&off, file), magic);
            if verdict != 0 {
                return verdict;
            }
            Keep::NOTHING
        }
        Some(_) => Keep { file, stamp },
        None => return unresolved(&agent, &off, Class::Write, Name::Loc(loc)),
    };
    // A leased write was recorded when the file was opened; each write(2) under the lease
    // is only counted, so a long write does not flood the event stream.
    decide_as(&agent, &off, loc, Class::Write, Leased::Count, keep)
}

/// Operation of `class` on a dentry whose mount is not known.
#[inline(always)]
fn at_dentry(dentry: *const u8, class: Class) -> i32 {
    let Some(agent) = agent::current() else {
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

/// `open()` with write access.
#[inline(always)]
fn open_for_write(file: *const u8) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let off = maps::offsets();
    let mode = vfs::file_mode(&off, file);
    let writing = mode.is_none_or(|m| m & FMODE_WRITE != 0);
    if !writing {
        return 0;
    }
    // A named file this very open created: `path_mknod` and `inode_create` have just decided
    // the directory for this task (the kernel sets FMODE_CREATED only after both allowed),
    // and the new inode itself is no protected resource. O_TMPFILE files (no name yet) are
    // still walked: their directory was decided by nobody else; a link giving them a name
    // is decided by `path_link`. Nothing is kept for the file here: the first write walks.
    let created = mode.is_some_and(|m| m & FMODE_CREATED != 0);
    if created && vfs::nlink(&off, vfs::file_inode(&off, file)) > 0 {
        return 0;
    }
    let stamp = write_cache::stamp();
    match vfs::file_loc(&off, file) {
        Some(loc) => {
            // A cgroup or procfs file is never kept (`write_through`): the next agent to
            // write through it, perhaps another one it was handed to, is decided again.
            let stamp = stamp.filter(|_| {
                vfs::mnt_magic(&off, loc.mnt).is_some_and(|magic| !cgroup::decides(magic))
            });
            decide_as(
                &agent,
                &off,
                loc,
                Class::Write,
                Leased::Record,
                Keep { file, stamp },
            )
        }
        None => unresolved(&agent, &off, Class::Write, Name::None),
    }
}

/// rename(2): the source, the destination (the entry replaced, or the directory it lands
/// in), and any ancestor of a protected directory being moved.
#[inline(always)]
fn rename(ctx: &LsmContext) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let off = maps::offsets();
    let old_dentry: *const u8 = ctx.arg(1);
    let new_dir: *const u8 = ctx.arg(2);
    let new_dentry: *const u8 = ctx.arg(3);
    let flags: u32 = ctx.arg::<u64>(4) as u32;
    let mnt = vfs::path_loc(&off, new_dir).map_or(core::ptr::null(), |l| l.mnt);
    let v = ancestor(
        &agent,
        &off,
        Loc {
            dentry: old_dentry,
            mnt,
        },
    );
    if v != 0 {
        return v;
    }
    if flags & RENAME_EXCHANGE != 0 {
        let v = ancestor(
            &agent,
            &off,
            Loc {
                dentry: new_dentry,
                mnt,
            },
        );
        if v != 0 {
            return v;
        }
    }
    let v = decide(
        &agent,
        &off,
        Loc {
            dentry: old_dentry,
            mnt,
        },
        Class::Rename,
    );
    if v != 0 {
        return v;
    }
    decide(
        &agent,
        &off,
        Loc {
            dentry: new_dentry,
            mnt,
        },
        Class::Rename,
    )
}

/// Refuses moving `at.dentry` when it is an ancestor of a protected inode.
#[inline(always)]
fn ancestor(agent: &Agent, off: &KernelOffsets, at: Loc) -> i32 {
    let Some(key) = vfs::inode_key(off, at.dentry) else {
        return 0;
    };
    // SAFETY: value copied out immediately.
    let Some(rule_id) = unsafe { maps::GOV_ANCESTORS.get(&key) }.copied() else {
        return 0;
    };
    let refusal = Refusal {
        kind: EventKind::FileDecision,
        class: Class::Rename as u32,
        rule_id: rule_id | RULE_ANCESTOR_FLAG,
        target: Target {
            inode: key,
            ..Target::default()
        },
        depth: 0,
    };
    agent::refuse_named(agent, refusal, off, Name::Loc(at))
}

/// Operations agents may never perform, wherever they aim. `target` names what they aim at
/// (a file decision), or nothing (a host decision).
#[inline(always)]
fn always(class: Class, target: impl FnOnce(&KernelOffsets) -> Name) -> i32 {
    let Some(agent) = agent::current() else {
        return 0;
    };
    let off = maps::offsets();
    let target = target(&off);
    let kind = if matches!(target, Name::None) {
        EventKind::HostDecision
    } else {
        EventKind::FileDecision
    };
    let refusal = Refusal {
        kind,
        class: class as u32,
        rule_id: RULE_BUILTIN,
        target: Target::default(),
        depth: 0,
    };
    agent::refuse_named(&agent, refusal, &off, target)
}

/// Fail closed: the target could not be resolved.
#[inline(always)]
pub(crate) fn unresolved(agent: &Agent, off: &KernelOffsets, class: Class, target: Name) -> i32 {
    emit::count(Counter::Unresolved);
    let refusal = Refusal {
        kind: EventKind::FileDecision,
        class: class as u32,
        rule_id: RULE_UNRESOLVED,
        target: Target::default(),
        depth: MAX_PATH_DEPTH,
    };
    agent::refuse_named(agent, refusal, off, target)
}

/// State of one walk, shared with the `bpf_loop` callback [`walk_step`].
#[repr(C)]
struct Walk {
    dentry: *const u8,
    mnt: *const u8,
    target: InodeKey,
    /// The rule of the protected inode found (when `outcome` is `PROTECTED`).
    rule: ProtectedRule,
    class_bit: u32,
    outcome: u32,
    depth: u32,
    /// Non-zero once a protected inode (with or without a decision on the class) was met
    /// above the target: the directory is then not kept (`dir_cache`).
    seen: u32,
}

const RUNNING: u32 = 0;
const CLEAR: u32 = 1;
const PROTECTED: u32 = 2;
const UNRESOLVED: u32 = 3;

/// Moves `dentry`/`mnt` one step up: to the parent, or at the root of a mount to the
/// mountpoint in the parent mount. False at the real root (or when the mount is unknown
/// there); `Err` when the chain cannot be read.
#[inline(always)]
fn step_up(off: &KernelOffsets, dentry: &mut *const u8, mnt: &mut *const u8) -> Result<bool, ()> {
    let Some(parent) = vfs::parent(off, *dentry) else {
        return Err(());
    };
    if parent != *dentry && !parent.is_null() {
        *dentry = parent;
        return Ok(true);
    }
    if mnt.is_null() {
        return Ok(false);
    }
    match vfs::mount_up(off, *mnt) {
        Some(up) => {
            *dentry = up.dentry;
            *mnt = up.mnt;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// One step of the walk: check the current inode, then move up ([`step_up`]). Returns 1 to
/// stop.
///
/// The walk runs under `bpf_loop` so the verifier checks one step, not `MAX_PATH_DEPTH`
/// unrolled copies (6.1's verifier gives up on the unrolled form). It stays minimal — one
/// map lookup per step, a handful of stopping states — because 6.12's verifier explores the
/// callback once per distinct state: agents' own decisions and leases are resolved after
/// the walk, on the rare path where a protected inode was found.
unsafe extern "C" fn walk_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Walk` on the caller's stack, passed to bpf_loop below.
    let w = unsafe { &mut *ctx.cast::<Walk>() };
    let off = maps::offsets();
    w.depth = index as u32;
    match vfs::inode_key(&off, w.dentry) {
        Some(key) => {
            if w.target.ino == 0 {
                w.target = key;
            }
            // SAFETY: value copied out immediately.
            if let Some(rule) = unsafe { maps::GOV_PROTECTED.get(&key) }.copied() {
                if (rule.deny_mask | rule.lease_mask | rule.agent_mask) & w.class_bit != 0 {
                    w.outcome = PROTECTED;
                    w.rule = rule;
                    return 1;
                }
                if index > 0 {
                    w.seen = 1;
                }
            }
        }
        // A negative dentry (the name being created) is fine at the start; its parent
        // decides. Anywhere else the chain is broken.
        None if index == 0 => {}
        None => {
            w.outcome = UNRESOLVED;
            return 1;
        }
    }
    match step_up(&off, &mut w.dentry, &mut w.mnt) {
        Ok(true) => 0,
        Ok(false) => {
            w.outcome = CLEAR;
            1
        }
        Err(()) => {
            w.outcome = UNRESOLVED;
            1
        }
    }
}

/// State of the lease walk, shared with [`lease_step`].
#[repr(C)]
struct LeaseWalk {
    dentry: *const u8,
    mnt: *const u8,
    /// The lease found nearest the target (0 = none).
    lease_id: u64,
    agent_id: u32,
    class: u32,
    /// Steps to take: up to and including the protected inode.
    steps: u32,
    /// Non-zero when a lease was found but had expired.
    expired: u32,
}

/// One step of the lease walk: a lease on any inode from the target up to the protected
/// inode covers the operation. Returns 1 to stop.
unsafe extern "C" fn lease_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `LeaseWalk` on the caller's stack, passed to bpf_loop below.
    let l = unsafe { &mut *ctx.cast::<LeaseWalk>() };
    if index as u32 >= l.steps {
        return 1;
    }
    let off = maps::offsets();
    if let Some(key) = vfs::inode_key(&off, l.dentry) {
        match lease::held(l.agent_id, l.class, key) {
            Held::Valid(id) => {
                l.lease_id = id;
                return 1;
            }
            Held::Expired => l.expired = 1,
            Held::None => {}
        }
    }
    match step_up(&off, &mut l.dentry, &mut l.mnt) {
        Ok(true) => 0,
        _ => 1,
    }
}

/// The lease `agent_id` holds for `class` on the inodes from `dentry` (in `mnt`) up to
/// `depth` levels above it: its id, or 0 (counting an expired one).
///
/// Not inlined, and given plain scalars: its walk state then lives in its own frame, not in
/// every hook that decides (6.1 limits the combined stack of a program's call chain to 512
/// bytes, and `path_rename` decides twice).
#[inline(never)]
fn lease_on_path(agent_id: u32, class: u32, dentry: *const u8, mnt: *const u8, depth: u32) -> u64 {
    let mut l = LeaseWalk {
        dentry,
        mnt,
        lease_id: 0,
        agent_id,
        class,
        steps: depth + 1,
        expired: 0,
    };
    // SAFETY: bpf_loop calls `lease_step` with a pointer to `l`, which outlives the call.
    unsafe {
        bpf_loop(
            MAX_PATH_DEPTH,
            lease_step as *mut c_void,
            (&mut l as *mut LeaseWalk).cast(),
            0,
        )
    };
    if l.lease_id == 0 && l.expired != 0 {
        emit::count(Counter::LeaseExpired);
    }
    l.lease_id
}

/// Walks up from `start` (across mounts when the mount is known) looking for a protected
/// inode whose rule denies `class`; refuses if found or if the walk cannot finish within
/// `MAX_PATH_DEPTH` steps (fail closed).
#[inline(always)]
pub(crate) fn decide(agent: &Agent, off: &KernelOffsets, start: Loc, class: Class) -> i32 {
    decide_as(agent, off, start, class, Leased::Record, Keep::NOTHING)
}

/// Where to keep a plain allow the walk finds (`write_cache`): for the write class on an
/// open file, with the tree sequences read before the walk; `stamp` is `None` to keep
/// nothing.
#[derive(Clone, Copy)]
struct Keep {
    file: *const u8,
    stamp: Option<WriteStamp>,
}

impl Keep {
    const NOTHING: Keep = Keep {
        file: core::ptr::null(),
        stamp: None,
    };
}

/// What to do with an operation a lease allows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leased {
    /// Emit a `lease-allow` event (and count it).
    Record,
    /// Only count it.
    Count,
}

/// [`decide`], with `leased` saying whether a lease-allowed operation is recorded, and `keep`
/// where a plain allow is kept.
#[inline(always)]
fn decide_as(
    agent: &Agent,
    off: &KernelOffsets,
    start: Loc,
    class: Class,
    leased: Leased,
    keep: Keep,
) -> i32 {
    if off.valid == 0 {
        return unresolved(agent, off, class, Name::Loc(start));
    }
    // The trees as they are before anything is read: what a directory kept under them says
    // holds, and what this walk finds may be kept.
    let now = keep.stamp.or_else(write_cache::stamp);
    if let Some(now) = &now {
        let seqs = dir_cache::seqs(now);
        let (dentry, mnt) = (start.dentry as u64, start.mnt as u64);
        if dir_cache::known_clear(dentry, mnt, seqs, now.not_after_ns) != 0 {
            // Written out here and below: as a method taking the whole `Keep` by reference,
            // this cost an agent's write-open about 160 instructions more (measured).
            if let Some(stamp) = &keep.stamp {
                write_cache::keep(keep.file, stamp);
            }
            return 0;
        }
    }
    let mut w = Walk {
        dentry: start.dentry,
        mnt: start.mnt,
        target: InodeKey::default(),
        rule: ProtectedRule {
            rule_id: 0,
            deny_mask: 0,
            lease_mask: 0,
            agent_mask: 0,
        },
        class_bit: class.bit(),
        outcome: RUNNING,
        depth: 0,
        seen: 0,
    };
    // SAFETY: bpf_loop calls `walk_step` with a pointer to `w`, which outlives the call.
    let ran = unsafe {
        bpf_loop(
            MAX_PATH_DEPTH,
            walk_step as *mut c_void,
            (&mut w as *mut Walk).cast(),
            0,
        )
    };
    match w.outcome {
        CLEAR if ran >= 0 => {
            // None at all above the target: its directory is kept for any class.
            if let (0, Some(now)) = (w.seen, &now) {
                let seqs = dir_cache::seqs(now);
                dir_cache::remember(
                    start.dentry as u64,
                    start.mnt as u64,
                    seqs,
                    now.not_after_ns,
                );
            }
            // No protected inode on the way decides this class for anyone: the same answer
            // for every agent, and the only one ever kept.
            if let Some(stamp) = &keep.stamp {
                write_cache::keep(keep.file, stamp);
            }
            return 0;
        }
        PROTECTED => {}
        _ => return unresolved(agent, off, class, Name::Loc(start)),
    }
    // The nearest protected inode with a decision on the class, for anyone, decides.
    let lease_id = match lease::verdict(agent.info.agent_id, w.rule.rule_id, &w.rule, w.class_bit) {
        Verdict::Deny => 0,
        Verdict::Lease => match lease_on_path(
            agent.info.agent_id,
            class as u32,
            start.dentry,
            start.mnt,
            w.depth,
        ) {
            0 => 0,
            _ if leased == Leased::Count => {
                emit::count(Counter::LeaseAllowed);
                return 0;
            }
            id => id,
        },
        Verdict::Allow | Verdict::Silent => return 0,
    };
    let refusal = Refusal {
        kind: EventKind::FileDecision,
        class: class as u32,
        rule_id: w.rule.rule_id,
        target: Target {
            inode: w.target,
            ..Target::default()
        },
        depth: w.depth,
    };
    agent::verdict(agent::settle(
        agent,
        refusal,
        lease_id,
        off,
        Name::Loc(start),
    ))
}
