//! The kernel's identity of an inode, as the BPF programs read it: the device of the
//! inode's superblock (`inode->i_sb->s_dev`) and the inode number.
//!
//! `stat`'s `st_dev` is that device on most filesystems, but not on btrfs: there it is the
//! anonymous device of the file's subvolume, which the superblock never carries. Keyed by
//! `st_dev`, every protected path on btrfs would name an object the kernel never sees, and
//! nothing there would be protected. So the mount a path is on is found (`statx`'s mount
//! id), and on btrfs its line in `/proc/self/mountinfo` gives the superblock's device (that
//! file's `major:minor` is `s_dev`); every other filesystem keeps `st_dev`. The mount table
//! is read only where it can matter: btrfs's devices are anonymous (major 0), so a path with
//! a real major is keyed at once, and of the rest one `statfs` tells btrfs from tmpfs and
//! the like. A policy of 10,000 paths on ext4 or tmpfs reads no mount table at all; [`Keys`]
//! reads it once per `st_dev` it meets, for walks over many files on btrfs.

use std::{
    collections::HashMap,
    ffi::CString,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::Path,
};

use governor_common::InodeKey;

/// The kernel's key of the inode `meta` describes, found at `path` (`meta` from `stat` or
/// `lstat`: a symlink's own inode is keyed as such).
pub fn key(path: &Path, meta: &std::fs::Metadata) -> InodeKey {
    Keys::default().key(path, meta)
}

/// Keys for many paths: the superblock device of each `st_dev` is looked up once.
#[derive(Debug, Default)]
pub struct Keys {
    devs: HashMap<u64, (u32, u32)>,
}

impl Keys {
    /// As [`key`].
    pub fn key(&mut self, path: &Path, meta: &std::fs::Metadata) -> InodeKey {
        let (major, minor) = match self.devs.get(&meta.dev()) {
            Some(d) => *d,
            None => {
                let d = kernel_dev(path, meta);
                self.devs.insert(meta.dev(), d);
                d
            }
        };
        InodeKey::new(InodeKey::kernel_dev(major, minor), meta.ino())
    }
}

/// The (major, minor) of the superblock of the inode at `path`. Falls back to `st_dev` when
/// the mount cannot be found (the path went away meanwhile: its key no longer matters).
pub fn kernel_dev(path: &Path, meta: &std::fs::Metadata) -> (u32, u32) {
    let st = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let follow = !meta.file_type().is_symlink();
    // A filesystem on a block device reports the superblock's own device; btrfs reports an
    // anonymous one (major 0). Of those, only btrfs differs: one statfs says, before the
    // mount table is read (a symlink's own filesystem is its directory's).
    if st.0 != 0 {
        return st;
    }
    let on = if follow { Some(path) } else { path.parent() };
    if !on.is_some_and(on_btrfs) {
        return st;
    }
    let Some(id) = mount_id(path, follow) else {
        return st;
    };
    let Ok(info) = super::files::read_text(Path::new("/proc/self/mountinfo"), super::files::KERNEL)
    else {
        return st;
    };
    match mount(&info, id) {
        Some(m) if m.fstype == "btrfs" => m.dev,
        _ => st,
    }
}

/// Whether `path` (followed) is on btrfs.
fn on_btrfs(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, BTRFS_SUPER_MAGIC};
    statfs(path).is_ok_and(|s| s.filesystem_type() == BTRFS_SUPER_MAGIC)
}

/// The id of the mount `path` is on (`statx` with `STATX_MNT_ID`, Linux 5.8+).
fn mount_id(path: &Path, follow: bool) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: statx(2) fills the struct we own from a NUL-terminated path.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            libc::STATX_MNT_ID,
            &mut sx,
        )
    };
    (rc == 0 && sx.stx_mask & libc::STATX_MNT_ID != 0).then_some(sx.stx_mnt_id)
}

/// One mount as `mountinfo` lists it.
#[derive(Debug, PartialEq, Eq)]
struct Mount<'a> {
    /// The superblock's `s_dev`.
    dev: (u32, u32),
    fstype: &'a str,
}

/// Mount `id` in `mountinfo` text: `ID PARENT MAJOR:MINOR ROOT POINT OPTS [TAGS...] - TYPE
/// SOURCE SUPEROPTS`.
fn mount(mountinfo: &str, id: u64) -> Option<Mount<'_>> {
    mountinfo.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        if f.next()?.parse::<u64>().ok()? != id {
            return None;
        }
        let (major, minor) = f.nth(1)?.split_once(':')?;
        let fstype = f.skip_while(|x| *x != "-").nth(1)?;
        Some(Mount {
            dev: (major.parse().ok()?, minor.parse().ok()?),
            fstype,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_names_the_superblock_and_type_of_the_mount() {
        let info = "22 1 0:21 / /proc rw shared:5 - proc proc rw\n\
                    41 29 0:44 /@home /home rw,relatime - btrfs /dev/vdb rw\n";
        assert_eq!(
            mount(info, 41),
            Some(Mount {
                dev: (0, 44),
                fstype: "btrfs"
            })
        );
        assert_eq!(mount(info, 22).map(|m| m.fstype), Some("proc"));
        assert_eq!(mount(info, 7), None);
        assert_eq!(mount("41 29 bad / /x - x x\n", 41), None);
    }

    #[test]
    fn the_key_is_the_mounts_superblock_on_btrfs_and_stat_s_elsewhere() {
        let dir = super::super::scratch("inode-key");
        let meta = std::fs::metadata(&dir).expect("stat");
        let id = mount_id(&dir, true).expect("a mount id");
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let m = mount(&info, id).expect("the mount in mountinfo");
        let st = (libc::major(meta.dev()), libc::minor(meta.dev()));
        let want = if m.fstype == "btrfs" { m.dev } else { st };
        assert_eq!(kernel_dev(&dir, &meta), want);
        let mut keys = Keys::default();
        assert_eq!(keys.key(&dir, &meta), key(&dir, &meta));
        assert_eq!(keys.key(&dir, &meta).ino, meta.ino());
    }
}
