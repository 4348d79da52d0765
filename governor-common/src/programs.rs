//! Names of governor's kernel programs, shared by the daemon's loader and the benchmark
//! driver (which attaches empty programs to the same hooks to measure the floor every
//! BPF-LSM program pays). The one list of hooks: a host test in the daemon
//! (`governor/src/kernel/loader_tests.rs`) proves that the compiled object holds exactly
//! these programs (and the network ones, `governor/src/kernel/net.rs`), and that every
//! optional hook is one of them.

/// Hooks of governor's BPF-LSM programs; each program is named after the hook it attaches to
/// (`bpf_lsm_<hook>` in the kernel's BTF). A kernel may lack a few ([`OPTIONAL_LSM_HOOKS`]).
pub const LSM_HOOKS: &[&str] = &[
    "path_unlink",
    "path_rmdir",
    "path_rename",
    "path_truncate",
    "file_truncate",
    "file_open",
    "file_permission",
    "path_chmod",
    "path_chown",
    "path_link",
    "inode_setxattr",
    "inode_removexattr",
    "inode_set_acl",
    "inode_remove_acl",
    "path_mknod",
    "path_mkdir",
    "path_symlink",
    // governor-ebpf/src/stacked.rs: inode hooks (stacked filesystems' layers; timestamps)
    "inode_create",
    "inode_unlink",
    "inode_rmdir",
    "inode_mkdir",
    "inode_symlink",
    "inode_mknod",
    "inode_rename",
    "inode_link",
    "inode_setattr",
    // governor-ebpf/src/mount.rs: the mount tree
    "sb_mount",
    "move_mount",
    "sb_umount",
    "sb_remount",
    "sb_pivotroot",
    "fs_context_parse_param",
    // governor-ebpf/src/exec_setid.rs: setid (exec is decided at file_open, above)
    "bprm_creds_from_file",
    "task_fix_setuid",
    "task_fix_setgid",
    "task_fix_setgroups",
    // governor-ebpf/src/mapping.rs: executable and shared writable mappings
    "mmap_file",
    "file_mprotect",
    // governor-ebpf/src/outside.rs: signal, ptrace, task control of tasks outside the agent
    "task_kill",
    "file_fcntl",
    "ptrace_access_check",
    "task_setnice",
    "task_setscheduler",
    "task_setioprio",
    "task_setrlimit",
    // governor-ebpf/src/ioctl.rs: file owners, terminal input, inode flags
    "file_ioctl",
    "file_ioctl_compat",
    // governor-ebpf/src/kfs.rs: cgroup escape and control, kernel tunables, /proc/PID files
    "inode_permission",
    // governor-ebpf/src/host.rs: bpf, kernel modules, kexec, clock, raw sockets
    "bpf",
    "kernel_module_request",
    "kernel_read_file",
    "kernel_load_data",
    "settime",
    "socket_create",
    // governor-ebpf/src/ipc.rs: unix-connect, connections and descriptors held, locks
    "unix_stream_connect",
    "unix_may_send",
    "socket_sendmsg",
    "file_receive",
    "file_lock",
];

/// Hooks of [`LSM_HOOKS`] that older kernels lack, and what covers the same operations there:
/// the loader skips them (and says so) where the kernel has no `bpf_lsm_<hook>`; any other
/// missing hook fails the load.
pub const OPTIONAL_LSM_HOOKS: &[(&str, &str)] = &[
    (
        "file_truncate",
        "ftruncate(2) goes through path_truncate before 6.2",
    ),
    (
        "inode_set_acl",
        "ACLs are set through inode_setxattr before 6.2",
    ),
    (
        "inode_remove_acl",
        "ACLs are removed through inode_removexattr before 6.2",
    ),
];

/// Raw tracepoint programs that keep every cgroup below an agent cgroup registered as the
/// agent's (governor-ebpf/src/cgroup.rs); each is named after its tracepoint. They are not
/// BPF-LSM programs and load on kernels without it, where they serve the network programs.
pub const CGROUP_TRACEPOINTS: &[&str] = &["cgroup_mkdir", "cgroup_rmdir"];

/// Raw tracepoint programs that record agent processes' fork, exec and exit for the lineage
/// (governor-ebpf/src/proc_events.rs); each is named after its tracepoint. Enforcement does
/// not depend on them; they load on kernels without BPF-LSM too.
pub const PROC_TRACEPOINTS: &[&str] = &[
    "sched_process_fork",
    "sched_process_exec",
    "sched_process_exit",
];
