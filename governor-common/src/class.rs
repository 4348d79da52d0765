//! Action classes: what an agent may be refused. A class's value is stored in events and the
//! lineage, and its bit ([`Class::bit`]) is what rule masks hold (`crate::decision`).

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

    /// The class's bit in the rule masks ([`ProtectedRule`](crate::decision::ProtectedRule),
    /// [`Masks`](crate::decision::Masks)): `1 << value`. Only classes a rule can decide (file
    /// classes, read, unix-connect, exec, network) have one, and all of them are below 32;
    /// the built-in classes from 32 up are never in a mask, and give 0 here.
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
