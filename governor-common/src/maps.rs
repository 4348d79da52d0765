//! Map names, map key/value layouts, capacities, flags and rule ids. The decision rule the
//! rule masks feed lives in `crate::decision`, the action classes in `crate::class`, the
//! kernel-offsets global in `crate::offsets`; they are re-exported here under their old paths.

pub use crate::{
    class::Class,
    decision::{Masks, ProtectedRule, Verdict},
    offsets::{CredId, KernelOffsets},
};

/// Agent cgroups: key = cgroup v2 id (the cgroup directory's inode number), value = [`AgentInfo`].
/// Holds the policy's agent cgroups and every cgroup below them ([`AGENT_FLAG_INHERITED`]), so
/// that one lookup of the current cgroup id answers "is this task an agent?".
pub const AGENTS: &str = "GOV_AGENTS";
/// Protected inodes: key = [`InodeKey`], value = [`ProtectedRule`].
pub const PROTECTED: &str = "GOV_PROTECTED";
/// Inodes protected for a place they have elsewhere: key = [`InodeKey`], value =
/// [`ProtectedRule`] of the protected inode above that place. A file with a name inside a
/// protected tree and another outside (a hard link), and the root of a filesystem mounted
/// inside a protected tree. Filled by the daemon when it loads a policy, and by the kernel
/// for every link made later; consulted when a walk meets no protected inode.
pub const LINKED: &str = "GOV_LINKED";
/// Ancestors of protected inodes: key = [`InodeKey`], value = rule id (u32). Renaming one
/// would move a protected subtree.
pub const ANCESTORS: &str = "GOV_ANCESTORS";
/// Ring buffer of [`crate::Event`]s.
pub const EVENTS: &str = "GOV_EVENTS";
/// Ring buffer of [`crate::process::ProcEvent`]s (agent processes' fork, exec and exit), apart
/// from [`EVENTS`] so that process records never take the room of decisions.
pub const PROCS: &str = "GOV_PROCS";
/// Per-CPU counters, indexed by [`Counter`].
pub const COUNTERS: &str = "GOV_COUNTERS";
/// Read-only global holding [`KernelOffsets`] for the running kernel.
pub const OFFSETS_GLOBAL: &str = "GOV_OFFSETS";
/// Listed binaries: key = [`InodeKey`] of the executable, value = [`ProtectedRule`] (its
/// `deny_mask` holds [`Class::Exec`]). Matched on the inode itself only, never on ancestors.
pub const BINARIES: &str = "GOV_BINARIES";

/// Installed leases: key = [`LeaseKey`], value = [`LeaseEntry`]. An operation whose decision
/// is `lease` is allowed only while `bpf_ktime_get_boot_ns()` lies in a matching entry's
/// `[not_before_boot_ns, not_after_boot_ns)` (boot-time clock: changing the wall clock can
/// neither start a lease early nor extend it).
pub const LEASES: &str = "GOV_LEASES";
/// Per-agent decisions for a protected resource: key = [`AgentRuleKey`], value = [`Masks`].
/// When present they replace the resource's default masks for that agent. The key's rule id
/// is tagged by kind: plain for `[[protect]]`, [`RULE_BINARY_FLAG`] for `[[binaries]]`,
/// [`crate::net::RULE_NET_FLAG`] for `[[network]]`.
pub const AGENT_RULES: &str = "GOV_AGENT_RULES";
/// One slot per CPU: the decision a running program settled, until the program emits it at
/// its end; only the kernel uses it.
pub const PENDING: &str = "GOV_PENDING";
/// Per-CPU scratch space (one entry) where the programs assemble the path of an event before
/// copying it into the ring-buffer record; only the kernel uses it.
pub const PATH_SCRATCH: &str = "GOV_PATH_SCRATCH";

/// Writes already decided per open file: key = the `struct file *` (as u64), value =
/// [`WriteStamp`]. Filled when a walk for the write class found no protected inode with a
/// decision on writes (a plain allow, the same for every agent), consulted first by
/// `file_permission`, deleted by `file_open` of any file at the same address, so a reused
/// pointer never finds an entry of an earlier file (see `write_cache.rs`).
pub const WRITE_CACHE: &str = "GOV_WRITE_CACHE";
/// Directories whose whole way up holds no protected inode: key = [`DirKey`], value =
/// [`DirClear`]. Filled by a walk that met no protected inode above its target; consulted
/// before a walk, so an agent's operation in a known directory checks the target and that
/// directory instead of every ancestor (see `dir_cache.rs`).
pub const DIR_CACHE: &str = "GOV_DIR_CACHE";
/// One slot per CPU: the last path hook an agent was allowed, which answers the inode hook
/// of the same call for the same dentry (see `note.rs`).
pub const PATH_NOTE: &str = "GOV_PATH_NOTE";
/// Read-only global holding [`TreeSeqs`]: where the kernel's dentry-tree and mount-tree
/// sequence counters live.
pub const TREE_SEQS_GLOBAL: &str = "GOV_TREE_SEQS";

