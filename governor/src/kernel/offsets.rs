//! Resolves [`KernelOffsets`] for the running kernel from its BTF.

use governor_common::{maps::CredId, KernelOffsets};

use super::btf::{Btf, BtfError};

#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error("kernel BTF: {0}")]
    Btf(#[from] BtfError),
    #[error("kernel BTF: `{strukt}.{member}` is {got} bytes, governor expects {want}")]
    Size {
        strukt: &'static str,
        member: &'static str,
        got: u32,
        want: u32,
    },
    #[error(
        "kernel BTF: `{strukt}.{member}` is at offset {got}, governor expects {want} \
         (the ids of struct cred are no longer laid out as governor reads them)"
    )]
    Layout {
        strukt: &'static str,
        member: &'static str,
        got: u32,
        want: u32,
    },
}

/// Offset of `strukt.member`, checking the member's size.
pub(crate) fn field(
    btf: &Btf,
    strukt: &'static str,
    member: &'static str,
    want: u32,
) -> Result<u32, OffsetsError> {
    let got = btf.member_size(strukt, member)?;
    if got != want {
        return Err(OffsetsError::Size {
            strukt,
            member,
            got,
            want,
        });
    }
    Ok(btf.member_offset(strukt, member)?)
}

/// The offsets the programs need, for the kernel whose BTF is `btf`.
pub fn resolve(btf: &Btf) -> Result<KernelOffsets, OffsetsError> {
    Ok(KernelOffsets {
        dentry_d_parent: field(btf, "dentry", "d_parent", 8)?,
        dentry_d_inode: field(btf, "dentry", "d_inode", 8)?,
        dentry_d_name_name: field(btf, "dentry", "d_name.name", 8)?,
        inode_i_ino: field(btf, "inode", "i_ino", 8)?,
        inode_i_sb: field(btf, "inode", "i_sb", 8)?,
        super_block_s_dev: field(btf, "super_block", "s_dev", 4)?,
        path_mnt: field(btf, "path", "mnt", 8)?,
        path_dentry: field(btf, "path", "dentry", 8)?,
        file_f_path: field(btf, "file", "f_path", 16)?,
        file_f_mode: field(btf, "file", "f_mode", 4)?,
        mount_mnt: btf.member_offset("mount", "mnt")?,
        mount_mnt_parent: field(btf, "mount", "mnt_parent", 8)?,
        mount_mnt_mountpoint: field(btf, "mount", "mnt_mountpoint", 8)?,
        vfsmount_mnt_root: field(btf, "vfsmount", "mnt_root", 8)?,
        task_struct_mm: field(btf, "task_struct", "mm", 8)?,
        mm_struct_exe_file: field(btf, "mm_struct", "exe_file", 8)?,
        inode_i_nlink: field(btf, "inode", "i_nlink", 4)?,
        file_f_inode: field(btf, "file", "f_inode", 8)?,
        file_f_path_dentry: field(btf, "file", "f_path.dentry", 8)?,
        vm_area_struct_vm_file: field(btf, "vm_area_struct", "vm_file", 8)?,
        linux_binprm_file: field(btf, "linux_binprm", "file", 8)?,
        linux_binprm_cred: field(btf, "linux_binprm", "cred", 8)?,
        cred_ids: cred_ids(btf)?,
        cred_group_info: field(btf, "cred", "group_info", 8)?,
        group_info_ngroups: field(btf, "group_info", "ngroups", 4)?,
        // Flexible arrays have size 0.
        group_info_gid: field(btf, "group_info", "gid", 0)?,
        task_struct_tgid: field(btf, "task_struct", "tgid", 4)?,
        task_struct_comm: field(btf, "task_struct", "comm", 16)?,
        task_struct_cred: field(btf, "task_struct", "cred", 8)?,
        task_struct_cgroups: field(btf, "task_struct", "cgroups", 8)?,
        css_set_dfl_cgrp: field(btf, "css_set", "dfl_cgrp", 8)?,
        cgroup_kn: field(btf, "cgroup", "kn", 8)?,
        cgroup_level: field(btf, "cgroup", "level", 4)?,
        cgroup_ancestors: field(btf, "cgroup", "ancestors", 0)?,
        kernfs_node_id: field(btf, "kernfs_node", "id", 8)?,
        inode_i_private: field(btf, "inode", "i_private", 8)?,
        kernfs_node_parent: field(btf, "kernfs_node", "parent", 8)
            .or_else(|_| field(btf, "kernfs_node", "__parent", 8))?,
        kernfs_node_name: field(btf, "kernfs_node", "name", 8)?,
        super_block_s_magic: field(btf, "super_block", "s_magic", 8)?,
        unix_sock_path: field(btf, "unix_sock", "path", 16)?,
        socket_sk: field(btf, "socket", "sk", 8)?,
        unix_sock_addr: field(btf, "unix_sock", "addr", 8)?,
        sock_sk_cgrp_data_cgroup: field(btf, "sock", "sk_cgrp_data.cgroup", 8)?,
        inode_i_mode: field(btf, "inode", "i_mode", 2)?,
        cred_cap_permitted: field(btf, "cred", "cap_permitted", 8)?,
        proc_inode_pid: field(btf, "proc_inode", "pid", 8)?,
        proc_inode_vfs_inode: btf.member_offset("proc_inode", "vfs_inode")?,
        // `struct hlist_head tasks[PIDTYPE_MAX]` and `struct hlist_node pid_links[PIDTYPE_MAX]`:
        // only the PIDTYPE_PID (first) element is read.
        pid_tasks: btf.member_offset("pid", "tasks")?,
        task_struct_pid_links: btf.member_offset("task_struct", "pid_links")?,
        task_struct_pid: field(btf, "task_struct", "pid", 4)?,
        task_struct_real_parent: field(btf, "task_struct", "real_parent", 8)?,
        task_struct_group_leader: field(btf, "task_struct", "group_leader", 8)?,
        task_struct_start_boottime: field(btf, "task_struct", "start_boottime", 8)?,
        task_struct_exit_code: field(btf, "task_struct", "exit_code", 4)?,
        task_struct_signal: field(btf, "task_struct", "signal", 8)?,
        signal_struct_live: field(btf, "signal_struct", "live", 4)?,
        task_struct_fs: field(btf, "task_struct", "fs", 8)?,
        fs_struct_pwd: field(btf, "fs_struct", "pwd", 16)?,
        mm_struct_arg_start: field(btf, "mm_struct", "arg_start", 8)?,
        mm_struct_arg_end: field(btf, "mm_struct", "arg_end", 8)?,
        valid: 1,
        inode_i_generation: field(btf, "inode", "i_generation", 4)?,
        vfsmount_mnt_sb: field(btf, "vfsmount", "mnt_sb", 8)?,
        dentry_d_flags: field(btf, "dentry", "d_flags", 4)?,
        inode_i_rdev: field(btf, "inode", "i_rdev", 4)?,
        inode_i_dentry: field(btf, "inode", "i_dentry", 8)?,
        dentry_d_alias: field(btf, "dentry", "d_u.d_alias", 16)
            .or_else(|_| field(btf, "dentry", "d_alias", 16))?,
        vm_area_struct_vm_flags: field(btf, "vm_area_struct", "vm_flags", 8)?,
        file_f_flags: field(btf, "file", "f_flags", 4)?,
        iattr_ia_valid: field(btf, "iattr", "ia_valid", 4)?,
        sock_sk_family: field(btf, "sock", "__sk_common.skc_family", 2)?,
        unix_sock_peer: field(btf, "unix_sock", "peer", 8)?,
        file_private_data: field(btf, "file", "private_data", 8)?,
        inode_setattr_idmap: u32::from(btf.func_params("bpf_lsm_inode_setattr")? == 3),
    })
}

