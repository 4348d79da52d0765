//! The snapshot store against real trees in scratch directories: a tree described before
//! the lease (content, kind, mode, owner, mtime in ns, xattrs, link targets, hard-link
//! groups, the set of paths) must be described the same after agent-like changes and a
//! restore.

use std::{
    collections::BTreeMap,
    ffi::CString,
    fs,
    os::unix::{
        ffi::OsStrExt,
        fs::{symlink, MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
};

use super::{blob, meta, sys, Method, SnapshotError, Snapshots};

/// One path as the comparison sees it.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Content of a regular file, target of a symlink.
    data: Vec<u8>,
    /// The first path (in byte order) of this inode: equal for every hard link.
    group: String,
}

/// The tree under `root`, path by path (relative), never following a symlink.
fn describe(root: &Path) -> BTreeMap<String, Seen> {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        paths.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    paths.sort();
    let mut first: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for p in paths {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let md = fs::symlink_metadata(&p).unwrap();
        let data = if md.is_file() {
            fs::read(&p).unwrap()
        } else if md.file_type().is_symlink() {
            fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()
        } else {
            Vec::new()
        };
        let group = first
            .entry((md.dev(), md.ino()))
            .or_insert_with(|| rel.clone())
            .clone();
        let xattrs = meta::read(&p)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (n.0, v.0))
            .collect();
        out.insert(
            rel,
            Seen {
                kind: md.mode() & libc::S_IFMT,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: (md.mtime(), md.mtime_nsec()),
                xattrs,
                data,
                group,
            },
        );
    }
    out
}

fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    let dir = sys::open_dir_path(p.parent().unwrap()).unwrap();
    let name = CString::new(p.file_name().unwrap().as_bytes()).unwrap();
    sys::utimens_at(sys::fd_ref(&dir), &name, [sec, nsec], [sec, nsec]).unwrap();
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) -> bool {
    let path = CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    // SAFETY: valid C strings and a value of `value.len()` bytes.
    unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

fn root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

/// Whether FICLONE works from `dir` into `dir` (what the method must then say).
fn reflinks(dir: &Path) -> bool {
    let probe = dir.join(".probe-src");
    fs::write(&probe, b"probe").unwrap();
    let how = blob::store(&probe, &dir.join(".probe-dst"))
        .map_err(|(_, e)| e)
        .unwrap();
    fs::remove_file(&probe).unwrap();
    fs::remove_file(dir.join(".probe-dst")).unwrap();
    how == blob::How::Cloned
}

/// A POSIX ACL (`system.posix_acl_access`): owner rw, user 1234 r, group r, mask r, other -.
fn acl() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 1234),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

