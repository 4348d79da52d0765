//! The content store: one blob per snapshotted inode, `blobs/<n>` in the snapshot's
//! directory. A blob is a reflink (`ioctl(FICLONE)`: the filesystem shares the extents, so
//! a large file costs metadata only, on btrfs and XFS) where the filesystem allows it, and a
//! copy (`std::io::copy`, which uses `copy_file_range`) only when `FICLONE` says it cannot
//! (`EXDEV`: another filesystem; `EOPNOTSUPP`/`ENOTTY`: no reflink there; `EINVAL`: e.g. a
//! filesystem without the ioctl). Any other error is the caller's: a reflink that fails
//! with `ENOSPC` must not turn into a copy that fails the same way later.
//!
//! The same two calls put content back at restore ([`fill`]), the blob opened by its
//! directory's fd (no path walk per file).

use std::{
    fs::File,
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd},
        unix::fs::OpenOptionsExt,
    },
    path::Path,
};

/// How one file's content was stored or restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Cloned,
    Copied,
}

/// `FICLONE` of all of `src` onto `dst`: `Ok(true)` done, `Ok(false)` the filesystem cannot.
fn reflink(src: BorrowedFd, dst: BorrowedFd) -> io::Result<bool> {
    // SAFETY: FICLONE takes the source fd as its argument; both fds are valid.
    let ret = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if ret == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EXDEV | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOTTY) => Ok(false),
        _ => Err(e),
    }
}

/// Makes `dst` (empty, open for writing) hold `src`'s content.
fn clone_or_copy(src: &mut File, dst: &mut File) -> io::Result<How> {
    use std::os::fd::AsFd;
    if reflink(src.as_fd(), dst.as_fd())? {
        return Ok(How::Cloned);
    }
    io::copy(src, dst)?;
    Ok(How::Copied)
}

/// Stores the regular file `src` (opened without following a symlink) as the new blob
/// `dst`, mode 0600. The caller syncs the blobs (one `syncfs` for the whole snapshot). An
/// error comes with the path it is about: `src` if it could not be opened, else `dst`
/// (`ENOSPC` and the like are the store's).
pub fn store<'p>(src: &'p Path, dst: &'p Path) -> Result<How, (&'p Path, io::Error)> {
    let mut from = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(src)
        .map_err(|e| (src, e))?;
    let mut to = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| (dst, e))?;
    clone_or_copy(&mut from, &mut to).map_err(|e| (dst, e))
}

/// Makes the regular file open as `dst` hold blob `n` of the directory `blobs`. `fresh`:
/// `dst` was just created (empty), else its old content is cut first.
pub fn fill(dst: BorrowedFd, blobs: BorrowedFd, n: u64, fresh: bool) -> io::Result<How> {
    let name = super::sys::cstr(n.to_string().as_ref())?;
    let mut from = File::from(super::sys::open_read_at(blobs, &name)?);
    // Borrowed as a File for the copy, never closed here: the caller owns `dst`.
    // SAFETY: `dst` stays open for the whole call; ManuallyDrop never closes it.
    let mut to = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(dst.as_raw_fd()) });
    if !fresh {
        to.set_len(0)?;
    }
    clone_or_copy(&mut from, &mut to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_fill_copy_the_bytes_and_say_how() {
        let d = crate::host::scratch("rollback-blob");
        std::fs::write(d.join("src"), b"hello world").unwrap();
        let how = store(&d.join("src"), &d.join("blob")).unwrap();
        assert_eq!(std::fs::read(d.join("blob")).unwrap(), b"hello world");
        // What FICLONE says on this filesystem decides the method, nothing else.
        let probe = File::create(d.join("probe")).unwrap();
        let src = File::open(d.join("src")).unwrap();
        use std::os::fd::AsFd;
        let can = reflink(src.as_fd(), probe.as_fd()).unwrap();
        assert_eq!(how == How::Cloned, can);
        std::fs::create_dir(d.join("blobs")).unwrap();
        std::fs::rename(d.join("blob"), d.join("blobs/7")).unwrap();
        let blobs = File::open(d.join("blobs")).unwrap();
        std::fs::write(d.join("dst"), b"a much longer previous content").unwrap();
        let dst = File::options().write(true).open(d.join("dst")).unwrap();
        assert_eq!(fill(dst.as_fd(), blobs.as_fd(), 7, false).unwrap(), how);
        assert_eq!(std::fs::read(d.join("dst")).unwrap(), b"hello world");
        let new = File::create_new(d.join("new")).unwrap();
        assert_eq!(fill(new.as_fd(), blobs.as_fd(), 7, true).unwrap(), how);
        assert_eq!(std::fs::read(d.join("new")).unwrap(), b"hello world");
        assert!(
            fill(new.as_fd(), blobs.as_fd(), 8, false).is_err(),
            "no blob 8"
        );
        assert!(
            store(&d.join("src"), &d.join("blobs/7")).is_err(),
            "blobs are new"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
