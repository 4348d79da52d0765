//! Process classes of the agent's own tasks: exec of listed binaries and of nameless files
//! (Exec; executable mappings come through `crate::mapping`), uid/gid transitions and
//! capability gains by exec (Setid). What agents do to tasks outside them is in
//! `crate::outside`.
//!
//! Entry points first, each under the hook's declaration from the kernel's
//! `include/linux/lsm_hook_defs.h` (identical on 6.1 and 6.12 unless noted; checked against
//! both kernels' BTF). The hooks get one extra argument, the return value of the BPF-LSM
//! programs before us on the same hook: a non-zero value is passed on unchanged. Decisions
//! follow below the entry points.
//!
//! Exec is decided by inode, so a hard link or symlink to a listed binary is the same binary,
//! and the dynamic loader (`ld.so BINARY`, which maps the binary itself) is caught where it
//! maps the file executable. A *copy* is another inode and is not matched.
//!
//! Files without a name on any filesystem (`i_nlink == 0`) cannot be listed or audited by
//! path: memfd_create(2) files (shmem clears their link count at creation), `O_TMPFILE`
//! files not yet linked, and files deleted while open. Agents may not execute them, by exec
//! or by `PROT_EXEC` mapping, unless their policy sets `allow_fileless_exec`.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use governor_common::{
    detail::{self, EXEC_VIA_EXECVE, EXEC_VIA_MPROTECT, SETID_CAPS, SETID_GROUPS, SETID_VIA_EXEC},
    maps::{
        Counter, CredId, AGENT_FLAG_ALLOW_FILELESS_EXEC, RULE_BINARY_FLAG, RULE_BUILTIN,
        RULE_FILELESS, RULE_UNRESOLVED,
    },
    Class, InodeKey, KernelOffsets,
};

use crate::{
    agent::{self, Agent, Refusal},
    emit::{self, Name},
    lease::{self, Verdict},
    maps, read_task, read_vfs,
};

// 6.1:  LSM_HOOK(int, 0, bprm_creds_from_file, struct linux_binprm *bprm, struct file *file)
// 6.12: LSM_HOOK(int, 0, bprm_creds_from_file, struct linux_binprm *bprm,
//                const struct file *file)
// Runs once per execve, after the set-user/group-ID bits were applied to bprm->cred and
// before the point of no return: an error fails the execve.
#[lsm(hook = "bprm_creds_from_file")]
pub fn bprm_creds_from_file(ctx: LsmContext) -> i32 {
    let bprm: *const u8 = ctx.arg(0);
    let file: *const u8 = ctx.arg(1);
    if let Some(refused) = agent::prior(&ctx, 2) {
        return refused;
    }
    setid_exec(bprm, file)
}

// LSM_HOOK(int, 0, task_fix_setuid, struct cred *new, const struct cred *old, int flags)
#[lsm(hook = "task_fix_setuid")]
pub fn task_fix_setuid(ctx: LsmContext) -> i32 {
    let new: *const u8 = ctx.arg(0);
    let old: *const u8 = ctx.arg(1);
    if let Some(refused) = agent::prior(&ctx, 3) {
        return refused;
    }
    setid(new, old, &UIDS)
}

// LSM_HOOK(int, 0, task_fix_setgid, struct cred *new, const struct cred *old, int flags)
#[lsm(hook = "task_fix_setgid")]
pub fn task_fix_setgid(ctx: LsmContext) -> i32 {
    let new: *const u8 = ctx.arg(0);
    let old: *const u8 = ctx.arg(1);
    if let Some(refused) = agent::prior(&ctx, 3) {
        return refused;
    }
    setid(new, old, &GIDS)
}

// LSM_HOOK(int, 0, task_fix_setgroups, struct cred *new, const struct cred *old)
#[lsm(hook = "task_fix_setgroups")]
pub fn task_fix_setgroups(ctx: LsmContext) -> i32 {
    let new: *const u8 = ctx.arg(0);
    let old: *const u8 = ctx.arg(1);
    if let Some(refused) = agent::prior(&ctx, 2) {
        return refused;
    }
    setgroups(new, old)
}

// ---------------------------------------------------------------------------------------
// Exec

/// `PROT_EXEC` from `<asm-generic/mman-common.h>`.
const PROT_EXEC: u64 = 0x4;

/// The open of `file` for execution (`__FMODE_EXEC`, asked at `file_open`, `crate::file`):
/// execve(2) of a binary, of each interpreter of a `#!` chain, and the backing file a
/// stacked filesystem opens for an exec through it (whose inode is the real binary's).
/// Decided at the open, as Landlock decides execution, so that the inode decided is the one
/// whose contents run.
#[inline(always)]
pub(crate) fn exec_open(agent: &Agent, off: &KernelOffsets, file: *const u8) -> i32 {
    exec_file(agent, off, file, EXEC_VIA_EXECVE)
}

