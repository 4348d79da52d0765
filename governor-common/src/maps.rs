//! Map names, map key/value layouts and the kernel-offsets global.

/// Agent cgroups: key = cgroup v2 id (the cgroup directory's inode number), value = [`AgentInfo`].
pub const AGENTS: &str = "GOV_AGENTS";
/// Protected inodes: key = [`InodeKey`], value = [`ProtectedRule`].
pub const PROTECTED: &str = "GOV_PROTECTED";
/// Ring buffer of [`crate::Event`]s.
pub const EVENTS: &str = "GOV_EVENTS";
/// Per-CPU counters, indexed by [`Counter`].
pub const COUNTERS: &str = "GOV_COUNTERS";
/// Read-only global holding [`KernelOffsets`] for the running kernel.
pub const OFFSETS_GLOBAL: &str = "GOV_OFFSETS";

/// Capacity of [`AGENTS`].
pub const MAX_AGENTS: u32 = 1024;
/// Capacity of [`PROTECTED`].
pub const MAX_PROTECTED: u32 = 65_536;
/// Size of the [`EVENTS`] ring buffer in bytes (a power of two, a multiple of the page size).
pub const EVENTS_BYTES: u32 = 1 << 22;
/// How many dentries the kernel walks up from a target before it gives up and fails closed.
pub const MAX_PATH_DEPTH: u32 = 64;

/// Bit in [`AgentInfo::flags`]: record would-be denies but allow them.
pub const AGENT_FLAG_OBSERVE: u32 = 1;

/// An agent cgroup, as the kernel sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    /// Index of the agent in the loaded policy; userspace maps it back to a name.
    pub agent_id: u32,
    /// `AGENT_FLAG_*` bits.
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<AgentInfo>() == 8);

/// Identity of an inode: kernel `dev_t` of its superblock plus inode number.
///
/// `dev` is the *kernel* encoding (`major << 20 | minor`), not the `st_dev` userspace sees;
/// userspace converts with [`InodeKey::kernel_dev`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeKey {
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}
const _: () = assert!(core::mem::size_of::<InodeKey>() == 16);

impl InodeKey {
    pub const fn new(dev: u32, ino: u64) -> Self {
        Self { dev, _pad: 0, ino }
    }

    /// Kernel `dev_t` (`MKDEV`) from a major/minor pair.
    pub const fn kernel_dev(major: u32, minor: u32) -> u32 {
        (major << 20) | (minor & 0xf_ffff)
    }
}

/// Action classes. Values are stable: they are stored in events and lineage.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// unlink(2) of a file, symlink or other non-directory.
    Unlink = 1,
    /// rmdir(2) of a directory.
    Rmdir = 2,
}

impl Class {
    pub const fn bit(self) -> u32 {
        1 << (self as u32)
    }

    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Unlink),
            2 => Some(Self::Rmdir),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Unlink => "unlink",
            Self::Rmdir => "rmdir",
        }
    }
}

/// What a protected inode (and everything below it) is guarded against.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectedRule {
    /// Index of the protected resource in the loaded policy.
    pub rule_id: u32,
    /// Classes denied for agents, as [`Class::bit`]s.
    pub deny_mask: u32,
}
const _: () = assert!(core::mem::size_of::<ProtectedRule>() == 8);

/// `rule_id` reported when the kernel could not resolve a target within its bounds and failed
/// closed.
pub const RULE_UNRESOLVED: u32 = u32::MAX;

/// Indexes into the per-CPU [`COUNTERS`] array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Operations denied.
    Denied = 0,
    /// Operations allowed only because the agent is in observe mode.
    Observed = 1,
    /// Events that could not be put into the ring buffer (full): never silent, always counted.
    EventsDropped = 2,
    /// Targets the kernel could not resolve within `MAX_PATH_DEPTH` (denied, fail closed).
    Unresolved = 3,
}
pub const COUNTER_SLOTS: u32 = 4;

/// Byte offsets of the kernel struct fields the programs read, resolved by userspace from the
/// running kernel's BTF (Rust eBPF has no CO-RE relocations) and set as a read-only global
/// before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct dentry::d_parent`
    pub dentry_d_parent: u32,
    /// `struct dentry::d_inode`
    pub dentry_d_inode: u32,
    /// `struct dentry::d_name.name`
    pub dentry_d_name_name: u32,
    /// `struct inode::i_ino`
    pub inode_i_ino: u32,
    /// `struct inode::i_sb`
    pub inode_i_sb: u32,
    /// `struct super_block::s_dev`
    pub super_block_s_dev: u32,
    /// Non-zero once userspace filled the struct; programs fail closed while it is zero.
    pub valid: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 32);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all types are `#[repr(C)]`, `Copy`, made only of integers, with explicit padding.
    unsafe impl aya::Pod for super::AgentInfo {}
    unsafe impl aya::Pod for super::InodeKey {}
    unsafe impl aya::Pod for super::ProtectedRule {}
    unsafe impl aya::Pod for super::KernelOffsets {}
}
