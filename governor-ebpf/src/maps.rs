//! The programs' maps and globals. Each static's identifier is its map name, spelled exactly
//! as the constant in `governor_common::maps` that userspace uses to find it.

use aya_ebpf::{
    macros::map,
    maps::{lpm_trie, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use governor_common::{
    maps::{
        COUNTER_SLOTS, EVENTS_BYTES, MAX_AGENT_CGROUPS, MAX_AGENT_RULES, MAX_ANCESTORS,
        MAX_BINARIES, MAX_DIR_CACHE, MAX_LEASES, MAX_LINKED, MAX_PROTECTED, MAX_WRITE_CACHE,
        PROCS_BYTES,
    },
    net::{Ip4, Ip6, NetOffsets, NetRules, KEY4_BYTES, KEY6_BYTES, MAX_NET_PREFIXES},
    AgentInfo, AgentRuleKey, DirClear, DirKey, InodeKey, KernelOffsets, LeaseEntry, LeaseKey,
    Masks, ProtectedRule, TreeSeqs, WriteStamp,
};

use crate::{emit::Pending, note::Note, path::Scratch};

/// `maps::AGENTS`
#[map]
pub static GOV_AGENTS: HashMap<u64, AgentInfo> = HashMap::with_max_entries(MAX_AGENT_CGROUPS, 0);

/// `maps::PROTECTED`
#[map]
pub static GOV_PROTECTED: HashMap<InodeKey, ProtectedRule> =
    HashMap::with_max_entries(MAX_PROTECTED, 0);

/// `maps::LINKED` (`linked.rs`)
#[map]
pub static GOV_LINKED: HashMap<InodeKey, ProtectedRule> = HashMap::with_max_entries(MAX_LINKED, 0);

/// `maps::ANCESTORS`
#[map]
pub static GOV_ANCESTORS: HashMap<InodeKey, u32> = HashMap::with_max_entries(MAX_ANCESTORS, 0);

/// `maps::BINARIES`
#[map]
pub static GOV_BINARIES: HashMap<InodeKey, ProtectedRule> =
    HashMap::with_max_entries(MAX_BINARIES, 0);

/// `maps::LEASES`
#[map]
pub static GOV_LEASES: HashMap<LeaseKey, LeaseEntry> = HashMap::with_max_entries(MAX_LEASES, 0);

/// `maps::AGENT_RULES`
#[map]
pub static GOV_AGENT_RULES: HashMap<AgentRuleKey, Masks> =
    HashMap::with_max_entries(MAX_AGENT_RULES, 0);

/// `maps::WRITE_CACHE` (`write_cache.rs`). LRU: a full map evicts, and an evicted file is
/// simply walked again.
#[map]
pub static GOV_WRITE_CACHE: LruHashMap<u64, WriteStamp> =
    LruHashMap::with_max_entries(MAX_WRITE_CACHE, 0);

/// `maps::DIR_CACHE` (`dir_cache.rs`). LRU: a full map evicts, and an evicted directory is
/// simply walked again.
#[map]
pub static GOV_DIR_CACHE: LruHashMap<DirKey, DirClear> =
    LruHashMap::with_max_entries(MAX_DIR_CACHE, 0);

/// `maps::PATH_NOTE` (`note.rs`).
#[map]
pub static GOV_PATH_NOTE: PerCpuArray<Note> = PerCpuArray::with_max_entries(1, 0);

/// `maps::PENDING`: the decision each CPU's running program settled, until it is flushed
/// (`emit.rs`).
#[map]
pub static GOV_PENDING: PerCpuArray<Pending> = PerCpuArray::with_max_entries(1, 0);

/// `maps::PATH_SCRATCH`: where `path.rs` assembles an event's path.
#[map]
pub static GOV_PATH_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// `maps::EVENTS`
#[map]
pub static GOV_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// `maps::PROCS` (`proc_events.rs`)
#[map]
pub static GOV_PROCS: RingBuf = RingBuf::with_byte_size(PROCS_BYTES, 0);

/// `maps::COUNTERS`
#[map]
pub static GOV_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// `maps::OFFSETS_GLOBAL`: set by userspace at load time (read-only afterwards).
#[unsafe(no_mangle)]
static GOV_OFFSETS: KernelOffsets = KernelOffsets::UNSET;

/// The offsets userspace resolved, in place: each field is loaded where it is used. The
/// reference goes through `black_box`, so the compiler cannot fold the zeros above (the
/// loader rewrites them before load); a by-value copy would load every field, about fifty,
/// at every call, once per step of a walk.
#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    core::hint::black_box(&GOV_OFFSETS)
}

/// `maps::TREE_SEQS_GLOBAL`: set by userspace at load time (read-only afterwards).
#[unsafe(no_mangle)]
static GOV_TREE_SEQS: TreeSeqs = TreeSeqs {
    rename_lock: 0,
    mount_lock: 0,
};

/// Where the tree sequence counters live (volatile read, like [`offsets`]).
#[inline(always)]
pub fn tree_seqs() -> TreeSeqs {
    // SAFETY: reading a static we own; volatile because the loader rewrites it before load.
    unsafe { core::ptr::read_volatile(&GOV_TREE_SEQS) }
}

// ---- network classes (net.rs) ----

/// `net::NET4`: IPv4 prefixes → every port range that applies to them.
#[map]
pub static GOV_NET4: LpmTrie<Ip4, NetRules> = LpmTrie::with_max_entries(MAX_NET_PREFIXES, 0);

/// `net::NET6`: IPv6 prefixes (IPv4-mapped addresses are looked up in `GOV_NET4`).
#[map]
pub static GOV_NET6: LpmTrie<Ip6, NetRules> = LpmTrie::with_max_entries(MAX_NET_PREFIXES, 0);

const _: () = assert!(core::mem::size_of::<lpm_trie::Key<Ip4>>() == KEY4_BYTES);
const _: () = assert!(core::mem::size_of::<lpm_trie::Key<Ip6>>() == KEY6_BYTES);

/// `net::NET_OFFSETS_GLOBAL`: set by userspace at load time (read-only afterwards).
#[unsafe(no_mangle)]
static GOV_NET_OFFSETS: NetOffsets = NetOffsets {
    tcp_sock_fastopen_req: 0,
    valid: 0,
};

/// The network offsets userspace resolved (volatile read, like [`offsets`]).
#[inline(always)]
pub fn net_offsets() -> NetOffsets {
    // SAFETY: reading a static we own; volatile because the loader rewrites it before load.
    unsafe { core::ptr::read_volatile(&GOV_NET_OFFSETS) }
}
