//! Operations that give a file a new name: rename(2) (the source, the destination, and any
//! ancestor of a protected directory being moved) and link(2) (a new name of a protected
//! inode, or a new entry in a protected directory). Each decides through the walk (`walk`),
//! like every file hook (`crate::file`), and whoever succeeds has the new name registered
//! when it brings a protected file into or out of a protected tree (`linked`).

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::{maps::RULE_ANCESTOR_FLAG, Class, KernelOffsets};

use crate::{
    agent::{self, prior, Agent, Refusal},
    emit::Name,
    file::{entry_in, noted},
    linked, maps,
    read_vfs::{self, Loc},
    walk::decide,
};

const RENAME_EXCHANGE: u32 = 1 << 1;

// int security_path_rename(const struct path *old_dir, struct dentry *old_dentry,
//                          const struct path *new_dir, struct dentry *new_dentry,
//                          unsigned int flags);
#[lsm(hook = "path_rename")]
pub fn path_rename(ctx: LsmContext) -> i32 {
    prior(&ctx, 5).unwrap_or_else(|| {
        let verdict = rename(&ctx);
        if verdict == 0 {
            // Whoever renames: a file with other names moved into a protected tree is
            // registered (`linked`).
            let mnt = read_vfs::path_loc(maps::offsets(), ctx.arg(2))
                .map_or(core::ptr::null(), |l| l.mnt);
            linked::rename(ctx.arg(1), ctx.arg(3), mnt as u64);
        }
        verdict
    })
}

// int security_path_link(struct dentry *old_dentry, const struct path *new_dir,
//                        struct dentry *new_dentry);
#[lsm(hook = "path_link")]
pub fn path_link(ctx: LsmContext) -> i32 {
    prior(&ctx, 3).unwrap_or_else(|| {
        let verdict = link(&ctx);
        if verdict == 0 {
            // Whoever links: a new name of a file in a protected tree, or a name in one, is
            // registered so that the file is protected through every name (`linked`).
            let mnt = read_vfs::path_loc(maps::offsets(), ctx.arg(1))
                .map_or(core::ptr::null(), |l| l.mnt);
            linked::link(ctx.arg(0), ctx.arg(2), mnt as u64);
        }
        verdict
    })
}

/// link(2): a new name for a protected inode, or a new entry in a protected directory.
#[inline(always)]
fn link(ctx: &LsmContext) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let (old, _) = entry_in(ctx, off, 1, ctx.arg(0));
    let verdict = decide(agent, off, old, Class::Link);
    if verdict != 0 {
        return verdict;
    }
    let (new, _) = entry_in(ctx, off, 1, ctx.arg(2));
    noted(
        decide(agent, off, new, Class::Write),
        new.dentry,
        core::ptr::null(),
        Class::Write,
    )
}

/// rename(2): the source, the destination (the entry replaced, or the directory it lands
/// in), and any ancestor of a protected directory being moved.
#[inline(always)]
fn rename(ctx: &LsmContext) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let old_dentry: *const u8 = ctx.arg(1);
    let new_dir: *const u8 = ctx.arg(2);
    let new_dentry: *const u8 = ctx.arg(3);
    let flags: u32 = ctx.arg::<u64>(4) as u32;
    let mnt = read_vfs::path_loc(&off, new_dir).map_or(core::ptr::null(), |l| l.mnt);
    let v = ancestor(
        agent,
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
            agent,
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
        agent,
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
    let verdict = decide(
        agent,
        &off,
        Loc {
            dentry: new_dentry,
            mnt,
        },
        Class::Rename,
    );
    noted(verdict, old_dentry, core::ptr::null(), Class::Rename)
}

/// Refuses moving `at.dentry` when it is an ancestor of a protected inode.
#[inline(always)]
fn ancestor(agent: &Agent, off: &KernelOffsets, at: Loc) -> i32 {
    let Some(key) = read_vfs::inode_key(off, at.dentry) else {
        return 0;
    };
    // SAFETY: value copied out immediately.
    let Some(rule_id) = unsafe { maps::GOV_ANCESTORS.get(&key) }.copied() else {
        return 0;
    };
    let refusal = Refusal::file(Class::Rename, rule_id | RULE_ANCESTOR_FLAG, key, 0, 0);
    agent::refuse_named(agent, refusal, Name::Loc(at))
}