/// Offset of `cred.uid`, after checking that the eight ids follow it as contiguous `u32`s in
/// [`CredId`] order: the programs read them in one go.
fn cred_ids(btf: &Btf) -> Result<u32, OffsetsError> {
    let base = field(btf, "cred", "uid", 4)?;
    for id in CredId::ALL {
        let got = field(btf, "cred", id.name(), 4)?;
        let want = base + 4 * id as u32;
        if got != want {
            return Err(OffsetsError::Layout {
                strukt: "cred",
                member: id.name(),
                got,
                want,
            });
        }
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every offset resolves on the host kernel, and on every kernel whose BTF is listed in
    /// `$GOVERNOR_TEST_BTF` (colon-separated files, e.g. BTF extracted from other kernels).
    #[test]
    fn resolves_on_real_kernels() {
        let mut files = vec![std::path::PathBuf::from(
            super::super::btf::VMLINUX_BTF_PATH,
        )];
        if let Some(extra) = std::env::var_os("GOVERNOR_TEST_BTF") {
            files.extend(std::env::split_paths(&extra));
        }
        for file in files {
            let btf = Btf::from_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let off = resolve(&btf).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            eprintln!("{}: {off:?}", file.display());
            assert_eq!(off.valid, 1);
            assert!(off.cred_ids > 0 && off.kernfs_node_id > 0 && off.task_struct_cgroups > 0);
            assert!(off.unix_sock_path > 0 && off.socket_sk > 0);
            assert!(off.unix_sock_addr > 0 && off.sock_sk_cgrp_data_cgroup > 0);
        }
    }
}
