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
    os::fd::{AsRawFd, BorrowedFd},
    path::Path,
};

use super::{
    manifest::{Bytes, Entry, Kind},
    sys,
};

fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}

/// What the xattr calls act on: a path (`follow`: resolve a trailing symlink, for
/// `/proc/self/fd/N`; else the symlink's own, `l*xattr`), or an open file (`f*xattr`).
#[derive(Clone, Copy)]
enum On<'a> {
    Path(&'a CStr, bool),
    Fd(BorrowedFd<'a>),
}

impl On<'_> {
    /// `*listxattr` into `buf`: the byte count, or -1 with errno set.
    fn list(self, buf: &mut [u8]) -> isize {
        let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: the kernel writes at most `len` bytes into `buf`; valid C strings and fds.
        unsafe {
            match self {
                On::Path(p, true) => libc::listxattr(p.as_ptr(), ptr, len),
                On::Path(p, false) => libc::llistxattr(p.as_ptr(), ptr, len),
                On::Fd(fd) => libc::flistxattr(fd.as_raw_fd(), ptr, len),
            }
        }
    }

    /// `*getxattr` of `name` into `buf`: the byte count, or -1 with errno set.
    fn get(self, name: &CStr, buf: &mut [u8]) -> isize {
        let (n, ptr, len) = (name.as_ptr(), buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: as in `list`.
        unsafe {
            match self {
                On::Path(p, true) => libc::getxattr(p.as_ptr(), n, ptr, len),
                On::Path(p, false) => libc::lgetxattr(p.as_ptr(), n, ptr, len),
                On::Fd(fd) => libc::fgetxattr(fd.as_raw_fd(), n, ptr, len),
            }
        }
    }

    /// `*setxattr` of `name` to `v` (never on a symlink's own: paths are followed).
    fn set(self, name: &CStr, v: &[u8]) -> io::Result<()> {
        let (n, ptr, len) = (name.as_ptr(), v.as_ptr().cast(), v.len());
        // SAFETY: valid C strings, fds and a value of `len` bytes.
        let ret = unsafe {
            match self {
                On::Path(p, _) => libc::setxattr(p.as_ptr(), n, ptr, len, 0),
                On::Fd(fd) => libc::fsetxattr(fd.as_raw_fd(), n, ptr, len, 0),
            }
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `*removexattr` of `name`; one already gone is no error.
    fn remove(self, name: &CStr) -> io::Result<()> {
        // SAFETY: valid C strings and fds.
        let ret = unsafe {
            match self {
                On::Path(p, _) => libc::removexattr(p.as_ptr(), name.as_ptr()),
                On::Fd(fd) => libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()),
            }
        };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENODATA) {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The xattr names of `on`.
fn names(on: On) -> io::Result<Vec<CString>> {
    let mut buf = vec![0u8; 1024];
    loop {
        let n = on.list(&mut buf);
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

/// The value of the xattr `name` of `on`.
fn value(on: On, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = on.get(name, &mut buf);
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

fn all(on: On) -> io::Result<Vec<(Bytes, Bytes)>> {
    let mut out = Vec::new();
    for name in names(on)? {
        match value(on, &name) {
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
    all(On::Path(&sys::cstr(path.as_os_str())?, false))
}

/// Makes the xattrs of `on` exactly `want`; whether any changed.
fn apply_xattrs(on: On, want: &[(Bytes, Bytes)]) -> io::Result<bool> {
    let have = all(on)?;
    if have.as_slice() == want {
        return Ok(false);
    }
    let cname = |n: &Bytes| {
        CString::new(n.0.clone()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    for (name, _) in &have {
        if !want.iter().any(|(n, _)| n == name) {
            on.remove(&cname(name)?)?;
        }
    }
    for (name, v) in want {
        if !have.iter().any(|(n, hv)| n == name && hv == v) {
            on.set(&cname(name)?, &v.0)?;
        }
    }
    Ok(true)
}

/// Puts owner, xattrs, mode and times of the regular file `e` on the file open as `fd` (for
/// writing: the restore made or filled it), through the fd alone.
pub fn apply_open(fd: BorrowedFd, e: &Entry) -> io::Result<()> {
    let st = sys::fstat(fd)?;
    let chown = st.st_uid != e.uid || st.st_gid != e.gid;
    if chown {
        sys::fchown(fd, e.uid, e.gid)?;
    }
    // A chown may clear set-id bits, and an ACL xattr rewrites the group bits: the mode is
    // set again after either.
    let xattrs = apply_xattrs(On::Fd(fd), &e.xattrs)?;
    if chown || xattrs || st.st_mode & 0o7777 != e.mode {
        sys::fchmod(fd, e.mode)?;
    }
    sys::futimens(fd, e.atime, e.mtime)
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
    apply_xattrs(On::Path(&proc, true), &e.xattrs)?;
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