/// Most agents a policy may name.
pub const MAX_AGENTS: u32 = 1024;
/// Capacity of [`AGENTS`]: the policy's agent cgroups and every cgroup below them.
pub const MAX_AGENT_CGROUPS: u32 = 65_536;
/// Capacity of [`PROTECTED`].
pub const MAX_PROTECTED: u32 = 65_536;
/// Capacity of [`LINKED`].
pub const MAX_LINKED: u32 = 65_536;
/// Capacity of [`ANCESTORS`].
pub const MAX_ANCESTORS: u32 = 65_536;
/// Capacity of [`BINARIES`].
pub const MAX_BINARIES: u32 = 4096;
/// Capacity of [`LEASES`].
pub const MAX_LEASES: u32 = 16_384;
/// Capacity of [`AGENT_RULES`].
pub const MAX_AGENT_RULES: u32 = 16_384;
/// Capacity of [`WRITE_CACHE`]: open files whose writes are known to be plain allows. When
/// it is full, further files are simply walked on every write.
pub const MAX_WRITE_CACHE: u32 = 65_536;
/// Capacity of [`DIR_CACHE`]: directories known to lie under no protected inode. LRU: when it
/// is full the least recently used is forgotten and walked again next time.
pub const MAX_DIR_CACHE: u32 = 16_384;
/// How long a [`WRITE_CACHE`] or [`DIR_CACHE`] entry stands at most, in nanoseconds of `bpf_ktime_get_ns`,
/// even if the trees did not change: far less than the time the kernel needs to wrap a
/// 32-bit sequence counter (2^31 serialized write sections).
pub const WRITE_CACHE_TTL_NS: u64 = 1_000_000_000;
/// Size of the [`EVENTS`] ring buffer in bytes (a power of two, a multiple of the page size):
/// 64 MiB, about 64,000 decisions (1,032 bytes each with the record header). While the daemon
/// is behind (starved of CPU on a loaded host, or in a burst) decisions wait here; what does
/// not fit is counted (`EventsDropped`). The VM's flood benchmark measured the smaller 16 MiB
/// ring overflowing in a half-second burst at 100,000/s under QEMU TCG on 6.1.
pub const EVENTS_BYTES: u32 = 1 << 26;
/// Size of the [`PROCS`] ring buffer in bytes (a power of two, a multiple of the page size):
/// about 4400 records.
pub const PROCS_BYTES: u32 = 1 << 23;
/// How many dentries the kernel walks up from a target before it gives up and fails closed.
pub const MAX_PATH_DEPTH: u32 = 64;

/// Bit in [`AgentInfo::flags`]: record would-be denies but allow them.
pub const AGENT_FLAG_OBSERVE: u32 = 1;
/// `agent_id` reported for a task in a cgroup below an agent cgroup that is not itself in
/// [`AGENTS`]; such a task is treated as an agent in enforce mode (fail closed).
pub const AGENT_UNKNOWN: u32 = u32::MAX;
/// Bit in [`AgentInfo::flags`]: the agent may execute (exec or `PROT_EXEC`-map) files that
/// have no name on any filesystem (`i_nlink == 0`: memfd, `O_TMPFILE`, deleted files).
pub const AGENT_FLAG_ALLOW_FILELESS_EXEC: u32 = 2;
/// Bit in [`AgentInfo::flags`]: the cgroup is not named by the policy but lies below an agent
/// cgroup; it was registered with its parent's agent and flags, by the kernel when it was
/// created (`cgroup:cgroup_mkdir`) or by the daemon at start for cgroups that already existed.
/// The kernel removes such entries when the cgroup is removed (`cgroup:cgroup_rmdir`).
pub const AGENT_FLAG_INHERITED: u32 = 4;
/// Bit in [`AgentInfo::flags`]: the agent may connect and send to abstract unix sockets
/// created outside its cgroup subtree (`allow_outside_abstract_unix`).
pub const AGENT_FLAG_ALLOW_OUTSIDE_ABSTRACT_UNIX: u32 = 8;
/// Bit in [`AgentInfo::flags`]: the agent may create raw and packet sockets
/// (`allow_raw_sockets`).
pub const AGENT_FLAG_ALLOW_RAW_SOCKETS: u32 = 16;
/// Bit in [`AgentInfo::flags`]: the agent records every operation of a file class
/// ([`RECORD_ALL_CLASSES`]) the kernel decides for it, allowed ones included (`record =
/// "all"`), so that a tighter policy can be simulated against its history.
pub const AGENT_FLAG_RECORD_ALL: u32 = 32;
/// The classes an agent with [`AGENT_FLAG_RECORD_ALL`] records when they are allowed: every
/// class that changes a file (the policy's `modify`), not `read` or `unix-connect`.
pub const RECORD_ALL_CLASSES: u32 = {
    use crate::Class::*;
    let list = [
        Unlink, Rmdir, Rename, Truncate, Write, Chmod, Chown, Link, Xattr, Mknod, Chattr, Utimes,
    ];
    let mut mask = 0;
    let mut i = 0;
    while i < list.len() {
        mask |= list[i].bit();
        i += 1;
    }
    mask
};

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

