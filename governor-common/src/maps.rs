//! Map names, map key/value layouts and the kernel-offsets global.

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

/// Action classes. Values are stable: they are stored in events and lineage, and a class's
/// bit (`1 << value`) is used in rule masks, so values stay below 32.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// unlink(2) of a file, symlink or other non-directory.
    Unlink = 1,
    /// rmdir(2) of a directory.
    Rmdir = 2,
    /// rename(2), as source or destination, including RENAME_EXCHANGE.
    Rename = 3,
    /// truncate, ftruncate, O_TRUNC, fallocate punch-hole.
    Truncate = 4,
    /// Opening for write, and writes through descriptors.
    Write = 5,
    /// chmod(2) family.
    Chmod = 6,
    /// chown(2) family.
    Chown = 7,
    /// link(2): a new hard link to a protected inode.
    Link = 8,
    /// setxattr/removexattr, including ACLs.
    Xattr = 9,
    /// mknod(2).
    Mknod = 10,
    /// mount(2), bind mounts, move mounts.
    Mount = 11,
    /// execve of a listed binary.
    Exec = 12,
    /// Signals to tasks outside the agent's cgroup subtree.
    Signal = 13,
    /// ptrace of tasks outside the agent's cgroup subtree.
    Ptrace = 14,
    /// setuid/setgid transitions.
    Setid = 15,
    /// connect(2) to a listed address.
    Connect = 16,
    /// bind(2) to a listed address.
    Bind = 17,
    /// Unconnected sends (UDP sendmsg, TCP fast open) to a listed address.
    Send = 18,
    /// The bpf(2) syscall.
    Bpf = 19,
    /// Loading kernel modules.
    KernelModule = 20,
    /// Leaving the agent's cgroup subtree.
    CgroupEscape = 21,
    /// connect(2) to, or a datagram sent to, a unix socket bound to a path in a protected
    /// directory (governor's own admin socket among them); and to an abstract unix socket
    /// whose socket was created outside the agent's cgroup subtree.
    UnixConnect = 22,
    /// Writing a cgroup v2 interface file (`cgroup.kill`, `cgroup.freeze`, `memory.max`, ...)
    /// of a cgroup outside the agent or of its top agent cgroup, or creating, removing or
    /// renaming cgroups in a cgroup outside the agent.
    CgroupControl = 23,
    /// Pushing input into a terminal: ioctl TIOCSTI (fake typed input) and TIOCLINUX (the
    /// virtual console's selection paste and other console controls).
    TtyInject = 24,
    /// Loading a kernel to boot into: kexec_file_load(2) (kernel image, initramfs) and
    /// kexec_load(2).
    Kexec = 25,
    /// Opening a file or listing a directory (`open(2)` for reading): a path class, decided
    /// only where a resource names it (`deny = ["read"]`), and always for governor's own
    /// directories. Not part of `modify`.
    Read = 26,
    /// Changing an inode's flags (`chattr`: immutable, append-only, ...) through
    /// `FS_IOC_SETFLAGS` or `FS_IOC_FSSETXATTR`.
    Chattr = 27,
    /// Setting a file's timestamps to chosen times (`utime(2)`, `utimensat(2)`, `futimens(3)`
    /// with times given, `touch -d`); setting them to now (`touch FILE`) is not this class.
    Utimes = 28,
    /// Setting the system clock (`clock_settime(2)`, `settimeofday(2)`, `adjtimex(2)`,
    /// `date -s`). Always denied to agents: leases and the lineage keep time by it.
    Settime = 29,
    /// Changing how a task outside the agent runs: its nice value, scheduling policy or
    /// affinity, I/O priority, or resource limits (`setpriority(2)`, `sched_setscheduler(2)`,
    /// `sched_setaffinity(2)`, `ioprio_set(2)`, `prlimit(2)`). `RLIMIT_CPU` on the daemon
    /// would have the kernel kill it. Always denied to agents.
    TaskControl = 30,
    /// Writing the kernel's own interfaces: tunables (`/proc/sys`, and every procfs file that
    /// belongs to no task, `/proc/sysrq-trigger` among them), `/sys` attributes, and the
    /// kernel-interface filesystems (binfmt_misc, debugfs, tracefs, securityfs, configfs,
    /// efivarfs, pstore). Through them the kernel would run a helper of the agent's choosing
    /// outside every agent cgroup (`core_pattern`, `modprobe`, `uevent_helper`, binfmt_misc
    /// interpreters). Always denied to agents.
    KernelTunable = 31,
    /// Opening raw storage or memory for writing: block devices, `/dev/mem`, `/dev/kmem`,
    /// `/dev/port`. They reach the data beneath every file rule. Always denied to agents.
    RawDevice = 32,
    /// Creating raw or packet sockets (`SOCK_RAW`, `AF_PACKET`), which send around every
    /// network rule. Denied to agents unless their policy sets `allow_raw_sockets`.
    RawSocket = 33,
}

