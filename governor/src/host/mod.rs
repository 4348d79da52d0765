//! The ground floor: governor's primitives on the host, which every other module may use and
//! which import nothing of governor's above them (only each other and `crate::time`).
//!
//! - [`cgroup`]: the cgroup v2 mount, agent cgroups, their ids, moving processes in;
//! - [`freeze`]: freezing, thawing and killing a cgroup, and waiting until the kernel says so;
//! - [`dirs`]: governor's own directories (state, configuration, runtime, pins, requests);
//! - [`oom`]: keeping the daemon out of the OOM killer's reach;
//! - [`files`]: reading a file by path, bounded, with errors that name it;
//! - [`inode`]: the kernel's key of an inode (its superblock's device, which btrfs's
//!   `st_dev` is not);
//! - [`write`]: writing one durably (temporary file, fsync, rename, fsync of the directory).

pub mod cgroup;
pub mod dirs;
pub mod files;
pub mod freeze;
pub mod inode;
pub mod oom;
pub mod write;

/// A fresh, empty directory for one test, `<tmp>/governor-<name>-<pid>` (what an earlier run
/// left there is removed first): the one scratch directory the unit tests share.
#[cfg(test)]
pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("governor-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
