//! Snapshots of a lease's scope, taken before the lease is installed, and the restore that
//! undoes what was done under it. Owns the snapshot store `<state>/snapshots/`; imports only
//! `crate::host` (the durable writer) and `crate::time`.
//!
//! On disk, one directory per lease, mode 0700 (contents are copies of protected files):
//!
//! ```text
//! <state>/snapshots/<lease>/
//!     blobs/<n>       one per snapshotted inode: a reflink (FICLONE) or a copy, mode 0600
//!     summary.json    the `Taken` figures (entries, files, bytes, method, took_ms, targets)
//!     manifest.json   every entry of every target (manifest.rs); written LAST: a snapshot
//!                     is complete only once it exists
//!     state.json      written by `seal` when the lease ends: each path's identity then,
//!                     and the retention deadline
//! ```
//!
//! - `walk.rs`: walking a target (`lstat`, no symlink followed, one filesystem);
//! - `manifest.rs`: the entries and their JSON;
//! - `blob.rs`: the content store (reflink, else copy);
//! - `meta.rs`: xattrs, and mode/owner/xattrs/times put back in a faithful order;
//! - `snapshot.rs`: estimate, take (budget, clean-up on error, durability), seal, prune;
//! - `conflict.rs`: unchanged entries, changes after the lease (conflicts), the state a
//!   restore leaves;
//! - `restore.rs`: the restore, by directory fd, never following a symlink it did not make;
//! - `sys.rs`: the `*at` system calls it makes.

mod blob;
mod conflict;
mod manifest;
mod meta;
mod restore;
mod snapshot;
mod sys;
mod walk;

#[cfg(test)]
mod tests;

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// The snapshot store of one state directory.
#[derive(Clone, Debug)]
pub struct Snapshots {
    root: PathBuf,
}

/// How a snapshot's contents were stored: every file reflinked, every file copied, some of
/// each, or no regular file at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Reflink,
    Copy,
    Mixed,
    Empty,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Reflink => "reflink",
            Method::Copy => "copy",
            Method::Mixed => "mixed",
            Method::Empty => "none",
        }
    }

    /// The method of a snapshot that cloned `cloned` files and copied `copied`.
    pub fn of(cloned: u64, copied: u64) -> Method {
        match (cloned, copied) {
            (0, 0) => Method::Empty,
            (_, 0) => Method::Reflink,
            (0, _) => Method::Copy,
            _ => Method::Mixed,
        }
    }
}

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        [Method::Reflink, Method::Copy, Method::Mixed, Method::Empty]
            .into_iter()
            .find(|m| m.as_str() == text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown method {text:?}")))
    }
}

/// What `take` would store: regular files (paths), entries (paths of every kind), and
/// logical bytes of content (each inode once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub files: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// A snapshot taken (`summary.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    pub method: Method,
    pub took_ms: u64,
    pub targets: Vec<PathBuf>,
}

/// A path the restore left alone: it was changed after the lease ended (`conflicts`) or
/// could not be put back (`failed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub path: PathBuf,
    pub why: String,
}

/// What a restore did, path by path.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Restored {
    /// Entries that existed and were put back in place (content, metadata).
    pub restored: Vec<PathBuf>,
    /// Entries that were missing or replaced, created anew.
    pub recreated: Vec<PathBuf>,
    /// Entries the snapshot did not have (created under the lease), removed.
    pub removed: Vec<PathBuf>,
    /// Entries found as they were snapshotted, left untouched.
    pub unchanged: u64,
    /// Changed after the lease ended: left as they are (unless `force`).
    pub conflicts: Vec<Conflict>,
    /// Could not be restored (the error); the rest was.
    pub failed: Vec<Conflict>,
    pub took_ms: u64,
}

/// Why a snapshot could not be taken, sealed, restored or removed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "snapshot: lease id {lease:?} cannot name a snapshot directory (empty, `/` in it, or \
         a leading `.`)"
    )]
    Lease { lease: String },
    #[error("snapshot: lease {lease} has a snapshot already ({path}); remove it first")]
    Exists { lease: String, path: PathBuf },
    #[error("snapshot: lease {lease} has no snapshot in {root}")]
    Missing { lease: String, root: PathBuf },
    #[error(
        "snapshot: the scope holds {needed} bytes of file content, over the budget of {max} \
         bytes (`[rollback] max_bytes` in the policy); raise it, or narrow the lease's scope"
    )]
    Budget { needed: u64, max: u64 },
    #[error("snapshot: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot: {path}: not a snapshot file ({why}); remove that snapshot's directory")]
    Corrupt { path: PathBuf, why: String },
    #[error(
        "snapshot: lease {lease} has not ended (its snapshot is not sealed); revoke it before \
         restoring"
    )]
    Unsealed { lease: String },
    #[error("snapshot: target {path} is not an absolute path")]
    Relative { path: PathBuf },
}

impl From<(PathBuf, std::io::Error)> for SnapshotError {
    fn from((path, source): (PathBuf, std::io::Error)) -> Self {
        SnapshotError::Io { path, source }
    }
}

const MANIFEST: &str = "manifest.json";
const SUMMARY: &str = "summary.json";
const STATE: &str = "state.json";
const BLOBS: &str = "blobs";

impl Snapshots {
    pub fn new(state_dir: &Path) -> Snapshots {
        Snapshots {
            root: state_dir.join("snapshots"),
        }
    }

    /// The directory of `lease`'s snapshot (the id checked to be one path component).
    pub fn dir(&self, lease: &str) -> Result<PathBuf, SnapshotError> {
        if lease.is_empty() || lease.contains('/') || lease.starts_with('.') || lease.contains('\0')
        {
            return Err(SnapshotError::Lease {
                lease: lease.to_owned(),
            });
        }
        Ok(self.root.join(lease))
    }

    pub fn estimate(targets: &[PathBuf]) -> Result<Estimate, SnapshotError> {
        snapshot::estimate(targets)
    }

    pub fn take(
        &self,
        lease: &str,
        targets: &[PathBuf],
        max_bytes: u64,
    ) -> Result<Taken, SnapshotError> {
        snapshot::take(&self.root, &self.dir(lease)?, lease, targets, max_bytes)
    }

    pub fn seal(&self, lease: &str, retain_until_ms: u64) -> Result<(), SnapshotError> {
        snapshot::seal(&self.dir(lease)?, lease, &self.root, retain_until_ms)
    }

    pub fn restore(&self, lease: &str, force: bool) -> Result<Restored, SnapshotError> {
        restore::restore(&self.dir(lease)?, lease, &self.root, force)
    }

    /// The snapshot of `lease`, if a complete one exists.
    pub fn info(&self, lease: &str) -> Result<Option<Taken>, SnapshotError> {
        let dir = self.dir(lease)?;
        if !dir.join(MANIFEST).exists() {
            return Ok(None);
        }
        snapshot::read_json(&dir.join(SUMMARY)).map(Some)
    }

    /// Logical bytes held by the snapshots of `leases` (those that have one).
    pub fn held_bytes(&self, leases: &[&str]) -> u64 {
        leases
            .iter()
            .filter_map(|l| self.info(l).ok().flatten())
            .map(|t| t.bytes)
            .sum()
    }

    pub fn prune(&self, now_ms: u64) -> Result<Vec<String>, SnapshotError> {
        snapshot::prune(&self.root, now_ms)
    }

    /// Removes `lease`'s snapshot (nothing to do if there is none).
    pub fn remove(&self, lease: &str) -> Result<(), SnapshotError> {
        let dir = self.dir(lease)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err((dir, e).into()),
        }
    }
}
