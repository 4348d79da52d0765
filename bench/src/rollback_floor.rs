//! The rollback group's floor: the least a per-file snapshot and restore of the benchmark's
//! tree can cost on a filesystem, measured in the same boot, on the same tree and store, as
//! governor's figures beside it.
//!
//! The floor is the system calls a snapshot and a restore cannot do without, in one loop with
//! no bookkeeping, no manifest and no daemon:
//! - snapshot: list every directory, `lstat` and `llistxattr` every entry (the walk), open
//!   every file, create its blob in the store and `FICLONE` the file into it (a copy where
//!   the filesystem cannot clone), and one `syncfs`;
//! - restore (of a tree that was emptied, as the agent's `rm -rf` leaves it): create every
//!   directory and file again, `FICLONE` (or copy) the blob back, `fchown`, `fchmod`,
//!   `futimens` each, and one `syncfs`.
//!
//! What governor spends above it is its own (the manifest, conflict checks, lineage, the
//! socket round trip); what the floor itself costs is the filesystem's, and no per-file
//! design can go under it.

use std::{
    ffi::CString,
    fs::{self, File},
    io,
    os::{
        fd::AsRawFd,
        unix::{
            ffi::OsStrExt,
            fs::{DirBuilderExt, MetadataExt, OpenOptionsExt},
        },
    },
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context, Result};

/// One file of the tree, as the floor's snapshot saw it.
struct Seen {
    path: PathBuf,
    uid: u32,
    gid: u32,
    mode: u32,
    times: [libc::timespec; 2],
}

/// The floor's figures of one round, in milliseconds of the guest clock.
pub struct Round {
    pub snapshot_ms: f64,
    pub restore_ms: f64,
}

/// One floor round on `tree` (which holds the benchmark's files), with its blobs in `store`
/// (created here, removed at the end): snapshot, empty the tree (untimed), restore. The tree
/// holds its files again afterwards.
pub fn round(tree: &Path, store: &Path) -> Result<Round> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(store)
        .with_context(|| format!("creating {}", store.display()))?;
    let start = Instant::now();
    let (dirs, files) = snapshot(tree, store)?;
    let snapshot_ms = start.elapsed().as_secs_f64() * 1000.0;
    for d in &dirs {
        fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
    }
    let start = Instant::now();
    restore(&dirs, &files, store)?;
    let restore_ms = start.elapsed().as_secs_f64() * 1000.0;
    fs::remove_dir_all(store).with_context(|| format!("removing {}", store.display()))?;
    Ok(Round {
        snapshot_ms,
        restore_ms,
    })
}

/// Walks `tree` (one level of directories of files, as the benchmark makes it) and stores a
/// blob per file in `store`: the directories and the files, in the order stored.
fn snapshot(tree: &Path, store: &Path) -> Result<(Vec<PathBuf>, Vec<Seen>)> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut xattrs = vec![0u8; 1024];
    let mut names: Vec<_> = fs::read_dir(tree)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let dir = tree.join(name);
        list_xattrs(&dir, &mut xattrs)?;
        fs::symlink_metadata(&dir)?;
        let mut names: Vec<_> = fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            let path = dir.join(name);
            let md = fs::symlink_metadata(&path)?;
            list_xattrs(&path, &mut xattrs)?;
            files.push(Seen {
                path,
                uid: md.uid(),
                gid: md.gid(),
                mode: md.mode() & 0o7777,
                times: [
                    timespec(md.atime(), md.atime_nsec()),
                    timespec(md.mtime(), md.mtime_nsec()),
                ],
            });
        }
        dirs.push(dir);
    }
    for (n, f) in files.iter().enumerate() {
        let mut src = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&f.path)
            .with_context(|| format!("opening {}", f.path.display()))?;
        let mut blob = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(store.join(n.to_string()))?;
        clone_or_copy(&mut src, &mut blob)?;
    }
    syncfs(store)?;
    Ok((dirs, files))
}

/// Recreates the emptied tree from the blobs.
fn restore(dirs: &[PathBuf], files: &[Seen], store: &Path) -> Result<()> {
    for d in dirs {
        fs::DirBuilder::new()
            .mode(0o755)
            .create(d)
            .with_context(|| format!("creating {}", d.display()))?;
    }
    for (n, f) in files.iter().enumerate() {
        let mut blob = File::open(store.join(n.to_string()))?;
        let mut dst = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&f.path)
            .with_context(|| format!("creating {}", f.path.display()))?;
        clone_or_copy(&mut blob, &mut dst)?;
        let fd = dst.as_raw_fd();
        // SAFETY: plain system calls on a descriptor we own; `times` has two entries.
        let calls = unsafe {
            [
                libc::fchown(fd, f.uid, f.gid),
                libc::fchmod(fd, f.mode),
                libc::futimens(fd, f.times.as_ptr()),
            ]
        };
        if calls.iter().any(|rc| *rc != 0) {
            bail!(
                "restoring the metadata of {}: {}",
                f.path.display(),
                io::Error::last_os_error()
            );
        }
    }
    if let Some(d) = dirs.first() {
        syncfs(d)?;
    }
    Ok(())
}

fn timespec(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// `FICLONE` of `src` onto `dst`, or a copy where the filesystem cannot clone.
fn clone_or_copy(src: &mut File, dst: &mut File) -> Result<()> {
    // SAFETY: FICLONE takes the source descriptor as its argument; both are open.
    if unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EXDEV | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOTTY) => {
            io::copy(src, dst)?;
            Ok(())
        }
        _ => Err(e).context("FICLONE"),
    }
}

fn list_xattrs(path: &Path, buf: &mut [u8]) -> Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOTSUP) {
            return Err(e).with_context(|| format!("listing the xattrs of {}", path.display()));
        }
    }
    Ok(())
}

fn syncfs(on: &Path) -> Result<()> {
    let f = File::open(on)?;
    // SAFETY: syncfs on a descriptor we own.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("syncfs {}", on.display()));
    }
    Ok(())
}
