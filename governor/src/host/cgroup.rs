//! cgroup v2: finding the mount, creating agent cgroups, their ids, moving processes in.
//!
//! A cgroup's id, as `bpf_get_current_cgroup_id()` reports it, is the inode number of its
//! directory in the cgroup v2 filesystem.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no cgroup v2 filesystem is mounted (looked in /proc/self/mountinfo); \
         mount one with `mount -t cgroup2 none /sys/fs/cgroup` or boot with systemd's unified hierarchy"
    )]
    NoCgroup2,
    #[error("{0}")]
    MountInfo(super::files::ReadError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The cgroup v2 hierarchy of this host.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
}

impl CgroupFs {
    /// Finds the cgroup v2 mount point (the first one listed).
    pub fn discover() -> Result<CgroupFs, CgroupError> {
        let info = super::files::read_text(
            std::path::Path::new("/proc/self/mountinfo"),
            super::files::KERNEL,
        )
        .map_err(CgroupError::MountInfo)?;
        Self::from_mountinfo(&info).ok_or(CgroupError::NoCgroup2)
    }

    fn from_mountinfo(info: &str) -> Option<CgroupFs> {
        info.lines().find_map(|line| {
            // "36 35 0:30 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            (fstype == "cgroup2").then(|| CgroupFs {
                root: PathBuf::from(unescape_mountinfo(mount_point)),
            })
        })
    }

    /// A hierarchy rooted at `root` (tests: a plain directory stands in for the mount).
    #[cfg(test)]
    pub(crate) fn at(root: PathBuf) -> CgroupFs {
        CgroupFs { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of the cgroup at `rel` (relative to the mount).
    pub fn path(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// Creates the cgroup at `rel` (and its parents) if missing; returns its id.
    pub fn ensure(&self, rel: &Path) -> Result<u64, CgroupError> {
        let path = self.path(rel);
        fs::create_dir_all(&path).map_err(|source| CgroupError::Io {
            path: path.clone(),
            source,
        })?;
        self.id(rel)
    }

    /// The id of the existing cgroup at `rel`.
    pub fn id(&self, rel: &Path) -> Result<u64, CgroupError> {
        let path = self.path(rel);
        fs::metadata(&path)
            .map(|m| m.ino())
            .map_err(|source| CgroupError::Io { path, source })
    }

    /// Every cgroup below the one at `rel` (not itself), parents before children, as (path,
    /// id). A cgroup for which `stop(id)` is true is left out with everything below it (a
    /// nested agent cgroup, whose subtree is its own). Cgroups removed during the walk are
    /// skipped.
    pub fn descendants(
        &self,
        rel: &Path,
        stop: impl Fn(u64) -> bool,
    ) -> Result<Vec<(PathBuf, u64)>, CgroupError> {
        use std::os::unix::fs::DirEntryExt;
        let mut out = Vec::new();
        let mut pending = vec![self.path(rel)];
        while let Some(dir) = pending.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CgroupError::Io { path: dir, source }),
            };
            for entry in entries {
                let entry = entry.map_err(|source| CgroupError::Io {
                    path: dir.clone(),
                    source,
                })?;
                // cgroupfs holds directories (cgroups) and interface files, no symlinks.
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                // A cgroup directory's inode number is the cgroup id.
                let id = entry.ino();
                if stop(id) {
                    continue;
                }
                out.push((entry.path(), id));
                pending.push(entry.path());
            }
        }
        Ok(out)
    }

    /// Moves process `pid` (0 = the caller) into the cgroup at `rel`.
    pub fn enter(&self, rel: &Path, pid: u32) -> Result<(), CgroupError> {
        let procs = self.path(rel).join("cgroup.procs");
        fs::write(&procs, format!("{pid}\n")).map_err(|source| CgroupError::Io {
            path: procs,
            source,
        })
    }
}

/// Undoes mountinfo's octal escapes (`\040` for space and friends).
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_among_v1_mounts() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        let fs = CgroupFs::from_mountinfo(info).expect("cgroup2 found");
        assert_eq!(fs.root(), Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn no_cgroup2_is_none() {
        let info = "32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert!(CgroupFs::from_mountinfo(info).is_none());
    }

    #[test]
    fn descendants_lists_every_level_and_stops_at_nested_agents() {
        let root = std::env::temp_dir().join(format!("governor-cgroup-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in ["agent/a/a1/a2", "agent/b", "agent/nested/n1", "other/o"] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        fs::write(root.join("agent/cgroup.procs"), "").expect("a file, not a cgroup");
        let fs = CgroupFs { root: root.clone() };
        let nested = fs.id(Path::new("agent/nested")).expect("id");
        let found = fs
            .descendants(Path::new("agent"), |id| id == nested)
            .expect("walk");
        let mut rel: Vec<String> = found
            .iter()
            .map(|(p, _)| {
                p.strip_prefix(&root)
                    .expect("below root")
                    .display()
                    .to_string()
            })
            .collect();
        rel.sort();
        assert_eq!(rel, ["agent/a", "agent/a/a1", "agent/a/a1/a2", "agent/b"]);
        for (path, id) in &found {
            assert_eq!(
                fs::metadata(path).expect("stat").ino(),
                *id,
                "{}",
                path.display()
            );
        }
        let pos = |r: &str| {
            found
                .iter()
                .position(|(p, _)| p.ends_with(r))
                .expect("listed")
        };
        assert!(
            pos("a") < pos("a1") && pos("a1") < pos("a2"),
            "parents first: {found:?}"
        );
        assert!(fs
            .descendants(Path::new("missing"), |_| false)
            .expect("gone")
            .is_empty());
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn unescapes_spaces() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/trail\04"), r"/trail\04");
    }
}
