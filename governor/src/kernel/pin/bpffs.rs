//! The bpf filesystem under the pin directory: checks that a directory is on one (and not its
//! mount root), lists and removes entries, tells what a pin holds, collects the ids of pinned
//! links and their programs, and waits until detached ones have left the kernel.

use std::{
    collections::BTreeSet,
    ffi::CString,
    fs::File,
    io,
    os::unix::{ffi::OsStrExt, fs::MetadataExt, io::AsRawFd},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::programs::links::{FdLink, PinnedLink};

use super::{io_err, PinError, BPFFS_MOUNT, BPF_FS_MAGIC, MOUNT_GUARD_WAIT, RETIRE_TIMEOUT};
use crate::kernel::pin_lock;

pub(crate) fn fs_type(path: &Path) -> io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: statfs(2) on a NUL-terminated path into a zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

/// The deepest existing ancestor of `path` (itself included).
pub(super) fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

pub(super) fn ensure_bpffs(dir: &Path) -> Result<(), PinError> {
    let base = existing_ancestor(dir);
    if fs_type(base).map_err(io_err(base))? == BPF_FS_MAGIC {
        return Ok(());
    }
    let mount = Path::new(BPFFS_MOUNT);
    if !dir.starts_with(mount) || !mount.is_dir() {
        return Err(PinError::NotBpffs(dir.to_path_buf()));
    }
    // Two daemons starting at once must not stack two bpf filesystems (the lower one's pins
    // would vanish from view): lock the directory under the mount point, then look again. A
    // process that opens it after the mount gets the new filesystem's root and sees bpffs.
    // Anyone can flock that directory, so the lock is waited for a bounded time only: past
    // it, the admin socket (bound before this) already keeps a second daemon out.
    let _guard = File::open(mount).map_err(io_err(mount))?;
    let deadline = Instant::now() + MOUNT_GUARD_WAIT;
    // SAFETY: flock(2) on an fd this function owns; released when `_guard` is closed.
    while unsafe { libc::flock(_guard.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io_err(mount)(err));
        }
        if Instant::now() > deadline {
            tracing::warn!(mount = BPFFS_MOUNT, holder = %pin_lock::holder_of(mount),
                "{BPFFS_MOUNT} is locked by {}; mounting without waiting longer",
                pin_lock::holder_of(mount));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if fs_type(mount).map_err(io_err(mount))? == BPF_FS_MAGIC {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        mount,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        Some("mode=0700"),
    )
    .map_err(|e| PinError::Mount(e.into()))?;
    tracing::info!(mount = BPFFS_MOUNT, "mounted a bpf filesystem for the pins");
    if fs_type(existing_ancestor(dir)).map_err(io_err(dir))? != BPF_FS_MAGIC {
        return Err(PinError::NotBpffs(dir.to_path_buf()));
    }
    Ok(())
}

/// Refuses a directory that is itself a mount (its parent is on another filesystem).
pub(super) fn reject_mount_root(dir: &Path) -> Result<(), PinError> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let own = std::fs::metadata(dir).map_err(io_err(dir))?.dev();
    let up = std::fs::metadata(parent).map_err(io_err(parent))?.dev();
    if own != up || fs_type(parent).map_err(io_err(parent))? != BPF_FS_MAGIC {
        return Err(PinError::MountRoot(dir.to_path_buf()));
    }
    Ok(())
}

pub(super) fn entries(dir: &Path) -> Result<Vec<String>, PinError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

/// Ids of every BPF link pinned at or below `path`, and of the programs behind them and
/// pinned there (map pins are skipped).
pub(super) fn link_ids(path: &Path, ids: &mut Ids) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                link_ids(&e.path(), ids);
            }
        }
    } else if meta.file_type().is_file() {
        match pin_kind(path).as_deref().and_then(std::ffi::OsStr::to_str) {
            Some("anon_inode:bpf-link") => {
                if let Ok(link) = PinnedLink::from_pin(path) {
                    if let Ok(info) = FdLink::from(link).info() {
                        ids.links.insert(info.id());
                        ids.programs.insert(info.program_id());
                    }
                }
            }
            Some("anon_inode:bpf-prog") => {
                if let Ok(info) = aya::programs::ProgramInfo::from_pin(path) {
                    ids.programs.insert(info.id());
                }
            }
            _ => {}
        }
    }
}

/// Ids of every BPF link pinned at or below `path`.
pub(crate) fn pinned_links(path: &Path) -> BTreeSet<u32> {
    let mut ids = Ids::default();
    link_ids(path, &mut ids);
    ids.links
}

/// Calls `f(pin, link id)` for every BPF link pinned at or below `path`, at most `depth`
/// directories down.
pub(crate) fn walk_link_pins(path: &Path, depth: usize, f: &mut dyn FnMut(&Path, u32)) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if depth == 0 {
            return;
        }
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                walk_link_pins(&e.path(), depth - 1, f);
            }
        }
    } else if meta.file_type().is_file()
        && pin_kind(path).is_some_and(|k| k == "anon_inode:bpf-link")
    {
        if let Ok(link) = PinnedLink::from_pin(path) {
            if let Ok(info) = FdLink::from(link).info() {
                f(path, info.id());
            }
        }
    }
}

/// Links and programs that must leave the kernel.
#[derive(Debug, Default)]
pub(super) struct Ids {
    pub(super) links: BTreeSet<u32>,
    pub(super) programs: BTreeSet<u32>,
}

/// What is pinned at `path`: the name of the file behind its fd (`anon_inode:bpf-link`,
/// `anon_inode:bpf-prog`, `anon_inode:bpf-map`).
pub(super) fn pin_kind(path: &Path) -> Option<std::ffi::OsString> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    /// `union bpf_attr` as BPF_OBJ_GET reads it.
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let attr = ObjGet {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    const BPF_OBJ_GET: libc::c_long = 7;
    // SAFETY: bpf(BPF_OBJ_GET) reads `attr` (and the path it points to, alive in `c`).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &attr as *const ObjGet,
            std::mem::size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us; `OwnedFd` closes it.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(PathBuf::into_os_string)
}

pub(super) fn remove(path: &Path) -> Result<(), PinError> {
    let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path).map_err(io_err(path))
    } else {
        std::fs::remove_file(path).map_err(io_err(path))
    }
}

/// Waits until none of `ids` is in the kernel: no link, and no program (the kernel releases a
/// link's id before it detaches its program; a program that is gone is attached nowhere).
pub(super) fn wait_detached(dir: &Path, ids: &Ids) -> Result<(), PinError> {
    if ids.links.is_empty() && ids.programs.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + RETIRE_TIMEOUT;
    loop {
        let alive: Vec<u32> = aya::programs::loaded_links()
            .filter_map(Result::ok)
            .map(|l| l.id())
            .filter(|id| ids.links.contains(id))
            .chain(
                aya::programs::loaded_programs()
                    .filter_map(Result::ok)
                    .map(|p| p.id())
                    .filter(|id| ids.programs.contains(id)),
            )
            .collect();
        if alive.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PinError::StillAttached {
                path: dir.to_path_buf(),
                ids: alive,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