impl Class {
    /// Every class, in value order.
    pub const ALL: [Class; 33] = [
        Self::Unlink,
        Self::Rmdir,
        Self::Rename,
        Self::Truncate,
        Self::Write,
        Self::Chmod,
        Self::Chown,
        Self::Link,
        Self::Xattr,
        Self::Mknod,
        Self::Mount,
        Self::Exec,
        Self::Signal,
        Self::Ptrace,
        Self::Setid,
        Self::Connect,
        Self::Bind,
        Self::Send,
        Self::Bpf,
        Self::KernelModule,
        Self::CgroupEscape,
        Self::UnixConnect,
        Self::CgroupControl,
        Self::TtyInject,
        Self::Kexec,
        Self::Read,
        Self::Chattr,
        Self::Utimes,
        Self::Settime,
        Self::TaskControl,
        Self::KernelTunable,
        Self::RawDevice,
        Self::RawSocket,
    ];

    /// The class's bit in the rule masks ([`ProtectedRule`], [`Masks`]): `1 << value`. Only
    /// classes a rule can decide (file classes, read, unix-connect, exec, network) have one,
    /// and all of them are below 32; the built-in classes from 32 up are never in a mask,
    /// and give 0 here.
    pub const fn bit(self) -> u32 {
        let v = self as u32;
        if v < 32 {
            1 << v
        } else {
            0
        }
    }

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u32 == v)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Unlink => "unlink",
            Self::Rmdir => "rmdir",
            Self::Rename => "rename",
            Self::Truncate => "truncate",
            Self::Write => "write",
            Self::Chmod => "chmod",
            Self::Chown => "chown",
            Self::Link => "link",
            Self::Xattr => "xattr",
            Self::Mknod => "mknod",
            Self::Mount => "mount",
            Self::Exec => "exec",
            Self::Signal => "signal",
            Self::Ptrace => "ptrace",
            Self::Setid => "setid",
            Self::Connect => "connect",
            Self::Bind => "bind",
            Self::Send => "send",
            Self::Bpf => "bpf",
            Self::KernelModule => "kernel-module",
            Self::CgroupEscape => "cgroup-escape",
            Self::UnixConnect => "unix-connect",
            Self::CgroupControl => "cgroup-control",
            Self::TtyInject => "tty-inject",
            Self::Kexec => "kexec",
            Self::Read => "read",
            Self::Chattr => "chattr",
            Self::Utimes => "utimes",
            Self::Settime => "settime",
            Self::TaskControl => "task-control",
            Self::KernelTunable => "kernel-tunable",
            Self::RawDevice => "raw-device",
            Self::RawSocket => "raw-socket",
        }
    }
}

/// What a protected inode (and everything below it) is guarded against, for agents without
/// their own entry in [`AGENT_RULES`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectedRule {
    /// Index of the protected resource in the loaded policy.
    pub rule_id: u32,
    /// Classes denied for agents, as [`Class::bit`]s.
    pub deny_mask: u32,
    /// Classes allowed only under a lease, as [`Class::bit`]s (disjoint from `deny_mask`).
    pub lease_mask: u32,
    /// Classes some agent's own entry in [`AGENT_RULES`] decides for this resource (the
    /// kernel consults that map only for these), and classes the resource explicitly allows
    /// (the walk stops here for them; with no agent entry the verdict is `Silent`, allowed).
    pub agent_mask: u32,
}
const _: () = assert!(core::mem::size_of::<ProtectedRule>() == 16);

/// What the policy says about one class on one resource, for one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Refused; no lease can lift it.
    Deny,
    /// Allowed only under an unexpired lease.
    Lease,
    /// The agent's own decisions allow what the resource's defaults would not.
    Allow,
    /// This resource says nothing about the class (a resource further up may).
    Silent,
}

