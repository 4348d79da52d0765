//! What [`crate::Target::detail`] holds, per class. The kernel writes these encodings and the
//! daemon reads them back into words with [`describe`].
//!
//! | class            | event kind     | `detail`                                              |
//! |------------------|----------------|-------------------------------------------------------|
//! | exec             | FileDecision   | how: [`EXEC_VIA_EXECVE`], [`EXEC_VIA_MMAP`], [`EXEC_VIA_MPROTECT`] |
//! | signal           | TaskDecision   | the signal number; for a file owner being set, [`owner`] |
//! | ptrace           | TaskDecision   | the `PTRACE_MODE_*` bits of the access check; [`PTRACE_VIA_PROC_WRITE`] for a write to a `/proc/PID` file |
//! | setid            | HostDecision   | [`setid`]: which id (or [`SETID_CAPS`]), its new value, and whether by exec |
//! | bpf              | HostDecision   | the bpf(2) command (`BPF_MAP_CREATE` = 0, ...)        |
//! | kernel-module    | HostDecision   | how: [`MODULE_VIA_REQUEST`], [`MODULE_VIA_FILE`], [`MODULE_VIA_DATA`] |
//! | cgroup-escape    | HostDecision   | id of the cgroup whose `cgroup.procs`/`cgroup.threads` (v1: or `tasks`) was to be written (0: unreadable); [`CGROUP_V1`] on a cgroup v1 hierarchy |
//! | cgroup-control   | HostDecision   | id of the cgroup whose interface file was to be written, or in which a cgroup was to be created, removed or renamed (0: unreadable); [`CGROUP_V1`] on a cgroup v1 hierarchy |
//! | unix-connect     | HostDecision   | abstract socket: [`UNIX_ABSTRACT`] and the id of the cgroup the socket was created in (0: unreadable); path sockets are FileDecisions with `detail` 0 |
//! | tty-inject       | HostDecision   | the ioctl command ([`TIOCSTI`], [`TIOCLINUX`])         |
//! | kexec            | HostDecision   | how: [`KEXEC_VIA_FILE`], [`KEXEC_VIA_INITRAMFS`], [`KEXEC_VIA_DATA`] |
//! | mount            | HostDecision, or FileDecision for a mount on a named path | how: [`MOUNT_VIA_MOUNT`], [`MOUNT_VIA_MOVE`], [`MOUNT_VIA_UMOUNT`], [`MOUNT_VIA_FSCONFIG`], [`MOUNT_VIA_REMOUNT`], [`MOUNT_VIA_PIVOT_ROOT`] |
//! | write            | FileDecision   | 0 for an open or a write(2); [`WRITE_VIA_MMAP`], [`WRITE_VIA_MPROTECT`] for a shared writable mapping |
//! | chattr           | FileDecision   | the ioctl command ([`FS_IOC_SETFLAGS`], [`FS_IOC_FSSETXATTR`]) |
//! | settime          | HostDecision   | 0                                                     |
//! | task-control     | TaskDecision   | how: [`TASK_VIA_NICE`], [`TASK_VIA_SCHEDULER`], [`TASK_VIA_IOPRIO`], [`TASK_VIA_RLIMIT`] (resource in bits 8..16) |
//! | kernel-tunable   | FileDecision   | the filesystem's magic number (procfs, sysfs, binfmt_misc, ...) |
//! | raw-device       | FileDecision   | the device number (`major << 20 | minor`) and [`RAW_BLOCK`] for a block device |
//! | raw-socket       | HostDecision   | the socket's family in bits 32..48, its type in bits 0..32 |

#[cfg(any(test, feature = "user"))]
use crate::{maps::CredId, Class};

/// Exec by execve(2)/execveat(2) (`bprm_check_security`).
pub const EXEC_VIA_EXECVE: u64 = 1;
/// A `PROT_EXEC` mmap(2) of the file (`mmap_file`), e.g. by `ld.so BINARY`.
pub const EXEC_VIA_MMAP: u64 = 2;
/// An mprotect(2) adding `PROT_EXEC` to a mapping of the file (`file_mprotect`).
pub const EXEC_VIA_MPROTECT: u64 = 3;