/// Kernel addresses of the two `seqlock_t`s whose sequence changes whenever a file's place
/// in the tree can change: `rename_lock` (every `d_move`, `d_exchange` and alias splice, so
/// every change of any `d_parent`) and `mount_lock` (every mount, unmount, move and
/// propagation, so every change of a mount's parent or mountpoint). Their `sequence` sits at
/// offset 0 (checked against BTF by userspace). 0 when unknown: the kernel then keeps no
/// [`WRITE_CACHE`] entries and walks on every write.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeSeqs {
    pub rename_lock: u64,
    pub mount_lock: u64,
}
const _: () = assert!(core::mem::size_of::<TreeSeqs>() == 16);

/// Value of [`WRITE_CACHE`]: the two sequences read (both even) *before* the walk that found
/// the plain allow, and the `bpf_ktime_get_ns` time after which the entry no longer counts.
/// An entry counts only while both sequences still hold exactly these values.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStamp {
    pub rename_seq: u32,
    pub mount_seq: u32,
    pub not_after_ns: u64,
}
const _: () = assert!(core::mem::size_of::<WriteStamp>() == 16);

impl WriteStamp {
    /// No stamp: the sequences are unknown or a change is in progress, and nothing may be
    /// kept nor trusted. (The kernel passes this rather than an `Option`, whose `None` has
    /// an undefined payload the BPF verifier refuses to see copied.)
    pub const NONE: WriteStamp = WriteStamp {
        rename_seq: 0,
        mount_seq: 0,
        not_after_ns: 0,
    };

    /// Whether this is a real stamp (not [`WriteStamp::NONE`]).
    #[inline(always)]
    pub const fn is_set(&self) -> bool {
        self.not_after_ns != 0
    }
}

/// Key of [`DIR_CACHE`]: a directory's `struct dentry *` and the `struct vfsmount *` it was
/// reached through (0 when the hook gives no mount; the walk then stays in the filesystem).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirKey {
    pub dentry: u64,
    pub mnt: u64,
}
const _: () = assert!(core::mem::size_of::<DirKey>() == 16);

/// Value of [`DIR_CACHE`]: when the walk that found the directory's way up clear started
/// ([`WriteStamp`], the same rules as the write cache), and who the directory was then: its
/// `struct inode *`, inode number and generation. An entry counts only while the stamp holds
/// and the dentry at the key still has that very inode, so a dentry freed and reused for
/// another directory finds nothing. `dev` is the kernel `dev_t` of the directory's
/// superblock, which every entry of the directory shares (`d_parent` never leaves a
/// superblock): a target's [`InodeKey`] is `dev` and the target's own inode number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirClear {
    pub stamp: WriteStamp,
    pub inode: u64,
    pub ino: u64,
    pub generation: u32,
    pub dev: u32,
}
const _: () = assert!(core::mem::size_of::<DirClear>() == 40);

/// Identity of an inode: kernel `dev_t` of its superblock plus inode number.
///
/// `dev` is the *kernel* encoding (`major << 20 | minor`), not the `st_dev` userspace sees;
/// userspace converts with [`InodeKey::kernel_dev`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// Key of [`AGENT_RULES`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AgentRuleKey {
    pub agent_id: u32,
    pub rule_id: u32,
}
const _: () = assert!(core::mem::size_of::<AgentRuleKey>() == 8);

/// `LeaseKey::object.dev` of a lease on a network rule (no superblock has this dev): the
/// object's `ino` is then the network rule id.
pub const LEASE_OBJECT_NET: u32 = u32::MAX;

/// Key of [`LEASES`]: which agent may do which class to which object. For files and
/// binaries the object is an inode (the lease covers it and everything below it, up to the
/// protected resource); for network classes it is `(LEASE_OBJECT_NET, rule_id)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    pub agent_id: u32,
    /// [`Class`] as u32.
    pub class: u32,
    pub object: InodeKey,
}
const _: () = assert!(core::mem::size_of::<LeaseKey>() == 24);

