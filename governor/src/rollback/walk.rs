//! Walking a target when the snapshot is taken or sealed: `lstat` on every entry, parents
//! before their children, names in byte order, never following a symlink (a symlink is an
//! entry of its own, its target is not walked).
//!
//! One filesystem: an entry on another device than the target (a mount point inside the
//! tree) is reported with `mount` set and not entered. The snapshot keeps only its name, so
//! that the restore leaves it alone: it neither removes a mount point as "created by the
//! agent" nor writes into another filesystem that the lease never covered.
//!
//! The walk runs by path, not by directory fd: when a snapshot is taken, the lease is not
//! installed yet and the agent cannot change the tree; at seal the walk only reads metadata.

use std::{
    fs::{self, Metadata},
    io,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

/// One entry found under a target.
pub struct Found {
    /// Relative to the target, `/`-separated; empty for the target itself.
    pub rel: Vec<u8>,
    pub path: PathBuf,
    pub md: Metadata,
    /// On another filesystem than the target (not entered).
    pub mount: bool,
}

/// Calls `each` on every entry of `target` (the target first); `Ok(false)` when the target
/// does not exist. An error names the path it is about.
pub fn walk<E>(target: &Path, mut each: impl FnMut(Found) -> Result<(), E>) -> Result<bool, E>
where
    E: From<(PathBuf, io::Error)>,
{
    let md = match fs::symlink_metadata(target) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err((target.to_owned(), e).into()),
    };
    let dev = md.dev();
    // Depth first, parents before children: a stack of directories still to list.
    let mut stack: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    if md.is_dir() {
        stack.push((Vec::new(), target.to_owned()));
    }
    each(Found {
        rel: Vec::new(),
        path: target.to_owned(),
        md,
        mount: false,
    })?;
    while let Some((rel, dir)) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir)
            .and_then(|rd| rd.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(|e| (dir.clone(), e))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let path = dir.join(&name);
            let md = fs::symlink_metadata(&path).map_err(|e| (path.clone(), e))?;
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            let mount = md.dev() != dev;
            if md.is_dir() && !mount {
                subdirs.push((child.clone(), path.clone()));
            }
            each(Found {
                rel: child,
                path,
                md,
                mount,
            })?;
        }
        // Reversed, so that the first subdirectory is listed next.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    struct E(PathBuf);
    impl From<(PathBuf, io::Error)> for E {
        fn from((p, _): (PathBuf, io::Error)) -> Self {
            E(p)
        }
    }

    #[test]
    fn walks_parents_first_and_does_not_follow_symlinks() {
        let d = crate::host::scratch("rollback-walk");
        let t = d.join("t");
        fs::create_dir_all(t.join("a/b")).unwrap();
        fs::write(t.join("a/b/f"), b"x").unwrap();
        fs::create_dir(d.join("outside")).unwrap();
        fs::write(d.join("outside/secret"), b"x").unwrap();
        symlink(d.join("outside"), t.join("l")).unwrap();
        let mut seen = Vec::new();
        let present = walk::<E>(&t, |f| {
            seen.push(String::from_utf8(f.rel).unwrap());
            Ok(())
        })
        .unwrap_or_else(|E(p)| panic!("{}", p.display()));
        assert!(present);
        assert_eq!(seen, ["", "a", "l", "a/b", "a/b/f"]);
        assert!(!walk::<E>(&d.join("missing"), |_| Ok(())).unwrap_or(true));
        fs::remove_dir_all(&d).unwrap();
    }
}
