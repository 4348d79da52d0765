//! The programs' maps and globals. Each static's identifier is its map name, spelled exactly
//! as the constant in `governor_common::maps` that userspace uses to find it.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use governor_common::{
    maps::{COUNTER_SLOTS, EVENTS_BYTES, MAX_AGENTS, MAX_BINARIES, MAX_PROTECTED},
    AgentInfo, InodeKey, KernelOffsets, ProtectedRule,
};

/// `maps::AGENTS`
#[map]
pub static GOV_AGENTS: HashMap<u64, AgentInfo> = HashMap::with_max_entries(MAX_AGENTS, 0);

/// `maps::PROTECTED`
#[map]
pub static GOV_PROTECTED: HashMap<InodeKey, ProtectedRule> =
    HashMap::with_max_entries(MAX_PROTECTED, 0);

/// `maps::BINARIES`
#[map]
pub static GOV_BINARIES: HashMap<InodeKey, ProtectedRule> =
    HashMap::with_max_entries(MAX_BINARIES, 0);

/// `maps::EVENTS`
#[map]
pub static GOV_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// `maps::COUNTERS`
#[map]
pub static GOV_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// `maps::OFFSETS_GLOBAL`: set by userspace at load time (read-only afterwards).
#[unsafe(no_mangle)]
static GOV_OFFSETS: KernelOffsets = KernelOffsets::UNSET;

/// The offsets userspace resolved; read volatile so the compiler cannot fold the zeros above.
#[inline(always)]
pub fn offsets() -> KernelOffsets {
    // SAFETY: reading a static we own; volatile because the loader rewrites it before load.
    unsafe { core::ptr::read_volatile(&GOV_OFFSETS) }
}