/// Value of [`LEASES`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseEntry {
    /// Lease id as userspace numbers it (recorded in events).
    pub lease_id: u64,
    /// Boot-time (`CLOCK_BOOTTIME`) nanoseconds from which the lease applies (a scheduled
    /// lease's start: setting the wall clock forward cannot bring it closer).
    pub not_before_boot_ns: u64,
    /// Boot-time (`CLOCK_BOOTTIME`) nanoseconds after which the lease no longer applies.
    pub not_after_boot_ns: u64,
}
const _: () = assert!(core::mem::size_of::<LeaseEntry>() == 24);

impl LeaseEntry {
    /// Whether the lease applies at boot time `now_ns`: from its start, until (excluded) its
    /// end. The kernel's check, shared with the daemon's tests.
    #[inline(always)]
    pub fn applies_at(&self, now_ns: u64) -> bool {
        self.not_before_boot_ns <= now_ns && now_ns < self.not_after_boot_ns
    }
}

/// `rule_id` reported when the kernel could not resolve a target within its bounds and failed
/// closed.
pub const RULE_UNRESOLVED: u32 = u32::MAX;
/// `rule_id` of the always-on rules no policy can lift: agents never call bpf(), load kernel
/// modules, signal or ptrace tasks outside their agent, change uid/gid, mount, or make
/// device nodes.
pub const RULE_BUILTIN: u32 = u32::MAX - 1;
/// `rule_id` of the fileless-exec rule: an agent executed a file without a name on any
/// filesystem (memfd, `O_TMPFILE`, deleted), and its policy does not allow that.
pub const RULE_FILELESS: u32 = u32::MAX - 2;
/// `rule_id` of governor's own directories (state, config and keys, runtime with the admin
/// socket, bpffs pins): always protected against every file class and unix-connect, whatever
/// the policy says.
pub const RULE_SELF: u32 = u32::MAX - 3;
/// `rule_id` of an allowed operation recorded for an agent that records everything
/// ([`AGENT_FLAG_RECORD_ALL`]) where no protected resource decides its class.
pub const RULE_NONE: u32 = u32::MAX - 4;
/// Bit added to a `rule_id` when the match was an *ancestor* of the protected path.
pub const RULE_ANCESTOR_FLAG: u32 = 1 << 30;
/// Bit added to a `rule_id` when the match was an inode registered for its place inside the
/// protected path ([`LINKED`]: a hard link reached through a name outside, or the root of a
/// filesystem mounted inside, reached without its mount).
pub const RULE_LINKED_FLAG: u32 = 1 << 28;

/// The policy's rule id behind a `rule_id` the kernel reported: without
/// [`RULE_LINKED_FLAG`] (the special ids from [`RULE_NONE`] up have every high bit set and
/// are returned as they are).
pub const fn rule_base(rule_id: u32) -> u32 {
    if rule_id >= RULE_NONE {
        rule_id
    } else {
        rule_id & !RULE_LINKED_FLAG
    }
}
/// Bit added to a `[[binaries]]` rule id in [`AGENT_RULES`] keys, so that binaries and
/// protected paths (numbered independently) never share an agent's decision entry.
pub const RULE_BINARY_FLAG: u32 = 1 << 29;

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
    /// Operations allowed under a lease.
    LeaseAllowed = 4,
    /// Lease-class operations denied because the matching lease had expired.
    LeaseExpired = 5,
    /// Cgroups created below an agent cgroup that could not be registered in [`AGENTS`]
    /// (map full): their tasks are not agents to the BPF-LSM programs (agents cannot move
    /// into them, see `CgroupEscape`; the network programs treat them as unknown agents).
    CgroupUntracked = 6,
    /// Process-lineage records (fork, exec, exit of agent processes) that could not be put
    /// into the [`PROCS`] ring buffer (full): never silent, always counted.
    ProcsDropped = 7,
    /// Decision events put into the [`EVENTS`] ring buffer. With what the lineage committed
    /// from a generation, this tells exactly how many of its events were lost, also when the
    /// daemon died before it read them.
    EventsEmitted = 8,
}
pub const COUNTER_SLOTS: u32 = 9;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all types are `#[repr(C)]`, `Copy`, made only of integers, with explicit padding.
    unsafe impl aya::Pod for super::AgentInfo {}
    unsafe impl aya::Pod for super::InodeKey {}
    unsafe impl aya::Pod for super::ProtectedRule {}
    unsafe impl aya::Pod for super::Masks {}
    unsafe impl aya::Pod for super::AgentRuleKey {}
    unsafe impl aya::Pod for super::LeaseKey {}
    unsafe impl aya::Pod for super::LeaseEntry {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::TreeSeqs {}
    unsafe impl aya::Pod for super::WriteStamp {}
    unsafe impl aya::Pod for super::DirKey {}
    unsafe impl aya::Pod for super::DirClear {}
}
