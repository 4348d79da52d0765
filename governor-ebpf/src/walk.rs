//! The walk that decides a file class: from the target up through `d_parent` and, at the
//! root of each mount, on to the mountpoint in the parent mount, checking every inode against
//! the protected map; then, where the nearest protected inode needs a lease, the lease walk
//! over the same inodes. One walk serves every file hook (`file`, `ipc`, `attr`, `mapping`).
//!
//! Protected resources are identified by inode, not by path string, so hardlinks, symlinks,
//! `..`, `/proc/self/fd`, `O_PATH` reopen and bind mounts all reach the same inodes. A walk
//! that cannot finish within `MAX_PATH_DEPTH` steps is denied (fail closed), and so is one
//! that ends at a disconnected dentry (a file opened by handle whose directories the dentry
//! cache no longer connects): where it lies cannot be told.

use aya_ebpf::{cty::c_void, helpers::generated::bpf_loop};
use governor_common::{
    maps::{Counter, MAX_PATH_DEPTH, RULE_LINKED_FLAG, RULE_NONE, RULE_UNRESOLVED},
    Class, Decision, InodeKey, KernelOffsets, ProtectedRule, WriteStamp,
};

use crate::{
    agent::{self, Agent, Refusal},
    dir_cache,
    emit::{self, Name},
    lease::{self, Held, Verdict},
    linked, maps,
    read_vfs::{self, Loc},
    write_cache,
};