impl ProtectedRule {
    /// The verdict of this resource on the class `bit` for an agent whose own decisions on it
    /// (its [`AGENT_RULES`] entry) are `own`: those replace the defaults when present. The
    /// kernel and the daemon's log both decide through here.
    #[inline(always)]
    pub fn verdict(&self, own: Option<Masks>, bit: u32) -> Verdict {
        match own {
            Some(own) if own.deny_mask & bit != 0 => Verdict::Deny,
            Some(own) if own.lease_mask & bit != 0 => Verdict::Lease,
            Some(_) if (self.deny_mask | self.lease_mask) & bit != 0 => Verdict::Allow,
            Some(_) => Verdict::Silent,
            None if self.deny_mask & bit != 0 => Verdict::Deny,
            None if self.lease_mask & bit != 0 => Verdict::Lease,
            None => Verdict::Silent,
        }
    }
}

/// The decision masks of one (agent, resource) pair: a class in `deny_mask` is denied, one
/// in `lease_mask` needs a lease, any other is allowed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Masks {
    pub deny_mask: u32,
    pub lease_mask: u32,
}
const _: () = assert!(core::mem::size_of::<Masks>() == 8);

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
/// Bit added to a `rule_id` when the match was an *ancestor* of the protected path.
pub const RULE_ANCESTOR_FLAG: u32 = 1 << 30;
/// Bit added to a `rule_id` when the match was an inode registered for its place inside the
/// protected path ([`LINKED`]: a hard link reached through a name outside, or the root of a
/// filesystem mounted inside, reached without its mount).
pub const RULE_LINKED_FLAG: u32 = 1 << 28;

