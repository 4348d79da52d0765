//! Taking a snapshot (estimate, budget, blobs, manifest), sealing it when the lease ends,
//! and pruning expired ones.
//!
//! `take` walks every target first (metadata and xattrs, no content), refuses a scope over
//! the budget before writing anything, then stores one blob per inode and writes the
//! summary and, last, the manifest. Any error after the directory exists removes it: a
//! lease is never left with half a snapshot.
//!
//! Durability: the blobs are not fsynced one by one. One `syncfs` on the snapshot's
//! filesystem after the last blob flushes them all (data and the directory entries naming
//! them) in one transaction; an fsync per file would cost a journal commit (a btrfs log
//! sync) each, 10,000 of them for a 10,000-file scope, far over the 200 ms a snapshot may
//! add to `lease submit`. The price is that `syncfs` also flushes whatever else is dirty
//! on that filesystem. Then `summary.json` and `manifest.json` go through the project's
//! durable writer (`host::write::replace`: fsync of the file and of the directory), so a
//! manifest on disk implies its blobs are too.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::{DirBuilderExt, MetadataExt},
    path::{Path, PathBuf},
    time::Instant,
};

use serde::{de::DeserializeOwned, Serialize};

use super::{
    blob::{self, How},
    manifest::{Bytes, Entry, Kind, Manifest, Sealed, State, Target, VERSION},
    meta, sys,
    walk::{walk, Found},
    Estimate, Method, SnapshotError, Taken, BLOBS, MANIFEST, STATE, SUMMARY,
};
use crate::host::write;

/// Reads a JSON file of a snapshot.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, SnapshotError> {
    let text = fs::read(path).map_err(|e| (path.to_owned(), e))?;
    serde_json::from_slice(&text).map_err(|e| SnapshotError::Corrupt {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// Writes a JSON file of a snapshot durably, mode 0600.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SnapshotError> {
    let bytes = serde_json::to_vec(value).expect("snapshot files serialize");
    write::replace(path, &bytes, 0o600).map_err(|e| (path.to_owned(), e).into())
}

/// `target` with its parent's symlinks resolved (the target itself is never followed), and
/// the targets that lie inside another target dropped (the outer one covers them).
fn canonical(targets: &[PathBuf]) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for t in targets {
        if !t.is_absolute() {
            return Err(SnapshotError::Relative { path: t.clone() });
        }
        let path = match (t.parent(), t.file_name()) {
            (Some(parent), Some(name)) => match fs::canonicalize(parent) {
                Ok(p) => p.join(name),
                Err(_) => t.clone(),
            },
            _ => t.clone(),
        };
        out.push(path);
    }
    out.sort();
    out.dedup();
    let all = out.clone();
    out.retain(|t| !all.iter().any(|o| o != t && t.starts_with(o)));
    Ok(out)
}

fn time(sec: i64, nsec: i64) -> [i64; 2] {
    [sec, nsec]
}

/// The entry for what the walk found (no content yet).
fn entry(f: &Found, with_xattrs: bool) -> Result<Entry, SnapshotError> {
    let md = &f.md;
    let kind = Kind::of(md.mode());
    let link = if kind == Kind::Symlink {
        let l = fs::read_link(&f.path).map_err(|e| (f.path.clone(), e))?;
        Some(Bytes::from_os(l.as_os_str()))
    } else {
        None
    };
    let xattrs = if with_xattrs && !f.mount {
        meta::read(&f.path).map_err(|e| (f.path.clone(), e))?
    } else {
        Vec::new()
    };
    Ok(Entry {
        rel: Bytes(f.rel.clone()),
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        atime: time(md.atime(), md.atime_nsec()),
        mtime: time(md.mtime(), md.mtime_nsec()),
        ctime: time(md.ctime(), md.ctime_nsec()),
        size: md.size(),
        dev: md.dev(),
        ino: md.ino(),
        nlink: md.nlink(),
        rdev: md.rdev(),
        xattrs,
        link,
        blob: None,
        mount: f.mount,
    })
}

/// Every target's entries, and the estimate (bytes once per inode).
fn scan(targets: &[PathBuf], with_xattrs: bool) -> Result<(Vec<Target>, Estimate), SnapshotError> {
    let mut est = Estimate::default();
    let mut seen: HashMap<(u64, u64), ()> = HashMap::new();
    let mut out = Vec::new();
    for t in targets {
        let mut entries = Vec::new();
        let present = walk(t, |f: Found| -> Result<(), SnapshotError> {
            let e = entry(&f, with_xattrs)?;
            est.entries += 1;
            if e.kind == Kind::File && !e.mount {
                est.files += 1;
                if seen.insert((e.dev, e.ino), ()).is_none() {
                    est.bytes += e.size;
                }
            }
            entries.push(e);
            Ok(())
        })?;
        out.push(Target {
            path: Bytes::from_os(t.as_os_str()),
            present,
            entries,
        });
    }
    Ok((out, est))
}

pub fn estimate(targets: &[PathBuf]) -> Result<Estimate, SnapshotError> {
    Ok(scan(&canonical(targets)?, false)?.1)
}

