//! Where the programs read kernel structs: the byte offsets userspace resolves from the
//! running kernel's BTF and sets as a read-only global before load ([`KernelOffsets`],
//! `maps::OFFSETS_GLOBAL`), and the credential ids they index.

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