/// The policy's rule id behind a `rule_id` the kernel reported: without
/// [`RULE_LINKED_FLAG`] (the special ids from [`RULE_SELF`] up have every high bit set and
/// are returned as they are).
pub const fn rule_base(rule_id: u32) -> u32 {
    if rule_id >= RULE_SELF {
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
    /// `struct inode::i_nlink`
    pub inode_i_nlink: u32,
    /// `struct file::f_inode`
    pub file_f_inode: u32,
    /// `struct file::f_path.dentry`
    pub file_f_path_dentry: u32,
    /// `struct vm_area_struct::vm_file`
    pub vm_area_struct_vm_file: u32,
    /// `struct linux_binprm::file`
    pub linux_binprm_file: u32,
    /// `struct linux_binprm::cred`
    pub linux_binprm_cred: u32,
    /// `struct cred::uid`, the first of the eight ids `uid gid suid sgid euid egid fsuid
    /// fsgid`, which userspace checks are contiguous `u32`s in that order ([`CredId`]).
    pub cred_ids: u32,
    /// `struct cred::group_info`
    pub cred_group_info: u32,
    /// `struct group_info::ngroups`
    pub group_info_ngroups: u32,
    /// `struct group_info::gid` (flexible array of `kgid_t`)
    pub group_info_gid: u32,
    /// `struct task_struct::tgid`
    pub task_struct_tgid: u32,
    /// `struct task_struct::comm`
    pub task_struct_comm: u32,
    /// `struct task_struct::cred` (subjective credentials)
    pub task_struct_cred: u32,
    /// `struct task_struct::cgroups`
    pub task_struct_cgroups: u32,
    /// `struct css_set::dfl_cgrp` (the task's cgroup v2)
    pub css_set_dfl_cgrp: u32,
    /// `struct cgroup::kn`
    pub cgroup_kn: u32,
    /// `struct cgroup::level`
    pub cgroup_level: u32,
    /// `struct cgroup::ancestors` (flexible array, `ancestors[level]` is the cgroup itself)
    pub cgroup_ancestors: u32,
    /// `struct kernfs_node::id` (the cgroup id; its position differs between 6.1 and 6.12)
    pub kernfs_node_id: u32,
    /// `struct path::mnt`
    pub path_mnt: u32,
    /// `struct path::dentry`
    pub path_dentry: u32,
    /// `struct file::f_path`
    pub file_f_path: u32,
    /// `struct file::f_mode`
    pub file_f_mode: u32,
    /// `struct mount::mnt` (the embedded `struct vfsmount`)
    pub mount_mnt: u32,
    /// `struct mount::mnt_parent`
    pub mount_mnt_parent: u32,
    /// `struct mount::mnt_mountpoint`
    pub mount_mnt_mountpoint: u32,
    /// `struct inode::i_private` (on kernfs, the inode's `struct kernfs_node`)
    pub inode_i_private: u32,
    /// `struct kernfs_node::parent` (`__parent` since 6.15)
    pub kernfs_node_parent: u32,
    /// `struct kernfs_node::name`
    pub kernfs_node_name: u32,
    /// `struct super_block::s_magic`
    pub super_block_s_magic: u32,
    /// `struct vfsmount::mnt_root` (the dentry a mount shows at its root; for a bind mount
    /// of a directory, that directory)
    pub vfsmount_mnt_root: u32,
    /// `struct task_struct::mm` (null for kernel threads)
    pub task_struct_mm: u32,
    /// `struct mm_struct::exe_file`
    pub mm_struct_exe_file: u32,
    /// `struct unix_sock::path` (the `struct path` a unix socket is bound to; its dentry is
    /// null for abstract and unbound sockets)
    pub unix_sock_path: u32,
    /// `struct socket::sk`
    pub socket_sk: u32,
    /// `struct unix_sock::addr` (null for an unbound socket: a socketpair end, or one never
    /// bound nor autobound)
    pub unix_sock_addr: u32,
    /// `struct sock::sk_cgrp_data.cgroup` (the cgroup v2 of the task that created the socket)
    pub sock_sk_cgrp_data_cgroup: u32,
    /// `struct inode::i_mode`
    pub inode_i_mode: u32,
    /// `struct cred::cap_permitted` (a 64-bit `kernel_cap_t` on 6.1 and 6.12)
    pub cred_cap_permitted: u32,
    /// `struct proc_inode::pid` (the task a `/proc/PID/...` inode belongs to; null for
    /// procfs files of no task)
    pub proc_inode_pid: u32,
    /// `struct proc_inode::vfs_inode` (the embedded `struct inode`)
    pub proc_inode_vfs_inode: u32,
    /// `struct pid::tasks` (`tasks[PIDTYPE_PID]` first: the task with that pid)
    pub pid_tasks: u32,
    /// `struct task_struct::pid_links` (`pid_links[PIDTYPE_PID]` first)
    pub task_struct_pid_links: u32,
    /// `struct task_struct::pid` (the thread id; equal to `tgid` for a process's first thread)
    pub task_struct_pid: u32,
    /// `struct task_struct::real_parent`
    pub task_struct_real_parent: u32,
    /// `struct task_struct::group_leader`
    pub task_struct_group_leader: u32,
    /// `struct task_struct::start_boottime` (ns of `CLOCK_BOOTTIME`)
    pub task_struct_start_boottime: u32,
    /// `struct task_struct::exit_code`
    pub task_struct_exit_code: u32,
    /// `struct task_struct::signal`
    pub task_struct_signal: u32,
    /// `struct signal_struct::live` (threads not yet exiting; 0 once the last one exits)
    pub signal_struct_live: u32,
    /// `struct task_struct::fs`
    pub task_struct_fs: u32,
    /// `struct fs_struct::pwd`
    pub fs_struct_pwd: u32,
    /// `struct mm_struct::arg_start`
    pub mm_struct_arg_start: u32,
    /// `struct mm_struct::arg_end`
    pub mm_struct_arg_end: u32,
    /// Non-zero once userspace filled the struct; programs fail closed while it is zero.
    pub valid: u32,
    /// `struct inode::i_generation`
    pub inode_i_generation: u32,
    /// `struct vfsmount::mnt_sb` (which filesystem an open file is on, one read from the
    /// mount its path already gives)
    pub vfsmount_mnt_sb: u32,
    /// `struct dentry::d_flags` (`DCACHE_DISCONNECTED`: a dentry the walk cannot place)
    pub dentry_d_flags: u32,
    /// `struct inode::i_rdev` (the device a block or character device node stands for)
    pub inode_i_rdev: u32,
    /// `struct inode::i_dentry` (the inode's dentries, an `hlist_head`: its first alias)
    pub inode_i_dentry: u32,
    /// `struct dentry::d_u.d_alias` (the `hlist_node` linking a dentry into `i_dentry`)
    pub dentry_d_alias: u32,
    /// `struct vm_area_struct::vm_flags` (`VM_SHARED`, `VM_WRITE`)
    pub vm_area_struct_vm_flags: u32,
    /// `struct file::f_flags` (the open flags, `__FMODE_EXEC` among them)
    pub file_f_flags: u32,
    /// `struct iattr::ia_valid` (which attributes a setattr changes)
    pub iattr_ia_valid: u32,
    /// `struct sock::__sk_common.skc_family` (a `u16`)
    pub sock_sk_family: u32,
    /// `struct unix_sock::peer` (the socket a connected unix socket talks to)
    pub unix_sock_peer: u32,
    /// `struct file::private_data` (a socket file's `struct socket`)
    pub file_private_data: u32,
    /// Non-zero when `security_inode_setattr` takes the mount's idmap first (6.3 and later:
    /// `(idmap, dentry, attr)`); zero for `(dentry, attr)` (6.1). From the hook's BTF.
    pub inode_setattr_idmap: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 296);

impl KernelOffsets {
    /// All zero: what the object carries until userspace fills it (`valid == 0`).
    pub const UNSET: KernelOffsets = KernelOffsets {
        dentry_d_parent: 0,
        dentry_d_inode: 0,
        dentry_d_name_name: 0,
        inode_i_ino: 0,
        inode_i_sb: 0,
        super_block_s_dev: 0,
        inode_i_nlink: 0,
        file_f_inode: 0,
        file_f_path_dentry: 0,
        vm_area_struct_vm_file: 0,
        linux_binprm_file: 0,
        linux_binprm_cred: 0,
        cred_ids: 0,
        cred_group_info: 0,
        group_info_ngroups: 0,
        group_info_gid: 0,
        task_struct_tgid: 0,
        task_struct_comm: 0,
        task_struct_cred: 0,
        task_struct_cgroups: 0,
        css_set_dfl_cgrp: 0,
        cgroup_kn: 0,
        cgroup_level: 0,
        cgroup_ancestors: 0,
        kernfs_node_id: 0,
        path_mnt: 0,
        path_dentry: 0,
        file_f_path: 0,
        file_f_mode: 0,
        mount_mnt: 0,
        mount_mnt_parent: 0,
        mount_mnt_mountpoint: 0,
        inode_i_private: 0,
        kernfs_node_parent: 0,
        kernfs_node_name: 0,
        super_block_s_magic: 0,
        vfsmount_mnt_root: 0,
        task_struct_mm: 0,
        mm_struct_exe_file: 0,
        unix_sock_path: 0,
        socket_sk: 0,
        unix_sock_addr: 0,
        sock_sk_cgrp_data_cgroup: 0,
        inode_i_mode: 0,
        cred_cap_permitted: 0,
        proc_inode_pid: 0,
        proc_inode_vfs_inode: 0,
        pid_tasks: 0,
        task_struct_pid_links: 0,
        task_struct_pid: 0,
        task_struct_real_parent: 0,
        task_struct_group_leader: 0,
        task_struct_start_boottime: 0,
        task_struct_exit_code: 0,
        task_struct_signal: 0,
        signal_struct_live: 0,
        task_struct_fs: 0,
        fs_struct_pwd: 0,
        mm_struct_arg_start: 0,
        mm_struct_arg_end: 0,
        valid: 0,
        inode_i_generation: 0,
        vfsmount_mnt_sb: 0,
        dentry_d_flags: 0,
        inode_i_rdev: 0,
        inode_i_dentry: 0,
        dentry_d_alias: 0,
        vm_area_struct_vm_flags: 0,
        file_f_flags: 0,
        iattr_ia_valid: 0,
        sock_sk_family: 0,
        unix_sock_peer: 0,
        file_private_data: 0,
        inode_setattr_idmap: 0,
    };
}

/// The eight ids at [`KernelOffsets::cred_ids`], in kernel order; the value is the index.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredId {
    Uid = 0,
    Gid = 1,
    Suid = 2,
    Sgid = 3,
    Euid = 4,
    Egid = 5,
    Fsuid = 6,
    Fsgid = 7,
}

impl CredId {
    /// Every id, in kernel order.
    pub const ALL: [CredId; 8] = [
        Self::Uid,
        Self::Gid,
        Self::Suid,
        Self::Sgid,
        Self::Euid,
        Self::Egid,
        Self::Fsuid,
        Self::Fsgid,
    ];

    /// The `struct cred` member name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Uid => "uid",
            Self::Gid => "gid",
            Self::Suid => "suid",
            Self::Sgid => "sgid",
            Self::Euid => "euid",
            Self::Egid => "egid",
            Self::Fsuid => "fsuid",
            Self::Fsgid => "fsgid",
        }
    }
}

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