/// The kernel asked for a module on the agent's behalf (`request_module`, module autoload).
pub const MODULE_VIA_REQUEST: u64 = 1;
/// finit_module(2): the module comes from a file.
pub const MODULE_VIA_FILE: u64 = 2;
/// init_module(2): the module comes from memory.
pub const MODULE_VIA_DATA: u64 = 3;

/// Unix-connect flag: the peer is an abstract socket; the low bits are the id of the cgroup
/// its socket was created in.
pub const UNIX_ABSTRACT: u64 = 1 << 63;
/// Cgroup-escape and cgroup-control flag: the cgroup is in a cgroup v1 hierarchy (where
/// agents may write nothing); the low bits are its id within that hierarchy.
pub const CGROUP_V1: u64 = 1 << 63;
/// Kernel image read from a file by kexec_file_load(2) (`READING_KEXEC_IMAGE`).
pub const KEXEC_VIA_FILE: u64 = 1;
/// Initramfs read from a file by kexec_file_load(2) (`READING_KEXEC_INITRAMFS`).
pub const KEXEC_VIA_INITRAMFS: u64 = 2;
/// kexec_load(2): segments from memory (`LOADING_KEXEC_IMAGE`).
pub const KEXEC_VIA_DATA: u64 = 3;

/// `TIOCSTI` from `<asm-generic/ioctls.h>`: insert a byte into the terminal's input queue.
pub const TIOCSTI: u64 = 0x5412;
/// `TIOCLINUX` from `<asm-generic/ioctls.h>`: virtual console controls, selection paste
/// among them.
pub const TIOCLINUX: u64 = 0x541C;

/// mount(2) (`sb_mount`).
pub const MOUNT_VIA_MOUNT: u64 = 0;
/// move_mount(2) or `mount --move` (`move_mount`).
pub const MOUNT_VIA_MOVE: u64 = 1;
/// umount2(2), any flags (`sb_umount`).
pub const MOUNT_VIA_UMOUNT: u64 = 2;
/// fsconfig(2) setting a parameter of a new or picked filesystem (`fs_context_parse_param`).
pub const MOUNT_VIA_FSCONFIG: u64 = 3;
/// A remount of a superblock (`sb_remount`).
pub const MOUNT_VIA_REMOUNT: u64 = 4;
/// pivot_root(2) (`sb_pivotroot`).
pub const MOUNT_VIA_PIVOT_ROOT: u64 = 5;

/// Write through a new shared writable mapping (`mmap(MAP_SHARED, PROT_WRITE)`).
pub const WRITE_VIA_MMAP: u64 = 1;
/// Write through an existing shared mapping made writable (`mprotect(PROT_WRITE)`).
pub const WRITE_VIA_MPROTECT: u64 = 2;

/// `FS_IOC_SETFLAGS` (`chattr`), x86-64 encoding.
pub const FS_IOC_SETFLAGS: u64 = 0x4008_6602;
/// `FS_IOC_FSSETXATTR` (`xfs_io chattr`, project ids and the same flags).
pub const FS_IOC_FSSETXATTR: u64 = 0x401c_5820;

/// setpriority(2) / nice(2) on another task (`task_setnice`).
pub const TASK_VIA_NICE: u64 = 1;
/// sched_setscheduler(2), sched_setparam(2), sched_setattr(2), sched_setaffinity(2)
/// (`task_setscheduler`).
pub const TASK_VIA_SCHEDULER: u64 = 2;
/// ioprio_set(2) (`task_setioprio`).
pub const TASK_VIA_IOPRIO: u64 = 3;
/// prlimit(2)/setrlimit(2) of another process (`task_setrlimit`); the resource in bits
/// 8..16.
pub const TASK_VIA_RLIMIT: u64 = 4;

/// Raw-device flag: a block device (else a character device: `/dev/mem`, `/dev/kmem`,
/// `/dev/port`).
pub const RAW_BLOCK: u64 = 1 << 32;

/// Ptrace flag: no access check, a write to a file of the target under `/proc/PID`
/// (`oom_score_adj`, `attr/*`, `comm`, ...).
pub const PTRACE_VIA_PROC_WRITE: u64 = 1 << 32;

