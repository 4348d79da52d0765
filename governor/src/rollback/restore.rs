//! The restore: every target of a sealed snapshot put back as it was, by directory fd.
//!
//! The agent is assumed hostile: it may have replaced a directory of the tree by a symlink
//! to `/etc`. So the walk holds a directory fd (`O_DIRECTORY|O_NOFOLLOW`) for each
//! directory it enters, reaches every entry by name relative to it with the `*at` calls
//! (`openat` with `O_NOFOLLOW`, `unlinkat`, `mkdirat`, `symlinkat`, `mknodat`, `linkat`,
//! `fchownat`/`utimensat` with `AT_SYMLINK_NOFOLLOW`), and an entry of the wrong kind is
//! removed (recursively, by the same rules) before the right one is made. The only symlinks
//! it ever resolves are the ones it creates, and it never resolves them.
//!
//! Per entry, in three phases:
//! 1. the walk: what the snapshot lacks is removed; what it has is checked against the
//!    sealed state (a path changed after the lease ended is a conflict, left alone unless
//!    `force`), then left alone if unchanged (same inode, size, mtime and ctime), restored
//!    in place if it is the same regular file (same inode: its other links and the kernel's
//!    inode-keyed policy keep pointing at it), else created anew. A directory's own
//!    metadata is put back after its children (creating a child changes its mtime).
//! 2. the links: the other members of a hard-link group are linked to the one member
//!    restored (the "anchor", preferably the one that still has the snapshot's inode), and
//!    their directory's times put back again.
//! 3. one `syncfs` per target.
//!
//! A hard-link group spanning two targets of one lease is kept: anchors are per lease.

use std::{
    collections::HashMap,
    ffi::{CString, OsStr},
    fs,
    os::{
        fd::{BorrowedFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
    time::Instant,
};

use super::{
    blob,
    conflict::{changed, reseal, same, t},
    manifest::{Entry, Kind, Sealed, State},
    meta,
    snapshot::{manifest, read_json, write_json},
    sys, Conflict, Restored, SnapshotError, BLOBS, STATE,
};

/// One target's lookups.
struct Tree<'a> {
    base: PathBuf,
    entries: HashMap<&'a [u8], &'a Entry>,
    /// A directory's children in the snapshot, by the directory's `rel`.
    children: HashMap<&'a [u8], Vec<&'a OsStr>>,
    sealed: HashMap<&'a [u8], &'a Sealed>,
    dev: Option<u64>,
}

/// A hard-link group (entries sharing a blob): which member is restored, and its inode.
struct Group {
    anchor: (usize, Vec<u8>),
    placed: Option<OwnedFd>,
}

struct Run<'a> {
    trees: Vec<Tree<'a>>,
    groups: HashMap<u64, Group>,
    deferred: Vec<(usize, &'a Entry)>,
    /// The snapshot's `blobs/` directory.
    blobs: BorrowedFd<'a>,
    force: bool,
    /// The sealed records are what an earlier restore left (`State::restored_ms`).
    trusted: bool,
    out: Restored,
}

fn join(rel: &[u8], name: &OsStr) -> Vec<u8> {
    let mut out = rel.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name.as_bytes());
    out
}

fn split(rel: &[u8]) -> (&[u8], &OsStr) {
    match rel.iter().rposition(|b| *b == b'/') {
        Some(i) => (&rel[..i], OsStr::from_bytes(&rel[i + 1..])),
        None => (&[], OsStr::from_bytes(rel)),
    }
}

