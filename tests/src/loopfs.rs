//! Filesystems a test mounts for itself: a btrfs or ext4 image on a loop device, or a tmpfs of
//! a given size, each checked to be what it claims (`statfs` type) and unmounted when dropped;
//! and bind mounts, also undone when dropped. The rollback tests run one scenario on each kind
//! (a snapshot is a reflink on btrfs, a copy elsewhere), and make a disk full with a tiny tmpfs.
//!
//! Every mount is made by a plain host process (`mount(8)`), never by an agent.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use crate::{as_host, assert_ok, paths::s};

/// A filesystem kind the tests mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    Tmpfs,
    Ext4,
    Btrfs,
}

impl FsKind {
    /// Every kind, in the order the rollback scenario runs them.
    pub const ALL: [FsKind; 3] = [FsKind::Tmpfs, FsKind::Ext4, FsKind::Btrfs];

    /// The `f_type` `statfs(2)` reports (`linux/magic.h`).
    pub fn magic(self) -> u64 {
        match self {
            FsKind::Tmpfs => 0x0102_1994,
            FsKind::Ext4 => 0xEF53,
            FsKind::Btrfs => 0x9123_683E,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FsKind::Tmpfs => "tmpfs",
            FsKind::Ext4 => "ext4",
            FsKind::Btrfs => "btrfs",
        }
    }
}

/// The `f_type` of the filesystem holding `path`.
pub fn fs_magic(path: &Path) -> u64 {
    let c = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: an all-zero statfs is a valid value for statfs(2) to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path, and a statfs we own.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    assert_eq!(
        rc,
        0,
        "statfs {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    st.f_type as u64
}

/// Fails unless `path` lies on a filesystem of `kind`: a test's precondition.
pub fn assert_fs(path: &Path, kind: FsKind) {
    let magic = fs_magic(path);
    assert_eq!(
        magic,
        kind.magic(),
        "{} must be on {} (statfs type {:#x}), but its type is {magic:#x}",
        path.display(),
        kind.name(),
        kind.magic()
    );
}

/// A mount made by the test, unmounted (`umount`) when dropped.
pub struct Mount {
    pub at: PathBuf,
}

impl Mount {
    /// A tmpfs on `at` (created if missing) with `mount -o` options `options` (e.g.
    /// `size=64k`); checked to be a tmpfs.
    pub fn tmpfs(at: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap_or_else(|e| panic!("mkdir {}: {e}", at.display()));
        assert_ok(
            &as_host(&[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                options,
                "governor-test",
                &s(at),
            ]),
            &format!("mount a tmpfs ({options}) on {}", at.display()),
        );
        let m = Mount { at: at.to_owned() };
        assert_fs(at, FsKind::Tmpfs);
        m
    }

    /// Binds directory `from` on `to` (created if missing); checked to be `from`'s
    /// filesystem there.
    pub fn bind(from: &Path, to: &Path) -> Mount {
        std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
        assert_ok(
            &as_host(&["mount", "--bind", &s(from), &s(to)]),
            &format!("bind {} on {}", from.display(), to.display()),
        );
        let m = Mount { at: to.to_owned() };
        assert_eq!(
            fs_magic(to),
            fs_magic(from),
            "the bind of {} on {} did not take",
            from.display(),
            to.display()
        );
        m
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let out = as_host(&["umount", &s(&self.at)]);
        if !out.status.success() {
            let e = format!(
                "umount {}: {}",
                self.at.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            if std::thread::panicking() {
                eprintln!("cleanup after a failed test: {e}");
            } else {
                panic!("{e}");
            }
        }
    }
}

/// A filesystem of one [`FsKind`] mounted on `root`: for btrfs and ext4 a fresh image file
/// (sparse, beside the mount point) on a loop device, for tmpfs a tmpfs of that size.
/// Unmounted, and its image removed, when dropped.
pub struct LoopFs {
    pub kind: FsKind,
    /// The mount point: the filesystem's root directory.
    pub root: PathBuf,
    image: Option<PathBuf>,
    /// Taken (unmounted) first when dropped; then the image goes.
    mount: Option<Mount>,
}

impl LoopFs {
    /// Makes and mounts a `kind` filesystem of `size_mib` MiB on `root` (created if missing;
    /// the image is `<root>.img`). Checks that `root` is then on `kind`, and for btrfs that a
    /// file there can be cloned (`cp --reflink=always`), which the rollback tests rely on.
    pub fn new(kind: FsKind, root: &Path, size_mib: u64) -> LoopFs {
        std::fs::create_dir_all(root).unwrap_or_else(|e| panic!("mkdir {}: {e}", root.display()));
        let (image, mount) = match kind {
            FsKind::Tmpfs => (None, Mount::tmpfs(root, &format!("size={size_mib}m"))),
            FsKind::Ext4 | FsKind::Btrfs => {
                let image = root.with_extension("img");
                let _ = std::fs::remove_file(&image);
                let size = format!("{size_mib}M");
                assert_ok(
                    &as_host(&["truncate", "-s", &size, &s(&image)]),
                    "make the image file",
                );
                let mkfs = match kind {
                    FsKind::Btrfs => as_host(&["mkfs.btrfs", "-q", &s(&image)]),
                    _ => as_host(&["mkfs.ext4", "-q", "-F", &s(&image)]),
                };
                assert_ok(
                    &mkfs,
                    &format!(
                        "mkfs.{} on {} (btrfs-progs / e2fsprogs installed? `cargo xtask \
                         setup` installs them)",
                        kind.name(),
                        image.display()
                    ),
                );
                assert_ok(
                    &as_host(&["mount", "-o", "loop", &s(&image), &s(root)]),
                    &format!(
                        "mount -o loop {} (the loop and {} modules loaded? `cargo xtask vm` \
                         loads them)",
                        image.display(),
                        kind.name()
                    ),
                );
                (
                    Some(image),
                    Mount {
                        at: root.to_owned(),
                    },
                )
            }
        };
        let fs = LoopFs {
            kind,
            root: root.to_owned(),
            image,
            mount: Some(mount),
        };
        assert_fs(root, kind);
        if kind == FsKind::Btrfs {
            let (a, b) = (
                root.join(".reflink-probe"),
                root.join(".reflink-probe-clone"),
            );
            std::fs::write(&a, "probe").expect("write the reflink probe");
            assert_ok(
                &as_host(&["cp", "--reflink=always", &s(&a), &s(&b)]),
                "cp --reflink=always on btrfs",
            );
            for f in [a, b] {
                std::fs::remove_file(f).expect("remove the reflink probe");
            }
        }
        fs
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Unmounting autoclears the loop device (`mount -o loop` sets it up so).
        drop(self.mount.take());
        if let Some(image) = &self.image {
            let _ = std::fs::remove_file(image);
        }
    }
}
