//! A directory tree's manifest: everything a rollback must give back, per path relative to the
//! root (the root itself is `.`), read with `lstat` and never following a symlink: kind,
//! permission bits, owner, mtime to the nanosecond, size and SHA-256 of a file's content, a
//! symlink's target, every extended attribute (ACLs are the `system.posix_acl_*` ones), and
//! which paths share an inode (hardlink groups, as paths: inode numbers change when a file is
//! restored). Two manifests compare equal when the trees are byte- and metadata-identical;
//! [`Manifest::diff`] says how they differ, in words.
//!
//! Left out on purpose: atime (reading a file changes it), ctime and inode numbers (no restore
//! can keep them), a directory's size (filesystem bookkeeping: ext4 never shrinks a directory),
//! and link counts to names outside the tree.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::CString,
    fmt,
    os::unix::{
        ffi::OsStrExt,
        fs::{FileTypeExt, MetadataExt},
    },
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Device,
}

/// One path's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Bytes of a file's content or a symlink's target; 0 for other kinds.
    pub size: u64,
    /// SHA-256 of a file's content, in hex.
    pub sha256: Option<String>,
    /// A symlink's target, as stored.
    pub target: Option<PathBuf>,
    /// Every extended attribute, sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// A tree's state: one [`Entry`] per relative path, and its hardlink groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<PathBuf, Entry>,
    /// Every set of two or more paths in the tree that name one inode, each sorted, sorted.
    pub hardlinks: Vec<Vec<PathBuf>>,
}

impl Manifest {
    /// Reads the tree at `root` (which must be a directory). Panics, naming the path, on any
    /// error: a manifest that skipped something would hide the very difference it is for.
    pub fn of(root: &Path) -> Manifest {
        let meta = std::fs::symlink_metadata(root)
            .unwrap_or_else(|e| panic!("manifest: lstat {}: {e}", root.display()));
        assert!(
            meta.is_dir(),
            "manifest: {} is not a directory",
            root.display()
        );
        let mut entries = BTreeMap::new();
        let mut inodes: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
        let mut stack = vec![PathBuf::from(".")];
        while let Some(rel) = stack.pop() {
            let path = root.join(&rel);
            let meta = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("manifest: lstat {}: {e}", path.display()));
            let entry = entry(&path, &meta);
            if entry.kind == Kind::Dir {
                let names = std::fs::read_dir(&path)
                    .unwrap_or_else(|e| panic!("manifest: list {}: {e}", path.display()));
                for name in names {
                    let name = name
                        .unwrap_or_else(|e| panic!("manifest: list {}: {e}", path.display()))
                        .file_name();
                    stack.push(if rel == Path::new(".") {
                        PathBuf::from(name)
                    } else {
                        rel.join(name)
                    });
                }
            } else {
                inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .push(rel.clone());
            }
            entries.insert(rel, entry);
        }
        let mut hardlinks: Vec<Vec<PathBuf>> = inodes
            .into_values()
            .filter(|paths| paths.len() > 1)
            .map(|mut paths| {
                paths.sort();
                paths
            })
            .collect();
        hardlinks.sort();
        Manifest { entries, hardlinks }
    }

    /// Every difference from `self` (before) to `after`, one line each; empty when equal.
    pub fn diff(&self, after: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        for (path, b) in &self.entries {
            match after.entries.get(path) {
                None => out.push(format!("{}: gone (was {})", path.display(), b.summary())),
                Some(a) => differences(path, b, a, &mut out),
            }
        }
        for (path, a) in &after.entries {
            if !self.entries.contains_key(path) {
                out.push(format!("{}: new ({})", path.display(), a.summary()));
            }
        }
        if self.hardlinks != after.hardlinks {
            out.push(format!(
                "hardlink groups: {} -> {}",
                groups(&self.hardlinks),
                groups(&after.hardlinks)
            ));
        }
        out
    }

    /// Panics with every difference unless `after` equals `self`.
    pub fn assert_same(&self, after: &Manifest, what: &str) {
        let diff = self.diff(after);
        assert!(
            diff.is_empty(),
            "{what}: the tree differs from its manifest ({} differences):\n  {}",
            diff.len(),
            diff.join("\n  ")
        );
    }

    /// Files (regular) in the manifest.
    pub fn files(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.kind == Kind::File)
            .count()
    }
}

impl fmt::Display for Manifest {
    /// One line per path, then the hardlink groups: for a failing test's output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (path, e) in &self.entries {
            writeln!(f, "{} {}", path.display(), e.summary())?;
        }
        write!(f, "hardlinks {}", groups(&self.hardlinks))
    }
}

impl Entry {
    /// Kind, mode and owner, and the size of a file or a symlink's target.
    fn summary(&self) -> String {
        let mut s = format!(
            "{:?} {:04o} {}:{}",
            self.kind, self.mode, self.uid, self.gid
        );
        if let Some(t) = &self.target {
            s += &format!(" -> {}", t.display());
        } else if self.kind == Kind::File {
            s += &format!(" {} bytes", self.size);
        }
        s
    }
}

fn entry(path: &Path, meta: &std::fs::Metadata) -> Entry {
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else {
        Kind::Device
    };
    let (sha256, target) = match kind {
        Kind::File => {
            let bytes = std::fs::read(path)
                .unwrap_or_else(|e| panic!("manifest: read {}: {e}", path.display()));
            (Some(hex(&Sha256::digest(&bytes))), None)
        }
        Kind::Symlink => {
            let t = std::fs::read_link(path)
                .unwrap_or_else(|e| panic!("manifest: readlink {}: {e}", path.display()));
            (None, Some(t))
        }
        _ => (None, None),
    };
    Entry {
        size: if matches!(kind, Kind::File | Kind::Symlink) {
            meta.len()
        } else {
            0
        },
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        sha256,
        target,
        xattrs: xattrs(path),
    }
}

