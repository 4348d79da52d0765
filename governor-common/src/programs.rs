//! Names of governor's kernel programs, shared by the daemon's loader and the benchmark
//! driver (which attaches empty programs to the same hooks to measure the floor every
//! BPF-LSM program pays).

/// Hooks of governor's BPF-LSM programs; each program is named after the hook it attaches to
/// (`bpf_lsm_<hook>` in the kernel's BTF). A kernel may lack a few (the loader's
/// `OPTIONAL_HOOKS`).
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
    "inode_create",
    "sb_mount",
    "move_mount",
    // governor-ebpf/src/task.rs: exec, setid, signal, ptrace
    "bprm_check_security",
    "mmap_file",
    "file_mprotect",
    "bprm_creds_from_file",
    "task_fix_setuid",
    "task_fix_setgid",
    "task_fix_setgroups",
    "task_kill",
    "file_fcntl",
    "file_ioctl",
    "file_ioctl_compat",
    "ptrace_access_check",
    // governor-ebpf/src/cgroup.rs: cgroup escape
    "inode_permission",
    // governor-ebpf/src/host.rs: bpf, kernel modules
    "bpf",
    "kernel_module_request",
    "kernel_read_file",
    "kernel_load_data",
    // governor-ebpf/src/ipc.rs: unix-connect
    "unix_stream_connect",
    "unix_may_send",
];