pub fn restore(
    dir: &Path,
    lease: &str,
    root: &Path,
    force: bool,
) -> Result<Restored, SnapshotError> {
    let start = Instant::now();
    let m = manifest(dir, lease, root)?;
    let state_path = dir.join(STATE);
    if !state_path.exists() {
        return Err(SnapshotError::Unsealed {
            lease: lease.to_owned(),
        });
    }
    let state: State = read_json(&state_path)?;
    if state.targets.len() != m.targets.len() {
        return Err(SnapshotError::Corrupt {
            path: state_path,
            why: "its targets are not the manifest's".into(),
        });
    }
    let blobs = sys::open_dir_path(&dir.join(BLOBS)).map_err(|e| (dir.join(BLOBS), e))?;
    let mut run = Run {
        trees: Vec::new(),
        groups: HashMap::new(),
        deferred: Vec::new(),
        blobs: sys::fd_ref(&blobs),
        force,
        trusted: state.restored_ms.is_some(),
        out: Restored::default(),
    };
    let mut members: HashMap<u64, Vec<(usize, &Entry)>> = HashMap::new();
    for (ti, (target, sealed)) in m.targets.iter().zip(&state.targets).enumerate() {
        let mut tree = Tree {
            base: PathBuf::from(target.path.os()),
            entries: HashMap::new(),
            children: HashMap::new(),
            sealed: sealed.iter().map(|s| (s.rel.0.as_slice(), s)).collect(),
            dev: target.entries.first().map(|e| e.dev),
        };
        for e in &target.entries {
            tree.entries.insert(&e.rel.0, e);
            if !e.rel.0.is_empty() {
                let (parent, name) = split(&e.rel.0);
                tree.children.entry(parent).or_default().push(name);
            }
            if let Some(n) = e.blob {
                members.entry(n).or_default().push((ti, e));
            }
        }
        run.trees.push(tree);
    }
    for (n, list) in members.into_iter().filter(|(_, l)| l.len() > 1) {
        // The anchor: a member that still has the snapshot's inode (a hint read by path;
        // the walk checks it again through its fds), else the first.
        let still = |(ti, e): &&(usize, &Entry)| {
            fs::symlink_metadata(run.trees[*ti].base.join(e.rel.os()))
                .is_ok_and(|md| md.ino() == e.ino && md.dev() == e.dev)
        };
        let (ti, e) = list.iter().find(still).unwrap_or(&list[0]);
        run.groups.insert(
            n,
            Group {
                anchor: (*ti, e.rel.0.clone()),
                placed: None,
            },
        );
    }
    for ti in 0..run.trees.len() {
        run.target(ti);
    }
    let deferred = std::mem::take(&mut run.deferred);
    for (ti, e) in deferred {
        run.link(ti, e);
    }
    for tree in &run.trees {
        if let Some(parent) = tree.base.parent() {
            if let Ok(fd) = sys::open_dir_path(parent) {
                let _ = sys::syncfs(sys::fd_ref(&fd));
            }
        }
    }
    run.out.conflicts.sort_by(|a, b| a.path.cmp(&b.path));
    run.out.failed.sort_by(|a, b| a.path.cmp(&b.path));
    let state = reseal(&m, &state, &run.out)?;
    write_json(&state_path, &state)?;
    run.out.took_ms = start.elapsed().as_millis() as u64;
    Ok(run.out)
}

impl<'a> Run<'a> {
    fn path(&self, ti: usize, rel: &[u8]) -> PathBuf {
        let base = &self.trees[ti].base;
        if rel.is_empty() {
            base.clone()
        } else {
            base.join(OsStr::from_bytes(rel))
        }
    }

    /// Whether `st` is exactly what the last restore left at `rel` (nothing to do).
    fn as_left(&self, ti: usize, rel: &[u8], st: &libc::stat) -> bool {
        let Some(s) = self.trees[ti].sealed.get(rel).filter(|_| self.trusted) else {
            return false;
        };
        let (m, c) = t(st);
        Kind::of(st.st_mode) == s.kind
            && (st.st_ino, st.st_dev, st.st_size as u64) == (s.ino, s.dev, s.size)
            && (m, c) == (s.mtime, s.ctime)
    }

    fn fail(&mut self, ti: usize, rel: &[u8], why: impl std::fmt::Display) {
        let path = self.path(ti, rel);
        self.out.failed.push(Conflict {
            path,
            why: why.to_string(),
        });
    }