/// A mapping of `file` that would be executable.
#[inline(always)]
pub(crate) fn exec_mapping(file: *const u8, prot: u64, via: u64) -> i32 {
    if prot & PROT_EXEC == 0 || file.is_null() {
        return 0;
    }
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    exec_file(&agent, &maps::offsets(), file, via)
}

/// mprotect(2) making a mapping executable: decided like mapping its file (anonymous
/// memory has no file and is not this class's business).
#[inline(always)]
pub(crate) fn exec_remap(vma: *const u8, prot: u64) -> i32 {
    if prot & PROT_EXEC == 0 {
        return 0;
    }
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let mut file: *const u8 = core::ptr::null();
    if off.valid != 0 && read_vfs::read_into(vma, off.vm_area_struct_vm_file, &mut file) {
        if file.is_null() {
            return 0;
        }
    } else {
        // Unreadable: exec_file fails closed on the null file.
        file = core::ptr::null();
    }
    exec_file(agent, &off, file, EXEC_VIA_MPROTECT)
}

/// May `agent` execute `file`? A null or unreadable file fails closed.
#[inline(always)]
fn exec_file(agent: &Agent, off: &KernelOffsets, file: *const u8, via: u64) -> i32 {
    let mut key = InodeKey::default();
    let inode = if off.valid == 0 {
        core::ptr::null()
    } else {
        read_vfs::file_inode(off, file)
    };
    let mut lease_needed = false;
    let rule_id = if !read_vfs::inode_key_into(off, inode, &mut key) {
        unresolved()
    } else if let Some(listed) = listed(agent, &key) {
        match listed {
            Listed::Allowed => return 0,
            Listed::Denied(rule_id) => rule_id,
            Listed::Leased(rule_id) => {
                lease_needed = true;
                rule_id
            }
        }
    } else if agent.info.flags & AGENT_FLAG_ALLOW_FILELESS_EXEC != 0 {
        return 0;
    } else {
        match read_vfs::nlink(off, inode) {
            0 => RULE_FILELESS,
            n if n > 0 => return 0,
            _ => unresolved(),
        }
    };
    let refusal = Refusal::file(Class::Exec, rule_id, key, via, 0);
    let mut lease_id = 0;
    if lease_needed {
        lease_id = lease::lift(agent.info.agent_id, Class::Exec as u32, key);
        // The exec is recorded; the mappings the loader then makes of the same binary are
        // only counted.
        if lease_id != 0 && via != EXEC_VIA_EXECVE {
            lease::count_allowed();
            return 0;
        }
    }
    let name = Name::File(file);
    agent::verdict(agent::settle(agent, refusal, lease_id, name))
}

/// What the policy says about executing a listed binary.
enum Listed {
    Allowed,
    Denied(u32),
    Leased(u32),
}

/// The decision on executing the binary `key` if it is listed (with its rule id).
#[inline(always)]
fn listed(agent: &Agent, key: &InodeKey) -> Option<Listed> {
    // SAFETY: the value is copied out immediately.
    let rule = unsafe { maps::GOV_BINARIES.get(key) }.copied()?;
    let own = rule.rule_id | RULE_BINARY_FLAG;
    Some(
        match lease::verdict(agent.info.agent_id, own, &rule, Class::Exec.bit()) {
            Verdict::Deny => Listed::Denied(rule.rule_id),
            Verdict::Lease => Listed::Leased(rule.rule_id),
            Verdict::Allow | Verdict::Silent => Listed::Allowed,
        },
    )
}

#[inline(always)]
fn unresolved() -> u32 {
    emit::count(Counter::Unresolved);
    RULE_UNRESOLVED
}

// ---------------------------------------------------------------------------------------
// Setid

/// The user ids among the cred ids: real, effective, saved, filesystem.
const UIDS: [CredId; 4] = [CredId::Uid, CredId::Euid, CredId::Suid, CredId::Fsuid];
/// The group ids, in the same order.
const GIDS: [CredId; 4] = [CredId::Gid, CredId::Egid, CredId::Sgid, CredId::Fsgid];
/// Groups compared one by one; longer lists count as changed (fail closed).
const MAX_GROUPS_COMPARED: u32 = 32;

/// setuid(2) family (`ids` = [`UIDS`]) or setgid(2) family ([`GIDS`]): any change of any of
/// the ids is a transition. Setting an id to the value it already has is not.
#[inline(always)]
fn setid(new: *const u8, old: *const u8, ids: &[CredId]) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let mut new_ids = [0u32; 8];
    let mut old_ids = [0u32; 8];
    let (rule_id, detail) = if off.valid != 0
        && read_task::cred_ids(&off, new, &mut new_ids)
        && read_task::cred_ids(&off, old, &mut old_ids)
    {
        let detail = first_change(&new_ids, &old_ids, ids);
        if detail == NO_CHANGE {
            return 0;
        }
        (RULE_BUILTIN, detail)
    } else {
        (unresolved(), 0)
    };
    refuse_setid(agent, rule_id, detail, Name::None)
}

