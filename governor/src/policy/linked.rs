//! Inodes protected for a place they have inside a protected tree, found when a policy is
//! compiled, for the kernel's `GOV_LINKED` map (governor-ebpf `linked.rs` says how it
//! decides with them):
//! - a file with more than one name (a hard link): reached through a name outside the tree,
//!   the kernel's walk would never meet the protected directory;
//! - the root of a filesystem mounted inside a protected tree: hooks that are given no mount
//!   (`inode_setxattr`, `inode_setattr`, ...) walk within that filesystem only.
//!
//! Each is registered with the rule of the deepest protected path above its place. Links made
//! later are registered by the kernel itself; mounts made later, by the daemon's mount watcher
//! (`kernel::mounts`).
//!
//! The scan stays on the filesystems of the tree and the ones mounted in it, but does not go
//! into kernel filesystems (procfs, sysfs, cgroup, bpffs, ...), whose files are no stored data
//! and which `kfs` decides by who writes.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use governor_common::{InodeKey, ProtectedRule};

use super::compile::CompiledProtect;
use crate::host::inode;

/// Why an inode is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A file with more than one name, one of them at `path`.
    Link,
    /// The root of a filesystem mounted at `path`.
    Mount,
}

/// One registered inode.
#[derive(Debug, Clone)]
pub struct Linked {
    /// Its place inside the protected tree.
    pub path: PathBuf,
    pub key: InodeKey,
    /// The rule of the deepest protected path above `path`.
    pub rule: ProtectedRule,
    pub why: Why,
}

/// What a scan found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub linked: Vec<Linked>,
    /// Entries looked at.
    pub entries: u64,
    /// Directories that could not be read, and why: their files were not looked at.
    pub unreadable: Vec<(PathBuf, String)>,
    pub took: Duration,
}

/// Superblock magics of kernel filesystems the scan does not enter (include/uapi/linux/magic.h).
const KERNEL_FS: &[i64] = &[
    0x9fa0,      // procfs
    0x6265_6572, // sysfs
    0x6367_7270, // cgroup2
    0x0027_e0eb, // cgroup
    0xcafe_4a11, // bpffs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0x7363_6673, // securityfs
    0x6265_6570, // configfs
    0xde5e_81e4, // efivarfs
    0x6165_676c, // pstore
    0x4249_4e4d, // binfmt_misc
    0x1cd1,      // devpts
    0x6573_5546, // fusectl
];

/// Finds every registered inode below `protected` (governor's own directories and the
/// policy's paths, with their rules). Paths that no longer exist are skipped: compiling
/// them already failed or will.
pub fn scan(protected: &[CompiledProtect]) -> Scan {
    let started = Instant::now();
    // Deepest first, so that each inode gets the rule of the deepest protected path above
    // it, and a shallower root stops where a deeper one takes over.
    let mut roots: Vec<(PathBuf, ProtectedRule)> = protected
        .iter()
        .filter_map(|p| Some((std::fs::canonicalize(&p.path).ok()?, p.rule)))
        .collect();
    roots.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
    roots.dedup_by(|a, b| a.0 == b.0);
    let root_paths: HashSet<PathBuf> = roots.iter().map(|(p, _)| p.clone()).collect();
    let mut scan = Scan::default();
    let mut seen: HashMap<InodeKey, ()> = HashMap::new();
    for (root, rule) in &roots {
        walk(root, *rule, &root_paths, &mut seen, &mut scan);
    }
    scan.took = started.elapsed();
    scan
}

