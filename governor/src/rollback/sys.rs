//! The system calls the snapshot store makes on directory file descriptors, as thin safe
//! wrappers over `libc` (owned fds, `io::Error` from `errno`). The restore walks a tree the
//! agent may have rigged, so everything here works relative to a directory fd and never
//! follows a symlink in the last component (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`); an entry
//! is reached for its xattrs and mode through an `O_PATH` fd and `/proc/self/fd/N`, which
//! names that very inode (a magic link, no further lookup).
//!
//! Why `libc` and not `nix`: nix 0.29 is halfway between raw and borrowed fds, and the
//! xattr calls are not in it at all; a dozen direct wrappers are shorter than the glue.

use std::{
    ffi::{CStr, CString, OsStr, OsString},
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::{OsStrExt, OsStringExt},
    },
    path::Path,
};

/// `-1` from a libc call → the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A path or name as a C string (a NUL inside is `InvalidInput`).
pub fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn open_raw(dir: RawFd, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string; the returned fd is owned by us alone.
    let fd = check(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just opened and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the existing file `dir/name` for reading, never through a symlink.
pub fn open_read_at(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    open_raw(dir.as_raw_fd(), name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)
}

/// Opens the directory `dir/name`, refusing a symlink (`ELOOP`) or anything else (`ENOTDIR`).
pub fn open_dir_at(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    open_raw(
        dir.as_raw_fd(),
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

/// Opens the directory `path` from `/`, one component at a time, none of them a symlink.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let mut fd = open_raw(libc::AT_FDCWD, c"/", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    for part in path.components() {
        if let std::path::Component::Normal(name) = part {
            fd = open_dir_at(fd_ref(&fd), &cstr(name)?)?;
        }
    }
    Ok(fd)
}

/// An `O_PATH` fd of `dir/name` itself, a symlink included.
pub fn open_path_at(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    open_raw(dir.as_raw_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0)
}

/// Opens the existing regular file `dir/name` for writing (never a symlink; `O_NONBLOCK` so
/// that a FIFO planted there cannot block the restore).
pub fn open_write_at(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    open_raw(
        dir.as_raw_fd(),
        name,
        libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    )
}

/// Creates the regular file `dir/name` (it must not exist), mode 0600 until its metadata
/// is restored.
pub fn create_at(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    open_raw(
        dir.as_raw_fd(),
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        0o600,
    )
}

pub fn fd_ref(fd: &OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

/// `lstat` of `dir/name`; `None` when there is nothing there.
pub fn stat_at(dir: BorrowedFd, name: &CStr) -> io::Result<Option<libc::stat>> {
    // SAFETY: `st` is written by the kernel on success only; zeroed is a valid `stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let ret = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match check(ret) {
        Ok(_) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: as in `stat_at`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// Removes `dir/name`, a directory (`rmdir`) or anything else (`unlink`).
pub fn unlink_at(dir: BorrowedFd, name: &CStr, is_dir: bool) -> io::Result<()> {
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub fn mkdir_at(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o700) }).map(drop)
}

pub fn symlink_at(target: &OsStr, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    let target = cstr(target)?;
    // SAFETY: valid fd and C strings.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// A FIFO, socket or device node `dir/name` (`mode` includes the file type).
pub fn mknod_at(dir: BorrowedFd, name: &CStr, mode: u32, rdev: u64) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    check(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            rdev as libc::dev_t,
        )
    })
    .map(drop)
}

/// `/proc/self/fd/N`: the inode `fd` refers to, for calls that take a path.
pub fn proc_path(fd: BorrowedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL")
}

/// A new hard link `dir/name` to the inode `fd` refers to (any fd, `O_PATH` included).
pub fn link_fd_at(fd: BorrowedFd, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    let from = proc_path(fd);
    // SAFETY: valid fds and C strings.
    check(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

/// `lchown` of `dir/name`.
pub fn chown_at(dir: BorrowedFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `fchown` of the file open as `fd` (not an `O_PATH` fd).
pub fn fchown(fd: BorrowedFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

/// `fchmod` of the file open as `fd` (not an `O_PATH` fd).
pub fn fchmod(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// `chmod` of the inode `fd` (an `O_PATH` fd) refers to; not for symlinks.
pub fn chmod_fd(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    let path = proc_path(fd);
    // SAFETY: valid C string.
    check(unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// Sets the access and modification times of `dir/name` itself (a symlink's own times).
pub fn utimens_at(
    dir: BorrowedFd,
    name: &CStr,
    atime: [i64; 2],
    mtime: [i64; 2],
) -> io::Result<()> {
    let ts = timespecs(atime, mtime);
    // SAFETY: valid fd, C string and two timespecs.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `[atime, mtime]` (each `[seconds, nanoseconds]`) as `utimensat(2)` takes them.
fn timespecs(atime: [i64; 2], mtime: [i64; 2]) -> [libc::timespec; 2] {
    [atime, mtime].map(|[sec, nsec]| libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    })
}

/// Sets the access and modification times of the file `fd` is open on (not `O_PATH`).
pub fn futimens(fd: BorrowedFd, atime: [i64; 2], mtime: [i64; 2]) -> io::Result<()> {
    let ts = timespecs(atime, mtime);
    // SAFETY: valid fd and two timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) }).map(drop)
}

/// The names in the directory `dir` (`.` and `..` left out).
pub fn read_dir_fd(dir: BorrowedFd) -> io::Result<Vec<OsString>> {
    // fdopendir takes the fd over: give it a duplicate, reading from offset 0.
    let dup = dir.try_clone_to_owned()?;
    // SAFETY: `dup` is ours; lseek on a directory fd rewinds it.
    unsafe { libc::lseek(dup.as_raw_fd(), 0, libc::SEEK_SET) };
    use std::os::fd::IntoRawFd;
    let raw = dup.into_raw_fd();
    // SAFETY: `raw` is a valid directory fd which the DIR stream now owns.
    let dirp = unsafe { libc::fdopendir(raw) };
    if dirp.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so the fd is still ours to close.
        unsafe { libc::close(raw) };
        return Err(e);
    }
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is reset before readdir so that end and error can be told apart.
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir64(dirp) };
        if ent.is_null() {
            let errno = io::Error::last_os_error();
            break match errno.raw_os_error() {
                Some(0) | None => Ok(()),
                _ => Err(errno),
            };
        }
        // SAFETY: `d_name` is a NUL-terminated array inside the entry readdir returned.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    };
    // SAFETY: `dirp` came from fdopendir and is closed once.
    unsafe { libc::closedir(dirp) };
    result.map(|()| names)
}

/// Flushes the whole filesystem `fd` lies on (one call instead of an fsync per file).
pub fn syncfs(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::syncfs(fd.as_raw_fd()) }).map(drop)
}