/// Signal flag: no signal is sent now, a file owner is being set, to be signalled (SIGIO
/// unless F_SETSIG chose another) whenever the file has I/O. Bits 40..48 say how
/// ([`OWNER_F_SETOWN`], ...).
pub const SIGNAL_VIA_OWNER: u64 = 1 << 32;
/// Signal flag: the target is a process group, `target.pid` is its id.
pub const SIGNAL_TO_GROUP: u64 = 1 << 33;
/// fcntl(F_SETOWN): the owner comes by value and is checked.
pub const OWNER_F_SETOWN: u64 = 1;
/// fcntl(F_SETOWN_EX): the owner comes through a pointer.
pub const OWNER_F_SETOWN_EX: u64 = 2;
/// ioctl(FIOSETOWN): the owner comes through a pointer.
pub const OWNER_FIOSETOWN: u64 = 3;
/// ioctl(SIOCSPGRP): the owner comes through a pointer.
pub const OWNER_SIOCSPGRP: u64 = 4;

/// Signal detail for setting a file owner by `how` (an `OWNER_*` value).
pub const fn owner(how: u64, group: bool) -> u64 {
    let g = if group { SIGNAL_TO_GROUP } else { 0 };
    SIGNAL_VIA_OWNER | g | ((how & 0xff) << 40) | 29
}

/// Setid `which` value for setgroups(2); its "new id" is the new number of groups.
pub const SETID_GROUPS: u64 = 8;
/// Setid `which` value for an exec whose file capabilities raise the permitted
/// capabilities; its "new id" is the lowest capability raised (`CAP_NET_RAW` = 13, ...).
pub const SETID_CAPS: u64 = 9;
/// Setid flag: the transition came from executing a set-user/group-ID file.
pub const SETID_VIA_EXEC: u64 = 1 << 40;

/// Setid detail: `which` (a [`CredId`] index, or [`SETID_GROUPS`]) in bits 32..40, the new
/// value in bits 0..32, [`SETID_VIA_EXEC`] for a transition by exec.
pub const fn setid(which: u64, new: u32) -> u64 {
    ((which & 0xff) << 32) | new as u64
}