    /// Restores target `ti` from its parent directory down.
    fn target(&mut self, ti: usize) {
        let base = self.trees[ti].base.clone();
        let (Some(parent), Some(name)) = (base.parent(), base.file_name()) else {
            return self.fail(ti, b"", "a target must have a parent directory");
        };
        let dir = match sys::open_dir_path(parent) {
            Ok(fd) => fd,
            Err(e)
                if e.raw_os_error() == Some(libc::ENOENT) && !self.trees[ti].entries.is_empty() =>
            {
                return self.fail(ti, b"", format!("its directory {}: {e}", parent.display()))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return,
            Err(e) => {
                return self.fail(ti, b"", format!("its directory {}: {e}", parent.display()))
            }
        };
        if self.trees[ti].dev.is_none() {
            self.trees[ti].dev = sys::fstat(sys::fd_ref(&dir)).ok().map(|st| st.st_dev);
        }
        self.visit(ti, sys::fd_ref(&dir), name, b"", false);
    }

    /// One entry `dir/name` (`rel` in the tree). `absent`: `dir` is a directory this restore
    /// just made, so nothing is at `name` (no `stat` needed; should anything appear there
    /// meanwhile, the exclusive create fails and the path is reported, never overwritten).
    fn visit(&mut self, ti: usize, dir: BorrowedFd, name: &OsStr, rel: &[u8], absent: bool) {
        let Ok(cname) = sys::cstr(name) else {
            return self.fail(ti, rel, "a name with a NUL byte");
        };
        let cur = match absent {
            true => None,
            false => match sys::stat_at(dir, &cname) {
                Ok(cur) => cur,
                Err(e) => return self.fail(ti, rel, e),
            },
        };
        let snap = self.trees[ti].entries.get(rel).copied();
        if snap.is_some_and(|e| e.mount) {
            return; // another filesystem: never the lease's
        }
        if !self.force {
            if let Some(why) = changed(self.trees[ti].sealed.get(rel).copied(), cur.as_ref()) {
                let path = self.path(ti, rel);
                self.out.conflicts.push(Conflict { path, why });
                return;
            }
        }
        match (snap, cur) {
            (None, None) => {}
            (None, Some(st)) => {
                self.remove(ti, dir, &cname, rel, &st);
            }
            (Some(e), cur) => {
                let cur = match cur {
                    Some(st) if Kind::of(st.st_mode) != e.kind => {
                        if !self.remove(ti, dir, &cname, rel, &st) {
                            return self.fail(
                                ti,
                                rel,
                                "left as is: it holds entries changed after the lease ended",
                            );
                        }
                        None
                    }
                    cur => cur,
                };
                if let Err(err) = self.put(ti, dir, &cname, rel, e, cur) {
                    self.fail(ti, rel, err);
                }
            }
        }
    }

    /// Removes what is at `dir/name` (the snapshot does not have it there), a directory
    /// with its contents (each checked as `visit` does); whether it is gone.
    fn remove(
        &mut self,
        ti: usize,
        dir: BorrowedFd,
        name: &CString,
        rel: &[u8],
        st: &libc::stat,
    ) -> bool {
        let is_dir = Kind::of(st.st_mode) == Kind::Dir;
        if is_dir {
            if Some(st.st_dev) != self.trees[ti].dev {
                self.fail(ti, rel, "a mount point: left alone");
                return false;
            }
            let sub = match sys::open_dir_at(dir, name) {
                Ok(fd) => fd,
                Err(e) => {
                    self.fail(ti, rel, e);
                    return false;
                }
            };
            match sys::read_dir_fd(sys::fd_ref(&sub)) {
                Ok(names) => {
                    for child in names {
                        self.visit(ti, sys::fd_ref(&sub), &child, &join(rel, &child), false);
                    }
                }
                Err(e) => {
                    self.fail(ti, rel, e);
                    return false;
                }
            }
        }
        match sys::unlink_at(dir, name, is_dir) {
            Ok(()) => {
                let path = self.path(ti, rel);
                self.out.removed.push(path);
                true
            }
            // Children changed after the lease ended are still in it (reported).
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => false,
            Err(e) => {
                self.fail(ti, rel, e);
                false
            }
        }
    }

    /// Puts `e` at `dir/name`, where `cur` (if any) is of `e`'s kind.
    fn put(
        &mut self,
        ti: usize,
        dir: BorrowedFd,
        name: &CString,
        rel: &[u8],
        e: &'a Entry,
        cur: Option<libc::stat>,
    ) -> std::io::Result<()> {
        let path = self.path(ti, rel);
        let left = cur.is_some_and(|st| self.as_left(ti, rel, &st));
        match e.kind {
            Kind::File => {
                let n = e.blob.expect("a file has a blob");
                if self
                    .groups
                    .get(&n)
                    .is_some_and(|g| g.anchor != (ti, rel.to_vec()))
                {
                    self.deferred.push((ti, e));
                    return Ok(());
                }
                if left {
                    self.out.unchanged += 1;
                } else {
                    self.put_file(dir, name, &path, e, cur)?;
                }
                if let Some(g) = self.groups.get_mut(&n) {
                    g.placed = Some(sys::open_path_at(dir, name)?);
                }
            }
            Kind::Dir => {
                let fresh = cur.is_none();
                if fresh {
                    sys::mkdir_at(dir, name)?;
                }
                let sub = sys::open_dir_at(dir, name)?;
                // A directory just made holds nothing to remove or check.
                let mut names = match fresh {
                    true => Vec::new(),
                    false => sys::read_dir_fd(sys::fd_ref(&sub))?,
                };
                names.sort();
                let tree = &self.trees[ti];
                let keep: Vec<&OsStr> = tree.children.get(rel).cloned().unwrap_or_default();
                for child in names.iter().filter(|n| !keep.contains(&n.as_os_str())) {
                    self.visit(ti, sys::fd_ref(&sub), child, &join(rel, child), false);
                }
                for child in keep {
                    self.visit(ti, sys::fd_ref(&sub), child, &join(rel, child), fresh);
                }
                let now = sys::stat_at(dir, name)?;
                if fresh {
                    meta::apply(dir, name, e)?;
                    self.out.recreated.push(path);
                } else if now.is_some_and(|st| {
                    (st.st_ino == e.ino && t(&st) == (e.mtime, e.ctime))
                        || self.as_left(ti, rel, &st)
                }) {
                    self.out.unchanged += 1;
                } else {
                    meta::apply(dir, name, e)?;
                    self.out.restored.push(path);
                }
            }
            Kind::Symlink => {
                if left || cur.is_some_and(|st| st.st_ino == e.ino && t(&st).1 == e.ctime) {
                    self.out.unchanged += 1;
                    return Ok(());
                }
                if cur.is_some() {
                    sys::unlink_at(dir, name, false)?;
                }
                let target = e.link.as_ref().map(|l| l.os()).unwrap_or_default();
                sys::symlink_at(target, dir, name)?;
                meta::apply(dir, name, e)?;
                self.out.recreated.push(path);
            }
            _ => {
                if left || cur.is_some_and(|st| st.st_ino == e.ino && t(&st).1 == e.ctime) {
                    self.out.unchanged += 1;
                    return Ok(());
                }
                if cur.is_some() {
                    sys::unlink_at(dir, name, false)?;
                }
                sys::mknod_at(dir, name, e.kind.ifmt() | 0o600, e.rdev)?;
                meta::apply(dir, name, e)?;
                self.out.recreated.push(path);
            }
        }
        Ok(())
    }

    /// A regular file: unchanged, in place (same inode), or anew.
    fn put_file(
        &mut self,
        dir: BorrowedFd,
        name: &CString,
        path: &Path,
        e: &Entry,
        cur: Option<libc::stat>,
    ) -> std::io::Result<()> {
        let blob = e.blob.expect("a file has a blob");
        let blobs = self.blobs;
        if let Some(st) = cur {
            if same(&st, e) {
                self.out.unchanged += 1;
                return Ok(());
            }
            if st.st_ino == e.ino && st.st_dev == e.dev {
                let fd = sys::open_write_at(dir, name)?;
                if sys::fstat(sys::fd_ref(&fd))?.st_ino != e.ino {
                    return Err(std::io::Error::other("replaced during the restore"));
                }
                blob::fill(sys::fd_ref(&fd), blobs, blob, false)?;
                meta::apply_open(sys::fd_ref(&fd), e)?;
                self.out.restored.push(path.to_owned());
                return Ok(());
            }
            sys::unlink_at(dir, name, false)?;
        }
        let fd = sys::create_at(dir, name)?;
        blob::fill(sys::fd_ref(&fd), blobs, blob, true)?;
        meta::apply_open(sys::fd_ref(&fd), e)?;
        self.out.recreated.push(path.to_owned());
        Ok(())
    }

    /// A hard-link group member other than the anchor: a link to the anchor's inode.
    fn link(&mut self, ti: usize, e: &'a Entry) {
        let rel = e.rel.0.as_slice();
        // The member's directory and name (the target itself: its parent and its name).
        let (dir_path, name, parent) = if rel.is_empty() {
            let base = &self.trees[ti].base;
            match (base.parent(), base.file_name()) {
                (Some(p), Some(n)) => (p.to_owned(), n.to_owned(), None),
                _ => return,
            }
        } else {
            let (parent, name) = split(rel);
            (self.path(ti, parent), name.to_owned(), Some(parent))
        };
        let dir = match sys::open_dir_path(&dir_path) {
            Ok(fd) => fd,
            Err(err) => return self.fail(ti, rel, format!("its directory: {err}")),
        };
        let dir = sys::fd_ref(&dir);
        let Ok(cname) = sys::cstr(&name) else { return };
        let n = e.blob.expect("a file has a blob");
        let result = (|| -> std::io::Result<()> {
            let cur = sys::stat_at(dir, &cname)?;
            let Some(placed) = self.groups.get(&n).and_then(|g| g.placed.as_ref()) else {
                // The anchor was left as is (a conflict): this member stands alone.
                let path = self.path(ti, rel);
                self.put_file(dir, &cname, &path, e, cur)?;
                let fd = sys::open_path_at(dir, &cname)?;
                self.groups.get_mut(&n).expect("a group").placed = Some(fd);
                return Ok(());
            };
            let placed = placed.try_clone()?;
            let ino = sys::fstat(sys::fd_ref(&placed))?.st_ino;
            if cur.is_some_and(|st| st.st_ino == ino) {
                self.out.unchanged += 1;
                return Ok(());
            }
            if let Some(st) = cur {
                if !self.remove(ti, dir, &cname, rel, &st) {
                    return Err(std::io::Error::other("could not clear the name"));
                }
            }
            sys::link_fd_at(sys::fd_ref(&placed), dir, &cname)?;
            let path = self.path(ti, rel);
            self.out.recreated.push(path);
            // The new name changed the directory's times: put them back.
            if let Some(d) = parent.and_then(|p| self.trees[ti].entries.get(p)) {
                sys::futimens(dir, d.atime, d.mtime)?;
            }
            Ok(())
        })();
        if let Err(err) = result {
            self.fail(ti, rel, err);
        }
    }
}