/// [`first_change`] found no difference.
const NO_CHANGE: u64 = u64::MAX;

/// The setid detail of the first id in `ids` that differs between `new` and `old`, or
/// [`NO_CHANGE`].
#[inline(always)]
fn first_change(new: &[u32; 8], old: &[u32; 8], ids: &[CredId]) -> u64 {
    for id in ids {
        let i = *id as usize;
        if new[i] != old[i] {
            return detail::setid(i as u64, new[i]);
        }
    }
    NO_CHANGE
}

/// setgroups(2): a transition unless the new supplementary groups equal the old ones.
#[inline(always)]
fn setgroups(new: *const u8, old: *const u8) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let (n, o) = if off.valid == 0 {
        (core::ptr::null(), core::ptr::null())
    } else {
        (
            read_task::cred_groups(&off, new),
            read_task::cred_groups(&off, old),
        )
    };
    if !n.is_null() && n == o {
        return 0;
    }
    let new_count = read_task::ngroups(&off, n);
    let old_count = read_task::ngroups(&off, o);
    let rule_id = if n.is_null() || o.is_null() || new_count < 0 || old_count < 0 {
        unresolved()
    } else if new_count == old_count && same_groups(&off, n, o, new_count) {
        return 0;
    } else {
        RULE_BUILTIN
    };
    let detail = detail::setid(SETID_GROUPS, new_count.max(0) as u32);
    refuse_setid(agent, rule_id, detail, Name::None)
}

/// Are the first `count` gids of both sorted group lists equal?
#[inline(always)]
fn same_groups(off: &KernelOffsets, new: *const u8, old: *const u8, count: i64) -> bool {
    if count > i64::from(MAX_GROUPS_COMPARED) {
        return false;
    }
    let mut i = 0u32;
    while i < MAX_GROUPS_COMPARED {
        if i64::from(i) >= count {
            return true;
        }
        let a = read_task::group(off, new, i);
        if a < 0 || a != read_task::group(off, old, i) {
            return false;
        }
        i += 1;
    }
    true
}

/// execve(2) of a set-user-ID or set-group-ID file, or of a file whose capabilities
/// (`security.capability`) raise the permitted set: the new effective ids or permitted
/// capabilities (already applied to `bprm->cred` by the capability module, which runs before
/// BPF-LSM) differ from the ones the task runs with. Under no_new_privs the kernel grants
/// neither, and there is nothing to refuse.
#[inline(always)]
fn setid_exec(bprm: *const u8, file: *const u8) -> i32 {
    let Some((agent, _event)) = agent::acting() else {
        return 0;
    };
    let agent = &agent;
    let off = maps::offsets();
    let new = read_vfs::ptr_at(bprm, off.linux_binprm_cred);
    let old = read_task::task_cred(&off, read_task::current_task());
    let mut new_ids = [0u32; 8];
    let mut old_ids = [0u32; 8];
    let mut new_caps: u64 = 0;
    let mut old_caps: u64 = 0;
    let (rule_id, detail) = if off.valid != 0
        && read_task::cred_ids(&off, new, &mut new_ids)
        && read_task::cred_ids(&off, old, &mut old_ids)
        && read_vfs::read_into(new, off.cred_cap_permitted, &mut new_caps)
        && read_vfs::read_into(old, off.cred_cap_permitted, &mut old_caps)
    {
        let detail = first_change(&new_ids, &old_ids, &EFFECTIVE);
        let raised = new_caps & !old_caps;
        if detail != NO_CHANGE {
            (RULE_BUILTIN, detail | SETID_VIA_EXEC)
        } else if raised != 0 {
            let caps = detail::setid(SETID_CAPS, lowest_bit(raised));
            (RULE_BUILTIN, caps | SETID_VIA_EXEC)
        } else {
            return 0;
        }
    } else {
        (unresolved(), SETID_VIA_EXEC)
    };
    let name = Name::File(file);
    refuse_setid(agent, rule_id, detail, name)
}

/// The number of the lowest set bit of `v` (non-zero): the bits below it, counted without a
/// branch (`count_ones` is plain arithmetic in BPF; branches here multiply the paths the 6.1
/// verifier walks through the event code after it).
#[inline(always)]
fn lowest_bit(v: u64) -> u32 {
    ((v & v.wrapping_neg()).wrapping_sub(1)).count_ones()
}

/// What a set-ID exec changes. The other ids are no evidence: exec also resets the saved and
/// filesystem ids to the effective ones for every binary.
const EFFECTIVE: [CredId; 2] = [CredId::Euid, CredId::Egid];

#[inline(always)]
fn refuse_setid(agent: &Agent, rule_id: u32, detail: u64, name: Name) -> i32 {
    let refusal = Refusal::host(Class::Setid, rule_id, detail);
    agent::refuse_named(agent, refusal, name)
}
