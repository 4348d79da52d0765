//! An entry's metadata: reading its extended attributes when the snapshot is taken, and
//! putting mode, owner, xattrs (ACLs among them: `system.posix_acl_*`) and times back at
//! restore, in the one order that is faithful:
//!
//! 1. owner (`fchownat`, no follow) first, since a chown clears set-id bits and
//!    `security.capability`;
//! 2. xattrs (set what differs, remove what the snapshot had not);
//! 3. mode (after the ACL xattrs, whose mask it must end up agreeing with); never on a symlink;
//! 4. times last (`utimensat`, no follow, nanoseconds), since every step above changes ctime
//!    only, but writing content or children changes mtime.
//!
//! The entry is reached through an `O_PATH` fd of `dir/name` (no follow) and
//! `/proc/self/fd/N`, so a symlink's own xattrs are read and written, never its target's.

use std::{
    ffi::{CStr, CString},
    io,
    os::fd::BorrowedFd,
    path::Path,
};

use super::{
    manifest::{Bytes, Entry, Kind},
    sys,
};

fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}

/// The xattr names of `path` (`follow`: resolve a trailing symlink, for `/proc/self/fd/N`).
fn names(path: &CStr, follow: bool) -> io::Result<Vec<CString>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe {
            if follow {
                libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            } else {
                libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            }
        };
        if n >= 0 {
            buf.truncate(n as usize);
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return if is_unsupported(&e) {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        buf.resize(buf.len() * 4, 0);
    }
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| CString::new(n).expect("split at NUL"))
        .collect())
}

/// The value of the xattr `name` of `path`.
fn value(path: &CStr, name: &CStr, follow: bool) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe {
            if follow {
                libc::getxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            } else {
                libc::lgetxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            }
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
        buf.resize(buf.len() * 4, 0);
    }
}

fn all(path: &CStr, follow: bool) -> io::Result<Vec<(Bytes, Bytes)>> {
    let mut out = Vec::new();
    for name in names(path, follow)? {
        match value(path, &name, follow) {
            Ok(v) => out.push((Bytes(name.as_bytes().to_vec()), Bytes(v))),
            // Gone between the list and the read.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Every xattr of `path` itself (a symlink's own), sorted by name.
pub fn read(path: &Path) -> io::Result<Vec<(Bytes, Bytes)>> {
    all(&sys::cstr(path.as_os_str())?, false)
}

/// Sets `name` on the inode behind `/proc/self/fd/N`.
fn set(path: &CStr, name: &[u8], v: &[u8]) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid C strings and a value of `v.len()` bytes.
    let ret =
        unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn remove(path: &CStr, name: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings.
    if unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENODATA) {
            return Err(e);
        }
    }
    Ok(())
}

/// Makes the xattrs of the inode behind `proc` exactly `want`.
fn apply_xattrs(proc: &CStr, want: &[(Bytes, Bytes)]) -> io::Result<()> {
    let have = all(proc, true)?;
    if have.as_slice() == want {
        return Ok(());
    }
    for (name, _) in &have {
        if !want.iter().any(|(n, _)| n == name) {
            remove(
                proc,
                &CString::new(name.0.clone()).expect("xattr names have no NUL"),
            )?;
        }
    }
    for (name, v) in want {
        if !have.iter().any(|(n, hv)| n == name && hv == v) {
            set(proc, &name.0, &v.0)?;
        }
    }
    Ok(())
}

/// Puts owner, xattrs, mode and times of `e` on `dir/name` (which the caller created or
/// checked to be of `e`'s kind). Checks through its own `O_PATH` fd that the entry there
/// is still of that kind, so that nothing else's metadata is changed.
pub fn apply(dir: BorrowedFd, name: &CStr, e: &Entry) -> io::Result<()> {
    let fd = sys::open_path_at(dir, name)?;
    let st = sys::fstat(sys::fd_ref(&fd))?;
    if Kind::of(st.st_mode) != e.kind {
        return Err(io::Error::other(
            "the entry changed kind during the restore",
        ));
    }
    if st.st_uid != e.uid || st.st_gid != e.gid {
        sys::chown_at(dir, name, e.uid, e.gid)?;
    }
    let proc = sys::proc_path(sys::fd_ref(&fd));
    apply_xattrs(&proc, &e.xattrs)?;
    if e.kind != Kind::Symlink {
        sys::chmod_fd(sys::fd_ref(&fd), e.mode)?;
    }
    sys::utimens_at(dir, name, e.atime, e.mtime)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn a_symlinks_own_xattrs_are_read_and_set_not_its_targets() {
        let d = crate::host::scratch("rollback-meta");
        std::fs::write(d.join("t"), b"x").unwrap();
        symlink(d.join("t"), d.join("l")).unwrap();
        let dir = sys::open_dir_path(&d).unwrap();
        let e = Entry {
            rel: Bytes::default(),
            kind: Kind::Symlink,
            mode: 0o777,
            uid: 0,
            gid: 0,
            atime: [1, 2],
            mtime: [3, 4],
            ctime: [0, 0],
            size: 0,
            dev: 0,
            ino: 0,
            nlink: 1,
            rdev: 0,
            xattrs: vec![(Bytes(b"trusted.k".to_vec()), Bytes(b"v".to_vec()))],
            link: None,
            blob: None,
            mount: false,
        };
        // trusted.* needs root; as another user there is nothing to prove here.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        apply(sys::fd_ref(&dir), c"l", &e).unwrap();
        assert_eq!(read(&d.join("l")).unwrap(), e.xattrs);
        assert!(read(&d.join("t")).unwrap().is_empty());
        let md = std::fs::symlink_metadata(d.join("l")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((md.mtime(), md.mtime_nsec()), (3, 4));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
