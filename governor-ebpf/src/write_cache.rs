//! Writes decided once per open file: an agent's `write(2)` through a descriptor whose file
//! the walk found under no protected inode with a decision on writes costs a lookup here
//! instead of a walk (`file_permission` runs on every write).
//!
//! What a walk for the write class answers depends only on the file's place (its dentry's
//! `d_parent` chain and its mount's parents and mountpoints), the inodes found there, and the
//! protected map. Only the *plain allow* is kept — no protected inode on the way decides
//! writes for anyone — which does not depend on the agent, on its own decisions, nor on
//! leases; lease outcomes, refusals and observe-mode allows are never kept, so they are
//! decided again on every write (leases expire, and a revoked one blocks at once).
//!
//! Files on cgroup (v1 and v2) and procfs filesystems are never kept either: what a write
//! to them may do depends on the agent writing (`cgroup::write_on`), and the kernel checks
//! it at open only, so a descriptor handed to another agent must be decided again.
//! `crate::file` reads the filesystem's magic before it keeps anything (at open and on an
//! uncached write), so a kept entry is never one of those and the lookup here needs no check.
//!
//! A kept answer stands while nothing it rests on can have changed:
//! - the place: every `d_parent` change (rename, exchange, splice of a directory alias, by
//!   anyone, through any path in the kernel) happens inside the kernel's `rename_lock` write
//!   section, and every change of a mount's parent or mountpoint (mount, unmount, move,
//!   propagation, pivot_root) inside `mount_lock`'s. Both sequences are read *before* the walk
//!   and must be even (no change in progress); the entry counts only while both still hold
//!   those values, so a change that began at any time after the walk started voids it. The
//!   entry also lapses after `WRITE_CACHE_TTL_NS`, long before a 32-bit sequence could wrap
//!   around to the same value;
//! - the inodes on the way: the open file pins its dentry and every ancestor, which stay
//!   positive with the same inode while pinned;
//! - the protected map: never changed in place. A new policy is a new generation of maps,
//!   this one included, so a daemon restart starts from an empty cache (`kernel::pin`).
//!
//! Entries are keyed by the `struct file *`. A later file at the same address never finds an
//! earlier file's entry:
//! - every file with a place an agent could have a rule on is opened through
//!   `do_dentry_open()`, which runs `security_file_open()` for every task before the file can
//!   be used; `file_open` deletes the address's entry first thing ([`forget`]), for non-agents
//!   too, before any other check, whatever its verdict;
//! - the only files made without that hook are `O_PATH` files, which cannot be written, and
//!   pseudo files (`alloc_file_pseudo()`: pipes, sockets, anonymous inodes, memfd), whose
//!   places are internal mounts no rule can name: a walk from them finds nothing protected
//!   and ends in the same plain allow an old entry would give.
//!
//! This costs non-agents one lookup per open instead of a program run per freed file (the
//! `file_free_security` hook it replaces ran for every file of every task, sockets and pipes
//! included). Without the sequence addresses (userspace could not resolve them) nothing is
//! kept and every write walks, as before.

use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_ktime_get_ns};
use governor_common::{maps::WRITE_CACHE_TTL_NS, WriteStamp};

use crate::maps;

/// The tree sequences now, for a walk about to start, with `not_after_ns` this instant plus
/// the TTL: [`WriteStamp::NONE`] when they are unknown, unreadable, or a change is in
/// progress (odd), and nothing may be kept nor trusted.
#[inline(always)]
pub fn stamp() -> WriteStamp {
    let seqs = maps::tree_seqs();
    if seqs.rename_lock == 0 || seqs.mount_lock == 0 {
        return WriteStamp::NONE;
    }
    // SAFETY: kernel addresses of two seqlock_t globals, read with probe reads.
    let (Ok(rename_seq), Ok(mount_seq)) = (unsafe {
        (
            bpf_probe_read_kernel(seqs.rename_lock as *const u32),
            bpf_probe_read_kernel(seqs.mount_lock as *const u32),
        )
    }) else {
        return WriteStamp::NONE;
    };
    if (rename_seq | mount_seq) & 1 != 0 {
        return WriteStamp::NONE;
    }
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    WriteStamp {
        rename_seq,
        mount_seq,
        not_after_ns: now + WRITE_CACHE_TTL_NS,
    }
}

/// Whether `file`'s writes were found a plain allow under the trees as they are `now`.
#[inline(always)]
pub fn holds(file: *const u8, now: &WriteStamp) -> bool {
    let key = file as u64;
    // SAFETY: the value is copied out immediately.
    let Some(kept) = (unsafe { maps::GOV_WRITE_CACHE.get(&key) }).copied() else {
        return false;
    };
    still_holds(&kept, now)
}

/// Whether what was found under `kept` still stands under `now` (a stamp taken now): both
/// tree sequences unchanged, and this instant before `kept`'s end. The directory cache
/// (`dir_cache.rs`) judges its entries by the same rule.
#[inline(always)]
pub fn still_holds(kept: &WriteStamp, now: &WriteStamp) -> bool {
    // `now.not_after_ns` is this instant plus the TTL.
    let instant = now.not_after_ns - WRITE_CACHE_TTL_NS;
    kept.rename_seq == now.rename_seq
        && kept.mount_seq == now.mount_seq
        && instant < kept.not_after_ns
}

/// Keeps the plain allow a walk that started at `stamp` found for `file`: in place when the
/// address has an entry (no allocation), else inserted. A full map evicts its least recently
/// used entry; a failed insert only means the next write walks.
///
/// An in-place store is not atomic, but only `file`'s own writers store there once its open
/// has cleared the entry ([`forget`]), and each of them stores a plain allow for this same
/// file, so a reader mixing two of them still sees one.
#[inline(always)]
pub fn keep(file: *const u8, stamp: &WriteStamp) {
    let key = file as u64;
    match maps::GOV_WRITE_CACHE.get_ptr_mut(&key) {
        // SAFETY: a pointer to the map value, valid for the program run.
        Some(kept) => unsafe { *kept = *stamp },
        None => {
            let _ = maps::GOV_WRITE_CACHE.insert(&key, stamp, 0);
        }
    }
}

/// Voids any entry at `file`'s address as the file is opened: one lookup for addresses that
/// have none (every open of every process passes here), and for those that do, a store that
/// makes the entry lapse at once (no delete: the slot stays for this file's own [`keep`]).
#[inline(always)]
pub fn forget(file: *const u8) {
    let key = file as u64;
    if let Some(kept) = maps::GOV_WRITE_CACHE.get_ptr_mut(&key) {
        // SAFETY: a pointer to the map value, valid for the program run.
        unsafe { (*kept).not_after_ns = 0 };
    }
}
