//! Resolves [`KernelOffsets`] for the running kernel from its BTF.

use governor_common::KernelOffsets;

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
        valid: 1,
    })
}