/// Signal names, indexed by number (x86-64).
#[cfg(any(test, feature = "user"))]
const SIGNALS: [&str; 32] = [
    "0",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// Capability names, indexed by number (`<linux/capability.h>`).
#[cfg(any(test, feature = "user"))]
const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Resource limit names, indexed by number (`<asm-generic/resource.h>`).
#[cfg(any(test, feature = "user"))]
const RLIMITS: [&str; 16] = [
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

/// Task-control detail for a resource limit: [`TASK_VIA_RLIMIT`] and the resource.
pub const fn rlimit(resource: u32) -> u64 {
    TASK_VIA_RLIMIT | ((resource as u64 & 0xff) << 8)
}

/// bpf(2) command names, indexed by number.
#[cfg(any(test, feature = "user"))]
const BPF_CMDS: [&str; 37] = [
    "BPF_MAP_CREATE",
    "BPF_MAP_LOOKUP_ELEM",
    "BPF_MAP_UPDATE_ELEM",
    "BPF_MAP_DELETE_ELEM",
    "BPF_MAP_GET_NEXT_KEY",
    "BPF_PROG_LOAD",
    "BPF_OBJ_PIN",
    "BPF_OBJ_GET",
    "BPF_PROG_ATTACH",
    "BPF_PROG_DETACH",
    "BPF_PROG_TEST_RUN",
    "BPF_PROG_GET_NEXT_ID",
    "BPF_MAP_GET_NEXT_ID",
    "BPF_PROG_GET_FD_BY_ID",
    "BPF_MAP_GET_FD_BY_ID",
    "BPF_OBJ_GET_INFO_BY_FD",
    "BPF_PROG_QUERY",
    "BPF_RAW_TRACEPOINT_OPEN",
    "BPF_BTF_LOAD",
    "BPF_BTF_GET_FD_BY_ID",
    "BPF_TASK_FD_QUERY",
    "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
    "BPF_MAP_FREEZE",
    "BPF_BTF_GET_NEXT_ID",
    "BPF_MAP_LOOKUP_BATCH",
    "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
    "BPF_MAP_UPDATE_BATCH",
    "BPF_MAP_DELETE_BATCH",
    "BPF_LINK_CREATE",
    "BPF_LINK_UPDATE",
    "BPF_LINK_GET_FD_BY_ID",
    "BPF_LINK_GET_NEXT_ID",
    "BPF_ENABLE_STATS",
    "BPF_ITER_CREATE",
    "BPF_LINK_DETACH",
    "BPF_PROG_BIND_MAP",
    "BPF_TOKEN_CREATE",
];

/// A short human-readable rendering of `detail` for `class`, for logs.
#[cfg(any(test, feature = "user"))]
pub fn describe(class: Class, detail: u64) -> alloc::string::String {
    use alloc::format;
    let small = usize::try_from(detail).ok();
    match class {
        Class::Exec => match detail {
            EXEC_VIA_EXECVE => "execve".into(),
            EXEC_VIA_MMAP => "mmap PROT_EXEC".into(),
            EXEC_VIA_MPROTECT => "mprotect PROT_EXEC".into(),
            _ => format!("exec ({detail})"),
        },
        Class::Signal => {
            let sig = (detail & 0xffff_ffff) as usize;
            let mut s = SIGNALS
                .get(sig)
                .map_or_else(|| format!("signal {sig}"), |s| (*s).into());
            if detail & SIGNAL_VIA_OWNER != 0 {
                s.push_str(match (detail >> 40) & 0xff {
                    OWNER_F_SETOWN => " as file owner (F_SETOWN)",
                    OWNER_F_SETOWN_EX => " as file owner (F_SETOWN_EX)",
                    OWNER_FIOSETOWN => " as file owner (FIOSETOWN)",
                    OWNER_SIOCSPGRP => " as file owner (SIOCSPGRP)",
                    _ => " as file owner",
                });
            }
            if detail & SIGNAL_TO_GROUP != 0 {
                s.push_str(" to a process group");
            }
            s
        }
        Class::Ptrace if detail & PTRACE_VIA_PROC_WRITE != 0 => "write to /proc/PID".into(),
        Class::Ptrace => {
            let mut s = format!("mode {detail:#x}:");
            for (bit, name) in [
                (1, " read"),
                (2, " attach"),
                (4, " noaudit"),
                (8, " fscreds"),
                (16, " realcreds"),
            ] {
                if detail & bit != 0 {
                    s.push_str(name);
                }
            }
            s
        }
        Class::Setid => {
            let which = (detail >> 32) & 0xff;
            let new = detail as u32;
            let via = if detail & SETID_VIA_EXEC != 0 {
                " by exec of a set-id file"
            } else {
                ""
            };
            match CredId::ALL.get(which as usize) {
                Some(id) => format!("{}={new}{via}", id.name()),
                None if which == SETID_GROUPS => format!("setgroups to {new} groups{via}"),
                None if which == SETID_CAPS => format!(
                    "exec of a file whose capabilities raise {}",
                    CAPS.get(new as usize)
                        .map_or_else(|| format!("capability {new}"), |s| (*s).into())
                ),
                None => format!("id {which}={new}{via}"),
            }
        }
        Class::Bpf => small
            .and_then(|n| BPF_CMDS.get(n))
            .map_or_else(|| format!("bpf cmd {detail}"), |s| (*s).into()),
        Class::KernelModule => match detail {
            MODULE_VIA_REQUEST => "request_module".into(),
            MODULE_VIA_FILE => "finit_module".into(),
            MODULE_VIA_DATA => "init_module".into(),
            _ => format!("module ({detail})"),
        },
        Class::TtyInject => match detail {
            TIOCSTI => "TIOCSTI".into(),
            TIOCLINUX => "TIOCLINUX".into(),
            _ => format!("ioctl {detail:#x}"),
        },
        Class::Kexec => match detail {
            KEXEC_VIA_FILE => "kexec_file_load kernel".into(),
            KEXEC_VIA_INITRAMFS => "kexec_file_load initramfs".into(),
            KEXEC_VIA_DATA => "kexec_load".into(),
            _ => format!("kexec ({detail})"),
        },
        Class::CgroupEscape | Class::CgroupControl if detail & CGROUP_V1 != 0 => {
            match detail & !CGROUP_V1 {
                0 => "cgroup v1 (unreadable)".into(),
                id => format!("cgroup v1 id {id}"),
            }
        }
        Class::CgroupEscape | Class::CgroupControl => match detail {
            0 => "cgroup (unreadable)".into(),
            id => format!("cgroup id {id}"),
        },
        Class::Mount => match detail {
            MOUNT_VIA_MOUNT => "mount".into(),
            MOUNT_VIA_MOVE => "move_mount".into(),
            MOUNT_VIA_UMOUNT => "umount".into(),
            MOUNT_VIA_FSCONFIG => "fsconfig".into(),
            MOUNT_VIA_REMOUNT => "remount".into(),
            MOUNT_VIA_PIVOT_ROOT => "pivot_root".into(),
            _ => format!("mount ({detail})"),
        },
        Class::Write => match detail {
            0 => "write".into(),
            WRITE_VIA_MMAP => "mmap MAP_SHARED PROT_WRITE".into(),
            WRITE_VIA_MPROTECT => "mprotect PROT_WRITE of a shared mapping".into(),
            _ => format!("write ({detail})"),
        },
        Class::Chattr => match detail {
            FS_IOC_SETFLAGS => "FS_IOC_SETFLAGS".into(),
            FS_IOC_FSSETXATTR => "FS_IOC_FSSETXATTR".into(),
            _ => format!("ioctl {detail:#x}"),
        },
        Class::TaskControl => match detail & 0xff {
            TASK_VIA_NICE => "setpriority".into(),
            TASK_VIA_SCHEDULER => "sched_setscheduler".into(),
            TASK_VIA_IOPRIO => "ioprio_set".into(),
            TASK_VIA_RLIMIT => format!(
                "prlimit {}",
                RLIMITS.get(((detail >> 8) & 0xff) as usize).map_or_else(
                    || format!("resource {}", (detail >> 8) & 0xff),
                    |s| (*s).into()
                )
            ),
            _ => format!("task control ({detail})"),
        },
        Class::KernelTunable => match detail {
            0x9fa0 => "procfs".into(),
            0x6265_6572 => "sysfs".into(),
            0x4249_4e4d => "binfmt_misc".into(),
            0x6462_6720 => "debugfs".into(),
            0x7472_6163 => "tracefs".into(),
            0x7363_6673 => "securityfs".into(),
            0x6265_6570 => "configfs".into(),
            0xde5e_81e4 => "efivarfs".into(),
            0x6165_676c => "pstore".into(),
            _ => format!("filesystem magic {detail:#x}"),
        },
        Class::RawDevice => {
            let dev = detail as u32;
            let kind = if detail & RAW_BLOCK != 0 {
                "block device"
            } else {
                "character device"
            };
            format!("{kind} {}:{}", dev >> 20, dev & 0xf_ffff)
        }
        Class::RawSocket => {
            let family = (detail >> 32) & 0xffff;
            let ty = detail as u32 & 0xf;
            let family = match family {
                2 => "AF_INET".into(),
                10 => "AF_INET6".into(),
                17 => "AF_PACKET".into(),
                n => format!("family {n}"),
            };
            let ty = match ty {
                1 => "SOCK_STREAM".into(),
                2 => "SOCK_DGRAM".into(),
                3 => "SOCK_RAW".into(),
                5 => "SOCK_SEQPACKET".into(),
                n => format!("type {n}"),
            };
            format!("{family} {ty}")
        }
        Class::UnixConnect if detail & UNIX_ABSTRACT != 0 => match detail & !UNIX_ABSTRACT {
            0 => "abstract socket of an unreadable cgroup".into(),
            id => format!("abstract socket of cgroup id {id}"),
        },
        _ => format!("{detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setid_encoding_round_trips() {
        let d = setid(CredId::Euid as u64, 0) | SETID_VIA_EXEC;
        assert_eq!(describe(Class::Setid, d), "euid=0 by exec of a set-id file");
        assert_eq!(
            describe(Class::Setid, setid(CredId::Uid as u64, 65534)),
            "uid=65534"
        );
        assert_eq!(
            describe(Class::Setid, setid(SETID_GROUPS, 2)),
            "setgroups to 2 groups"
        );
    }

    #[test]
    fn names() {
        assert_eq!(describe(Class::Signal, 15), "SIGTERM");
        assert_eq!(describe(Class::Signal, 64), "signal 64");
        assert_eq!(describe(Class::CgroupEscape, 1), "cgroup id 1");
        assert_eq!(describe(Class::CgroupEscape, 0), "cgroup (unreadable)");
        assert_eq!(describe(Class::CgroupControl, 7), "cgroup id 7");
        assert_eq!(
            describe(Class::CgroupControl, CGROUP_V1 | 7),
            "cgroup v1 id 7"
        );
        assert_eq!(
            describe(Class::CgroupEscape, CGROUP_V1),
            "cgroup v1 (unreadable)"
        );
        assert_eq!(
            describe(Class::UnixConnect, UNIX_ABSTRACT | 42),
            "abstract socket of cgroup id 42"
        );
        assert_eq!(
            describe(Class::UnixConnect, UNIX_ABSTRACT),
            "abstract socket of an unreadable cgroup"
        );
        assert_eq!(describe(Class::UnixConnect, 0), "0");
        assert_eq!(
            describe(Class::Signal, owner(OWNER_F_SETOWN, true)),
            "SIGIO as file owner (F_SETOWN) to a process group"
        );
        assert_eq!(
            describe(Class::Signal, owner(OWNER_SIOCSPGRP, false)),
            "SIGIO as file owner (SIOCSPGRP)"
        );
        assert_eq!(describe(Class::Bpf, 0), "BPF_MAP_CREATE");
        assert_eq!(describe(Class::Bpf, 5), "BPF_PROG_LOAD");
        assert_eq!(describe(Class::Ptrace, 0x12), "mode 0x12: attach realcreds");
        assert_eq!(describe(Class::Exec, EXEC_VIA_MMAP), "mmap PROT_EXEC");
        assert_eq!(describe(Class::TtyInject, TIOCSTI), "TIOCSTI");
        assert_eq!(
            describe(Class::Kexec, KEXEC_VIA_FILE),
            "kexec_file_load kernel"
        );
        assert_eq!(
            describe(Class::Setid, setid(SETID_CAPS, 13) | SETID_VIA_EXEC),
            "exec of a file whose capabilities raise CAP_NET_RAW"
        );
        assert_eq!(
            describe(Class::Ptrace, PTRACE_VIA_PROC_WRITE),
            "write to /proc/PID"
        );
        assert_eq!(
            describe(Class::KernelModule, MODULE_VIA_FILE),
            "finit_module"
        );
        assert_eq!(describe(Class::Mount, MOUNT_VIA_UMOUNT), "umount");
        assert_eq!(describe(Class::Mount, MOUNT_VIA_MOUNT), "mount");
        assert_eq!(
            describe(Class::Write, WRITE_VIA_MMAP),
            "mmap MAP_SHARED PROT_WRITE"
        );
        assert_eq!(describe(Class::Chattr, FS_IOC_SETFLAGS), "FS_IOC_SETFLAGS");
        assert_eq!(
            describe(Class::TaskControl, rlimit(0)),
            "prlimit RLIMIT_CPU"
        );
        assert_eq!(describe(Class::TaskControl, TASK_VIA_NICE), "setpriority");
        assert_eq!(describe(Class::KernelTunable, 0x9fa0), "procfs");
        assert_eq!(
            describe(Class::RawDevice, RAW_BLOCK | (8 << 20) | 1),
            "block device 8:1"
        );
        assert_eq!(
            describe(Class::RawDevice, 1 << 20 | 1),
            "character device 1:1"
        );
        assert_eq!(
            describe(Class::RawSocket, 17 << 32 | 3),
            "AF_PACKET SOCK_RAW"
        );
    }
}