fn differences(path: &Path, b: &Entry, a: &Entry, out: &mut Vec<String>) {
    let p = path.display();
    if b.kind != a.kind {
        out.push(format!("{p}: kind {:?} -> {:?}", b.kind, a.kind));
        return;
    }
    if b.mode != a.mode {
        out.push(format!("{p}: mode {:04o} -> {:04o}", b.mode, a.mode));
    }
    if (b.uid, b.gid) != (a.uid, a.gid) {
        out.push(format!(
            "{p}: owner {}:{} -> {}:{}",
            b.uid, b.gid, a.uid, a.gid
        ));
    }
    if b.mtime_ns != a.mtime_ns {
        out.push(format!(
            "{p}: mtime {} -> {} ({:+} ns)",
            b.mtime_ns,
            a.mtime_ns,
            a.mtime_ns - b.mtime_ns
        ));
    }
    if b.kind == Kind::File && (b.size != a.size || b.sha256 != a.sha256) {
        out.push(format!(
            "{p}: content {} bytes sha256 {} -> {} bytes sha256 {}",
            b.size,
            short(&b.sha256),
            a.size,
            short(&a.sha256)
        ));
    }
    if b.target != a.target {
        out.push(format!(
            "{p}: symlink target {:?} -> {:?}",
            b.target, a.target
        ));
    }
    if b.xattrs != a.xattrs {
        let names = |e: &Entry| -> Vec<String> {
            e.xattrs
                .iter()
                .map(|(n, v)| format!("{n}={}", hex(v)))
                .collect()
        };
        out.push(format!("{p}: xattrs {:?} -> {:?}", names(b), names(a)));
    }
}

fn short(sha: &Option<String>) -> &str {
    sha.as_deref().map_or("-", |s| &s[..12.min(s.len())])
}

fn groups(g: &[Vec<PathBuf>]) -> String {
    let g: Vec<Vec<String>> = g
        .iter()
        .map(|paths| paths.iter().map(|p| p.display().to_string()).collect())
        .collect();
    format!("{g:?}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes())
        .unwrap_or_else(|_| panic!("{} has a NUL byte", path.display()))
}

/// Every extended attribute of `path` itself (`llistxattr`/`lgetxattr`), sorted by name.
pub fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let c = cpath(path);
    let names = read_sized(path, "llistxattr", |buf, len| {
        // SAFETY: `c` is a NUL-terminated path; `buf` has room for `len` bytes (or is null
        // with `len` 0, which asks for the size).
        unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }
    });
    let mut out: Vec<(String, Vec<u8>)> = names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let cname = CString::new(name).expect("xattr names have no NUL");
            let value = read_sized(path, "lgetxattr", |buf, len| {
                // SAFETY: as above; `cname` is NUL-terminated.
                unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf.cast(), len) }
            });
            (String::from_utf8_lossy(name).into_owned(), value)
        })
        .collect();
    out.sort();
    out
}

/// Sets extended attribute `name` of `path` itself to `value` (`lsetxattr`).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let (c, n) = (cpath(path), CString::new(name).expect("xattr name"));
    // SAFETY: NUL-terminated path and name; `value` is valid for its length.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Sets the mtime of `path` itself (a symlink's own) to `ns` nanoseconds since the epoch,
/// leaving its atime alone (`utimensat` with `AT_SYMLINK_NOFOLLOW`).
pub fn set_mtime(path: &Path, ns: i128) {
    let c = cpath(path);
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: (ns.div_euclid(1_000_000_000)) as libc::time_t,
            tv_nsec: (ns.rem_euclid(1_000_000_000)) as libc::c_long,
        },
    ];
    // SAFETY: NUL-terminated path; `times` holds the two timespecs utimensat reads.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// The `system.posix_acl_access` value granting user `uid` `perm` (rwx bits) beside the
/// owner's `rw-`, the group's `r--` and others' `---`, with a mask `rwx` (the kernel's
/// `posix_acl_xattr` format, version 2).
pub fn acl_granting(uid: u32, perm: u16) -> Vec<u8> {
    const USER_OBJ: u16 = 0x01;
    const USER: u16 = 0x02;
    const GROUP_OBJ: u16 = 0x04;
    const MASK: u16 = 0x10;
    const OTHER: u16 = 0x20;
    const UNDEFINED_ID: u32 = u32::MAX;
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (USER_OBJ, 6, UNDEFINED_ID),
        (USER, perm, uid),
        (GROUP_OBJ, 4, UNDEFINED_ID),
        (MASK, 7, UNDEFINED_ID),
        (OTHER, 0, UNDEFINED_ID),
    ] {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

/// Calls `f(buf, len)` first with no buffer for the size, then with one that large (again if
/// it grew meanwhile); the bytes. ENODATA means empty.
fn read_sized(path: &Path, what: &str, f: impl Fn(*mut u8, usize) -> libc::ssize_t) -> Vec<u8> {
    loop {
        let size = f(std::ptr::null_mut(), 0);
        if size < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENODATA) {
                return Vec::new();
            }
            panic!("manifest: {what} {}: {e}", path.display());
        }
        let mut buf = vec![0u8; size as usize];
        let got = f(buf.as_mut_ptr(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return buf;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            panic!("manifest: {what} {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