pub fn take(
    root: &Path,
    dir: &Path,
    lease: &str,
    targets: &[PathBuf],
    max_bytes: u64,
) -> Result<Taken, SnapshotError> {
    let start = Instant::now();
    let targets = canonical(targets)?;
    let (mut scanned, est) = scan(&targets, true)?;
    if est.bytes > max_bytes {
        return Err(SnapshotError::Budget {
            needed: est.bytes,
            max: max_bytes,
        });
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| (root.to_owned(), e))?;
    if dir.join(MANIFEST).exists() {
        return Err(SnapshotError::Exists {
            lease: lease.to_owned(),
            path: dir.to_owned(),
        });
    }
    // A directory without a manifest is what a crash left of an earlier attempt.
    let _ = fs::remove_dir_all(dir);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| (dir.to_owned(), e))?;
    let result = store(dir, lease, &mut scanned, est, start, &targets);
    if result.is_err() {
        let _ = fs::remove_dir_all(dir);
    }
    result
}

/// Stores the blobs and writes the summary and the manifest into `dir`.
fn store(
    dir: &Path,
    lease: &str,
    targets: &mut [Target],
    est: Estimate,
    start: Instant,
    paths: &[PathBuf],
) -> Result<Taken, SnapshotError> {
    let blobs = dir.join(BLOBS);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&blobs)
        .map_err(|e| (blobs.clone(), e))?;
    let mut by_inode: HashMap<(u64, u64), u64> = HashMap::new();
    let (mut cloned, mut copied) = (0u64, 0u64);
    for t in targets.iter_mut() {
        let base = PathBuf::from(t.path.os());
        for e in t
            .entries
            .iter_mut()
            .filter(|e| e.kind == Kind::File && !e.mount)
        {
            let next = by_inode.len() as u64;
            let n = *by_inode.entry((e.dev, e.ino)).or_insert(next);
            e.blob = Some(n);
            if n != next {
                continue; // another link of an inode stored already
            }
            let src = if e.rel.0.is_empty() {
                base.clone()
            } else {
                base.join(e.rel.os())
            };
            let dst = blobs.join(n.to_string());
            match blob::store(&src, &dst) {
                Ok(How::Cloned) => cloned += 1,
                Ok(How::Copied) => copied += 1,
                Err((path, e)) => return Err((path.to_owned(), e).into()),
            }
        }
    }
    let fd = sys::open_dir_path(&blobs).map_err(|e| (blobs.clone(), e))?;
    sys::syncfs(sys::fd_ref(&fd)).map_err(|e| (blobs.clone(), e))?;
    let taken = Taken {
        entries: est.entries,
        files: est.files,
        bytes: est.bytes,
        method: Method::of(cloned, copied),
        took_ms: 0,
        targets: paths.to_vec(),
    };
    let manifest = Manifest {
        version: VERSION,
        lease: lease.to_owned(),
        taken_ms: crate::time::now() * 1000,
        targets: targets.to_vec(),
    };
    let taken = Taken {
        took_ms: start.elapsed().as_millis() as u64,
        ..taken
    };
    write_json(&dir.join(SUMMARY), &taken)?;
    write_json(&dir.join(MANIFEST), &manifest)?;
    Ok(taken)
}

/// The manifest of the snapshot in `dir`, or `Missing`.
pub fn manifest(dir: &Path, lease: &str, root: &Path) -> Result<Manifest, SnapshotError> {
    let path = dir.join(MANIFEST);
    if !path.exists() {
        return Err(SnapshotError::Missing {
            lease: lease.to_owned(),
            root: root.to_owned(),
        });
    }
    read_json(&path)
}

/// Each target's paths and identities now (metadata only).
pub fn identities(m: &Manifest) -> Result<Vec<Vec<Sealed>>, SnapshotError> {
    let targets: Vec<PathBuf> = m
        .targets
        .iter()
        .map(|t| PathBuf::from(t.path.os()))
        .collect();
    // The manifest's targets are canonical already: scan them as they are.
    let mut out = Vec::new();
    for t in &targets {
        let (scanned, _) = scan(std::slice::from_ref(t), false)?;
        out.push(
            scanned
                .into_iter()
                .flat_map(|t| t.entries)
                .map(|e| Sealed {
                    rel: e.rel,
                    kind: e.kind,
                    dev: e.dev,
                    ino: e.ino,
                    size: e.size,
                    mtime: e.mtime,
                    ctime: e.ctime,
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                })
                .collect(),
        );
    }
    Ok(out)
}

/// Records the targets' state at lease end and the retention deadline. Sealing again keeps
/// the first recorded state (what changed after the lease ended stays a change) and sets
/// the new deadline.
pub fn seal(
    dir: &Path,
    lease: &str,
    root: &Path,
    retain_until_ms: u64,
) -> Result<(), SnapshotError> {
    let m = manifest(dir, lease, root)?;
    let path = dir.join(STATE);
    let state = if path.exists() {
        State {
            retain_until_ms,
            ..read_json(&path)?
        }
    } else {
        State {
            sealed_ms: crate::time::now() * 1000,
            retain_until_ms,
            targets: identities(&m)?,
            restored_ms: None,
        }
    };
    write_json(&path, &state)
}

/// Removes every sealed snapshot whose retention ended at or before `now_ms`.
pub fn prune(root: &Path, now_ms: u64) -> Result<Vec<String>, SnapshotError> {
    let list = match fs::read_dir(root) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err((root.to_owned(), e).into()),
    };
    let mut removed = Vec::new();
    for e in list {
        let e = e.map_err(|e| (root.to_owned(), e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let state = e.path().join(STATE);
        if name.starts_with('.') || !state.exists() {
            continue;
        }
        let s: State = read_json(&state)?;
        if s.retain_until_ms <= now_ms {
            fs::remove_dir_all(e.path()).map_err(|err| (e.path(), err))?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}