/// Scans the tree at `root` (a protected path with `rule`), leaving out other protected
/// paths below it.
fn walk(
    root: &Path,
    rule: ProtectedRule,
    roots: &HashSet<PathBuf>,
    seen: &mut HashMap<InodeKey, ()>,
    scan: &mut Scan,
) {
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return;
    };
    if !meta.is_dir() {
        // A protected file: the kernel finds it by its own inode whatever its name.
        return;
    }
    let mut keys = inode::Keys::default();
    let mut dirs = vec![(root.to_path_buf(), meta.dev())];
    while let Some((dir, dev)) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                scan.unreadable.push((dir, e.to_string()));
                continue;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            scan.entries += 1;
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let key = keys.key(&path, &meta);
            let mounted = meta.dev() != dev;
            if meta.is_dir() {
                if roots.contains(&path) {
                    continue;
                }
                if mounted {
                    register(&path, key, rule, Why::Mount, seen, scan);
                    if kernel_fs(&path) {
                        continue;
                    }
                }
                dirs.push((path, meta.dev()));
            } else if mounted {
                // A file bind-mounted over a name in the tree.
                register(&path, key, rule, Why::Mount, seen, scan);
            } else if meta.nlink() > 1 {
                register(&path, key, rule, Why::Link, seen, scan);
            }
        }
    }
}

fn register(
    path: &Path,
    key: InodeKey,
    rule: ProtectedRule,
    why: Why,
    seen: &mut HashMap<InodeKey, ()>,
    scan: &mut Scan,
) {
    if seen.insert(key, ()).is_none() {
        scan.linked.push(Linked {
            path: path.to_owned(),
            key,
            rule,
            why,
        });
    }
}

/// Whether `path` is on a kernel filesystem (unreadable: treated as one, not entered).
fn kernel_fs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).map_or(true, |s| KERNEL_FS.contains(&s.filesystem_type().0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rule(id: u32) -> ProtectedRule {
        ProtectedRule {
            rule_id: id,
            deny_mask: 1 << 1,
            lease_mask: 0,
            agent_mask: 0,
        }
    }

    fn protect(path: &Path, id: u32) -> CompiledProtect {
        let meta = std::fs::metadata(path).expect("stat");
        CompiledProtect {
            path: path.to_owned(),
            key: inode::key(path, &meta),
            rule: rule(id),
        }
    }

    #[test]
    fn finds_links_with_the_deepest_rule_and_leaves_single_names_alone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let top = tmp.path().join("top");
        let deep = top.join("deep");
        let outside = tmp.path().join("outside");
        for d in [&top, &deep, &outside] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(top.join("single"), "1").expect("write");
        std::fs::write(top.join("linked"), "2").expect("write");
        std::fs::hard_link(top.join("linked"), outside.join("other-name")).expect("link");
        std::fs::write(deep.join("inner"), "3").expect("write");
        std::fs::hard_link(deep.join("inner"), outside.join("inner-elsewhere")).expect("link");
        // Two names inside: registered once.
        std::fs::hard_link(top.join("linked"), top.join("second-inside")).expect("link");
        symlink(top.join("single"), top.join("symlink")).expect("symlink");
        let scan = scan(&[protect(&top, 1), protect(&deep, 2)]);
        let by_name = |n: &str| {
            scan.linked
                .iter()
                .find(|l| l.path.file_name().is_some_and(|f| f == n))
        };
        let inner = by_name("inner").expect("inner registered");
        assert_eq!(inner.rule.rule_id, 2, "the deepest protected path decides");
        assert_eq!(inner.why, Why::Link);
        let linked: Vec<_> = scan
            .linked
            .iter()
            .filter(|l| {
                let p = top.join("linked");
                l.key == inode::key(&p, &std::fs::metadata(&p).unwrap())
            })
            .collect();
        assert_eq!(linked.len(), 1, "one entry per inode: {:?}", scan.linked);
        assert_eq!(linked[0].rule.rule_id, 1);
        assert!(by_name("single").is_none(), "a single name needs no entry");
        assert!(by_name("symlink").is_none(), "a symlink is its own inode");
        assert_eq!(scan.linked.len(), 2, "{:?}", scan.linked);
        assert!(scan.unreadable.is_empty());
    }

    #[test]
    fn a_missing_protected_path_is_skipped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let gone = CompiledProtect {
            path: tmp.path().join("gone"),
            key: InodeKey::new(1, 1),
            rule: rule(0),
        };
        assert!(scan(&[gone]).linked.is_empty());
    }
}