/// Fail closed: the target could not be resolved.
#[inline(always)]
pub(crate) fn unresolved(agent: &Agent, class: Class, target: Name) -> i32 {
    emit::count(Counter::Unresolved);
    let refusal = Refusal::file(
        class,
        RULE_UNRESOLVED,
        InodeKey::default(),
        0,
        MAX_PATH_DEPTH,
    );
    agent::refuse_named(agent, refusal, target)
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

impl Walk {
    /// A walk from `start` for the class mask `class_bit`, about `target`.
    #[inline(always)]
    fn new(start: Loc, class_bit: u32, target: InodeKey) -> Walk {
        Walk {
            dentry: start.dentry,
            mnt: start.mnt,
            target,
            rule: ProtectedRule {
                rule_id: 0,
                deny_mask: 0,
                lease_mask: 0,
                agent_mask: 0,
            },
            class_bit,
            outcome: RUNNING,
            depth: 0,
            seen: 0,
        }
    }
}

const RUNNING: u32 = 0;
const CLEAR: u32 = 1;
const PROTECTED: u32 = 2;
const UNRESOLVED: u32 = 3;

/// `DCACHE_DISCONNECTED` (include/linux/dcache.h; bit 5 on 6.1 and 6.12): a dentry that
/// `open_by_handle_at(2)` (or NFS export) obtained without connecting it to its parents. It
/// is its own parent, like a filesystem's root, though it lies anywhere below it.
const DCACHE_DISCONNECTED: u32 = 1 << 5;

/// Moves `dentry`/`mnt` one step up: to the parent, or at the root of a mount to the
/// mountpoint in the parent mount. False at the real root (or when the mount is unknown
/// there); `Err` when the chain cannot be read, or ends at a disconnected dentry, whose place
/// in the tree cannot be told.
#[inline(always)]
fn step_up(off: &KernelOffsets, dentry: &mut *const u8, mnt: &mut *const u8) -> Result<bool, ()> {
    let Some(parent) = read_vfs::parent(off, *dentry) else {
        return Err(());
    };
    if parent != *dentry && !parent.is_null() {
        *dentry = parent;
        return Ok(true);
    }
    let mut flags: u32 = 0;
    if !read_vfs::read_into(*dentry, off.dentry_d_flags, &mut flags)
        || flags & DCACHE_DISCONNECTED != 0
    {
        return Err(());
    }
    if mnt.is_null() {
        return Ok(false);
    }
    match read_vfs::mount_up(off, *mnt) {
        Some(up) => {
            *dentry = up.dentry;
            *mnt = up.mnt;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The inode an operation on `dentry` acts on: its own, or for a negative dentry (a name
/// being created) its directory's. Read before the walk, outside its callback, for the
/// reason given in [`walk_step`].
#[inline(always)]
fn target_of(off: &KernelOffsets, dentry: *const u8) -> InodeKey {
    match read_vfs::inode_key(off, dentry) {
        Some(key) => key,
        None => read_vfs::parent(off, dentry)
            .and_then(|p| read_vfs::inode_key(off, p))
            .unwrap_or_default(),
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
    // Nothing here branches on what an earlier step left in `w`: 6.1 verifies a bpf_loop
    // callback once, with `w` as it is at the call, and hard-wires the branches it saw go one
    // way (a test of "target still unset" here became "always", so the target was the last
    // inode on the way). The target is therefore read before the loop ([`target_of`]).
    match read_vfs::inode_key(&off, w.dentry) {
        Some(key) => {
            // SAFETY: value copied out immediately.
            if let Some(rule) = unsafe { maps::GOV_PROTECTED.get(&key) }.copied() {
                if rule.decides(w.class_bit) {
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
    if let Some(key) = read_vfs::inode_key(&off, l.dentry) {
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
    let found = if l.lease_id != 0 {
        Held::Valid(l.lease_id)
    } else if l.expired != 0 {
        Held::Expired
    } else {
        Held::None
    };
    lease::lifted(found)
}

/// The rule of the nearest protected inode at or above `start` (across mounts when the mount
/// is known) with any decision, as a walk for any class would find it; its `rule_id` is
/// `linked::ABSENT` when there is none, the walk could not finish, or `start` is null. For
/// registering a new name of a protected file (`linked`), whoever makes it.
#[inline(always)]
pub(crate) fn rule_above(start: Loc) -> ProtectedRule {
    let absent = ProtectedRule {
        rule_id: linked::ABSENT,
        deny_mask: 0,
        lease_mask: 0,
        agent_mask: 0,
    };
    if start.dentry.is_null() {
        return absent;
    }
    let mut w = Walk::new(start, u32::MAX, InodeKey::default());
    // SAFETY: bpf_loop calls `walk_step` with a pointer to `w`, which outlives the call.
    let ran = unsafe {
        bpf_loop(
            MAX_PATH_DEPTH,
            walk_step as *mut c_void,
            (&mut w as *mut Walk).cast(),
            0,
        )
    };
    if ran >= 0 && w.outcome == PROTECTED {
        w.rule
    } else {
        absent
    }
}

/// Walks up from `start` (across mounts when the mount is known) looking for a protected
/// inode whose rule denies `class`; refuses if found or if the walk cannot finish within
/// `MAX_PATH_DEPTH` steps (fail closed).
#[inline(always)]
pub(crate) fn decide(agent: &Agent, off: &KernelOffsets, start: Loc, class: Class) -> i32 {
    decide_as(agent, off, start, class, Leased::Record, Keep::NOTHING, 0)
}

/// Where to keep a plain allow the walk finds (`write_cache`): for the write class on an
/// open file, with the tree sequences read before the walk; `stamp` is `None` to keep
/// nothing.
#[derive(Clone, Copy)]
pub(crate) struct Keep {
    pub file: *const u8,
    /// [`WriteStamp::NONE`] to keep nothing.
    pub stamp: WriteStamp,
}

impl Keep {
    pub const NOTHING: Keep = Keep {
        file: core::ptr::null(),
        stamp: WriteStamp::NONE,
    };
}

/// What to do with an operation a lease allows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leased {
    /// Emit a `lease-allow` event (and count it).
    Record,
    /// Only count it.
    Count,
    /// Refuse it as if no lease were held: what the operation makes outlives any lease (a
    /// shared writable mapping writes on after the lease has expired).
    Refused,
}

/// [`decide`], with `leased` saying what a lease does for the operation, `keep` where a plain
/// allow is kept, and `detail` how the operation was made (the event's `detail`).
#[inline(always)]
pub(crate) fn decide_as(
    agent: &Agent,
    off: &KernelOffsets,
    start: Loc,
    class: Class,
    leased: Leased,
    keep: Keep,
    detail: u64,
) -> i32 {
    if off.valid == 0 {
        return unresolved(agent, class, Name::Loc(start));
    }
    // An allowed operation is recorded too for an agent that records everything.
    let records = agent::records_allowed(agent, class);
    // What the operation comes to: (rule, target, depth, lease, allowed) of its one event, or
    // a plain allow that is not recorded (`return 0`). Every way out that records meets below, at
    // the program's one `defer` of a file decision: written once, the event's stack slots are
    // too (6.12 refused `path_rename` at 576 bytes of stack with one per way out).
    let (rule_id, target, depth, lease_id, allowed) = 'decided: {
        // The trees as they are before anything is read: what a directory kept under them
        // says holds, and what this walk finds may be kept.
        let now = if keep.stamp.is_set() {
            keep.stamp
        } else {
            write_cache::stamp()
        };
        if now.is_set() {
            let seqs = dir_cache::seqs(&now);
            let (dentry, mnt) = (start.dentry as u64, start.mnt as u64);
            if dir_cache::known_clear(dentry, mnt, seqs, now.not_after_ns) != 0 {
                // Written out here and below: as a method taking the whole `Keep` by
                // reference, this cost an agent's write-open about 160 instructions more
                // (measured).
                if keep.stamp.is_set() {
                    write_cache::keep(keep.file, &keep.stamp);
                }
                if !records {
                    return 0;
                }
                break 'decided (RULE_NONE, target_of(off, start.dentry), 0, 0, true);
            }
        }
        let mut w = Walk::new(start, class.bit(), target_of(off, start.dentry));
        // SAFETY: bpf_loop calls `walk_step` with a pointer to `w`, which outlives the call.
        let ran = unsafe {
            bpf_loop(
                MAX_PATH_DEPTH,
                walk_step as *mut c_void,
                (&mut w as *mut Walk).cast(),
                0,
            )
        };
        // Clear of protected inodes on the way: an inode registered for its place elsewhere
        // may still decide (`linked`): the target's own (a second name of a protected file),
        // or, for a walk that could not cross mounts, the root it ended at (a filesystem
        // mounted inside a protected tree).
        let root = if start.mnt.is_null() {
            w.dentry
        } else {
            core::ptr::null()
        };
        let linked = if w.outcome == CLEAR && ran >= 0 {
            linked::registered(off, &w.target, root, w.depth)
        } else {
            linked::NONE
        };
        if linked.rule.rule_id != linked::ABSENT {
            w.seen = 1;
            if linked.rule.decides(w.class_bit) {
                w.outcome = PROTECTED;
                w.rule = linked.rule;
                w.depth = linked.depth;
            }
        }
        match w.outcome {
            CLEAR if ran >= 0 => {
                // None at all above the target: its directory is kept for any class.
                if w.seen == 0 && now.is_set() {
                    let seqs = dir_cache::seqs(&now);
                    dir_cache::remember(
                        start.dentry as u64,
                        start.mnt as u64,
                        seqs,
                        now.not_after_ns,
                    );
                }
                // No protected inode on the way decides this class for anyone: the same
                // answer for every agent, and the only one ever kept.
                if keep.stamp.is_set() {
                    write_cache::keep(keep.file, &keep.stamp);
                }
                if !records {
                    return 0;
                }
                break 'decided (RULE_NONE, w.target, w.depth, 0, true);
            }
            PROTECTED => {}
            _ => return unresolved(agent, class, Name::Loc(start)),
        }
        // The nearest protected inode with a decision on the class, for anyone, decides.
        let own = w.rule.rule_id & !RULE_LINKED_FLAG;
        let lease_id = match lease::verdict(agent.info.agent_id, own, &w.rule, w.class_bit) {
            Verdict::Deny => 0,
            Verdict::Lease if leased == Leased::Refused => 0,
            Verdict::Lease => match lease_on_path(
                agent.info.agent_id,
                class as u32,
                start.dentry,
                start.mnt,
                w.depth,
            ) {
                0 => 0,
                _ if leased == Leased::Count => {
                    lease::count_allowed();
                    return 0;
                }
                id => id,
            },
            Verdict::Allow | Verdict::Silent => {
                if !records {
                    return 0;
                }
                break 'decided (w.rule.rule_id, w.target, w.depth, 0, true);
            }
        };
        (w.rule.rule_id, w.target, w.depth, lease_id, false)
    };
    let decision = if allowed {
        Decision::Allow
    } else {
        agent::refusal_decision(agent, lease_id)
    };
    let refusal = Refusal::file(class, rule_id, target, detail, depth);
    agent::defer(agent, refusal, decision, lease_id, Name::Loc(start));
    agent::verdict(decision)
}