/// A tree with nested directories, hard links, symlinks (one dangling), xattrs, modes,
/// owners, nanosecond times, an empty file and a FIFO.
fn build(t: &Path) {
    fs::create_dir_all(t.join("a/b/c")).unwrap();
    fs::create_dir_all(t.join("d")).unwrap();
    fs::write(t.join("a/b/c/deep.txt"), b"deep").unwrap();
    fs::write(t.join("a/b/one.txt"), b"one").unwrap();
    fs::write(t.join("a/empty"), b"").unwrap();
    fs::write(t.join("a/hl1"), vec![7u8; 100_000]).unwrap();
    fs::hard_link(t.join("a/hl1"), t.join("d/hl2")).unwrap();
    fs::hard_link(t.join("a/hl1"), t.join("hl3")).unwrap();
    fs::write(t.join("over.txt"), b"rename-over victim").unwrap();
    fs::write(t.join("x.txt"), b"xattrs").unwrap();
    assert!(set_xattr(&t.join("x.txt"), "user.test", b"value"));
    let _ = set_xattr(&t.join("x.txt"), "system.posix_acl_access", &acl());
    fs::write(t.join("ro.txt"), b"read only").unwrap();
    fs::set_permissions(t.join("ro.txt"), fs::Permissions::from_mode(0o4440)).unwrap();
    fs::set_permissions(t.join("d"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("a/b/one.txt", t.join("link")).unwrap();
    symlink("nowhere", t.join("dangling")).unwrap();
    let fifo = CString::new(t.join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    if root() {
        std::os::unix::fs::lchown(t.join("x.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(t.join("dangling"), Some(1234), Some(5678)).unwrap();
    }
    set_mtime(&t.join("a/b/one.txt"), 1_600_000_000, 123_456_789);
    set_mtime(&t.join("a/b"), 1_600_000_001, 987_654_321);
    set_mtime(&t.join("d"), 1_600_000_002, 5);
    set_mtime(&t.join("link"), 1_600_000_003, 7);
}

/// What an agent under a destructive lease does to the tree.
fn vandalize(t: &Path) {
    fs::remove_dir_all(t.join("a/b")).unwrap();
    fs::write(t.join("a/hl1"), b"overwritten in place").unwrap();
    fs::File::options()
        .write(true)
        .open(t.join("x.txt"))
        .unwrap()
        .set_len(2)
        .unwrap();
    fs::set_permissions(t.join("d"), fs::Permissions::from_mode(0o777)).unwrap();
    fs::rename(t.join("ro.txt"), t.join("d/moved.txt")).unwrap();
    fs::write(t.join("new.txt"), b"agent's").unwrap();
    fs::create_dir_all(t.join("newdir/sub")).unwrap();
    fs::write(t.join("newdir/sub/f"), b"agent's").unwrap();
    fs::write(t.join("tmp"), b"replacement").unwrap();
    fs::rename(t.join("tmp"), t.join("over.txt")).unwrap();
    fs::remove_file(t.join("link")).unwrap();
    fs::create_dir(t.join("link")).unwrap();
    fs::remove_file(t.join("dangling")).unwrap();
    fs::remove_file(t.join("fifo")).unwrap();
    fs::write(t.join("fifo"), b"not a fifo").unwrap();
}

fn scratch(name: &str) -> (PathBuf, Snapshots) {
    let d = crate::host::scratch(&format!("rollback-{name}"));
    fs::create_dir(d.join("t")).unwrap();
    let s = Snapshots::new(&d.join("state"));
    (d, s)
}

#[test]
fn a_vandalized_tree_is_restored_exactly() {
    let (d, s) = scratch("roundtrip");
    let t = d.join("t");
    build(&t);
    let before = describe(&t);
    let hl_ino = fs::metadata(t.join("a/hl1")).unwrap().ino();
    let taken = s.take("L1", std::slice::from_ref(&t), 1 << 30).unwrap();
    let est = Snapshots::estimate(std::slice::from_ref(&t)).unwrap();
    assert_eq!(
        (taken.files, taken.entries, taken.bytes),
        (est.files, est.entries, est.bytes)
    );
    assert_eq!(taken.bytes, 100_000 + 4 + 3 + 18 + 6 + 9, "each inode once");
    fs::create_dir_all(d.join("state")).unwrap();
    let expected = if reflinks(&d.join("state")) {
        Method::Reflink
    } else {
        Method::Copy
    };
    assert_eq!(taken.method, expected);
    assert_eq!(s.info("L1").unwrap(), Some(taken));
    let mode = fs::metadata(s.dir("L1").unwrap()).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);

    vandalize(&t);
    s.seal("L1", u64::MAX).unwrap();
    let r = s.restore("L1", false).unwrap();
    assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(describe(&t), before);
    // Restored in place: the hard-linked inode is the one the snapshot saw.
    assert_eq!(fs::metadata(t.join("a/hl1")).unwrap().ino(), hl_ino);
    // One link of the group is restored (in place), the others found still linked to it.
    let links = [t.join("a/hl1"), t.join("d/hl2"), t.join("hl3")];
    assert_eq!(
        r.restored.iter().filter(|p| links.contains(p)).count(),
        1,
        "{r:?}"
    );
    assert!(r.removed.contains(&t.join("new.txt")));
    assert!(r.removed.contains(&t.join("d/moved.txt")));
    assert!(r.recreated.contains(&t.join("a/b/c/deep.txt")));
    assert!(r.unchanged > 0);

    // A second restore finds everything as snapshotted.
    let again = s.restore("L1", false).unwrap();
    assert!(again.restored.is_empty() && again.recreated.is_empty() && again.removed.is_empty());
    assert_eq!(describe(&t), before);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_planted_symlink_to_outside_is_not_followed() {
    let (d, s) = scratch("symlink");
    let t = d.join("t");
    fs::create_dir_all(t.join("sub")).unwrap();
    fs::write(t.join("sub/f"), b"inside").unwrap();
    fs::write(t.join("g"), b"file").unwrap();
    let outside = d.join("etc");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("passwd"), b"root:x:0:0").unwrap();
    fs::write(outside.join("f"), b"outside f").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
    let before = describe(&t);
    s.take("L", std::slice::from_ref(&t), 1 << 20).unwrap();
    let outside_before = describe(&outside);

    // The agent swaps the directory and a file for symlinks to the outside directory.
    fs::remove_dir_all(t.join("sub")).unwrap();
    symlink(&outside, t.join("sub")).unwrap();
    fs::remove_file(t.join("g")).unwrap();
    symlink(outside.join("passwd"), t.join("g")).unwrap();
    s.seal("L", u64::MAX).unwrap();
    let r = s.restore("L", false).unwrap();
    assert!(r.failed.is_empty() && r.conflicts.is_empty(), "{r:?}");
    assert_eq!(
        describe(&outside),
        outside_before,
        "the outside is untouched"
    );
    assert_eq!(describe(&t), before);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn over_budget_is_refused_and_leaves_nothing() {
    let (d, s) = scratch("budget");
    let t = d.join("t");
    fs::write(t.join("big"), vec![0u8; 4096]).unwrap();
    fs::hard_link(t.join("big"), t.join("same")).unwrap();
    // One inode: 4096 bytes fit exactly.
    s.take("fits", std::slice::from_ref(&t), 4096).unwrap();
    fs::write(t.join("more"), b"x").unwrap();
    let e = s.take("L", std::slice::from_ref(&t), 4096).unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::Budget {
                needed: 4097,
                max: 4096
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("4097") && text.contains("[rollback] max_bytes"),
        "{text}"
    );
    assert!(!s.dir("L").unwrap().exists());
    assert_eq!(s.info("L").unwrap(), None);
    assert_eq!(s.held_bytes(&["fits", "L"]), 4096);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_take_that_cannot_start_says_why() {
    let (d, s) = scratch("failed");
    let t = d.join("t");
    fs::write(t.join("f"), b"content").unwrap();
    let e = s
        .take("bad/lease", std::slice::from_ref(&t), 1 << 20)
        .unwrap_err();
    assert!(matches!(e, SnapshotError::Lease { .. }), "{e:?}");
    let e = s
        .take("L", &[PathBuf::from("relative")], 1 << 20)
        .unwrap_err();
    assert!(matches!(e, SnapshotError::Relative { .. }), "{e:?}");
    // The snapshot's directory cannot be made: the error names it.
    let blocker = s.dir("L").unwrap();
    fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    fs::write(&blocker, b"not a directory").unwrap();
    let e = s.take("L", std::slice::from_ref(&t), 1 << 20).unwrap_err();
    assert!(
        e.to_string().contains(&blocker.display().to_string()),
        "{e}"
    );
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_change_after_the_lease_is_a_conflict_until_forced() {
    let (d, s) = scratch("conflict");
    let t = d.join("t");
    fs::write(t.join("f"), b"original").unwrap();
    fs::write(t.join("g"), b"original g").unwrap();
    let before = describe(&t);
    s.take("L", std::slice::from_ref(&t), 1 << 20).unwrap();
    assert!(matches!(
        s.restore("L", false),
        Err(SnapshotError::Unsealed { .. })
    ));
    fs::write(t.join("f"), b"agent").unwrap();
    fs::write(t.join("g"), b"agent g").unwrap();
    s.seal("L", u64::MAX).unwrap();
    // Someone else edits f and adds h after the lease ended; sealing again changes nothing.
    set_mtime(&t.join("f"), 1, 0);
    fs::write(t.join("f"), b"operator's edit").unwrap();
    fs::write(t.join("h"), b"operator's new file").unwrap();
    s.seal("L", u64::MAX).unwrap();
    let r = s.restore("L", false).unwrap();
    let paths: Vec<_> = r.conflicts.iter().map(|c| c.path.clone()).collect();
    assert_eq!(paths, [t.join("f"), t.join("h")], "{:?}", r.conflicts);
    assert!(
        r.conflicts[0]
            .why
            .contains("modified after the lease ended"),
        "{:?}",
        r.conflicts
    );
    assert!(r.conflicts[1].why.contains("created after the lease ended"));
    assert_eq!(fs::read(t.join("f")).unwrap(), b"operator's edit");
    assert_eq!(fs::read(t.join("g")).unwrap(), b"original g");
    assert!(t.join("h").exists());
    // Restoring again: what was left alone is still a conflict, the rest needs nothing.
    let again = s.restore("L", false).unwrap();
    assert_eq!(again.conflicts, r.conflicts);
    assert!(
        again.restored.is_empty() && again.recreated.is_empty(),
        "{again:?}"
    );
    let forced = s.restore("L", true).unwrap();
    assert!(forced.conflicts.is_empty());
    assert_eq!(describe(&t).get("f"), before.get("f"));
    assert!(!t.join("h").exists());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn prune_removes_only_sealed_snapshots_past_retention() {
    let (d, s) = scratch("prune");
    let t = d.join("t");
    fs::write(t.join("f"), b"x").unwrap();
    for lease in ["A", "B", "C"] {
        s.take(lease, std::slice::from_ref(&t), 1 << 20).unwrap();
    }
    s.seal("A", 1000).unwrap();
    s.seal("B", 5000).unwrap();
    assert_eq!(s.prune(2000).unwrap(), ["A"]);
    assert_eq!(s.info("A").unwrap(), None);
    assert!(s.info("B").unwrap().is_some() && s.info("C").unwrap().is_some());
    assert_eq!(s.prune(2000).unwrap(), Vec::<String>::new());
    s.remove("C").unwrap();
    assert_eq!(s.info("C").unwrap(), None);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_target_created_under_the_lease_is_removed() {
    let (d, s) = scratch("absent");
    let t = d.join("t/new");
    let taken = s.take("L", std::slice::from_ref(&t), 1 << 20).unwrap();
    assert_eq!((taken.entries, taken.method), (0, Method::Empty));
    fs::create_dir(&t).unwrap();
    fs::write(t.join("f"), b"agent").unwrap();
    s.seal("L", u64::MAX).unwrap();
    let r = s.restore("L", false).unwrap();
    assert!(!t.exists(), "{r:?}");
    fs::remove_dir_all(&d).unwrap();
}
