//! Writing files durably, the one way governor does it. Every file governor keeps (lease
//! store records, the request book, halts, the wall-clock mark, the secret-key registry,
//! lease files an operator writes, key files) goes through [`replace`] or [`create_new`], so
//! that each has the same durability: the bytes are synced, and so is the directory entry
//! that names them. A crash leaves the old file or the new one, never a torn one, and never
//! a file whose name was lost with the directory's page cache.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// Why a file of governor's state (the lease store, the request book, the wall-clock mark,
/// the secret-key registry) could not be read or saved. One type for all of them: they live
/// in the daemon's state directory and operators read their errors the same way.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("lease store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "lease store {path}: not a lease record ({why}); move it out of the store directory \
         (the daemon leaves it alone meanwhile)"
    )]
    Corrupt { path: PathBuf, why: String },
    #[error("lease store: {0}")]
    Read(#[from] super::files::ReadError),
}

/// The directory `path` lies in (`.` for a bare name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Syncs the directory `dir`, so that a name just created or renamed in it survives a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` (file mode `mode`) atomically: a temporary file beside it,
/// written and synced, renamed over `path`, then the directory synced. On failure the
/// temporary file is removed and `path` is as it was.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let tmp: PathBuf = dir_of(path).join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir_of(path))
}

/// Creates `path` with `bytes` (file mode `mode`), refusing one that exists
/// (`ErrorKind::AlreadyExists`), then syncs the file and its directory.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    sync_dir(dir_of(path))
}

/// Points the symlink `dir/name` at `text` atomically: a new symlink renamed over the old
/// one. For bpffs, which keeps pins' metadata in symlinks, refuses names with a dot, and
/// has nothing to sync; the temporary name is `NAME-new-PID`.
pub fn replace_symlink(dir: &Path, name: &str, text: &str) -> Result<(), (PathBuf, io::Error)> {
    let tmp = dir.join(format!("{name}-new-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(text, &tmp).map_err(|e| (tmp.clone(), e))?;
    let target = dir.join(name);
    fs::rename(&tmp, &target).map_err(|e| (target, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch() -> PathBuf {
        crate::host::scratch(&format!("write-{:?}", std::thread::current().id()))
    }

    #[test]
    fn replace_swaps_contents_and_leaves_no_temporary() {
        let d = scratch();
        let p = d.join("a.json");
        replace(&p, b"one", 0o600).unwrap();
        replace(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replace_into_a_missing_directory_fails_and_leaves_nothing() {
        let d = scratch();
        let p = d.join("missing").join("a.json");
        assert!(replace(&p, b"x", 0o600).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn create_new_refuses_an_existing_file() {
        let d = scratch();
        let p = d.join("k");
        create_new(&p, b"one", 0o644).unwrap();
        let e = create_new(&p, b"two", 0o644).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replace_symlink_repoints() {
        let d = scratch();
        replace_symlink(&d, "manifest", "gen-1").unwrap();
        replace_symlink(&d, "manifest", "gen-2").unwrap();
        assert_eq!(
            fs::read_link(d.join("manifest")).unwrap(),
            PathBuf::from("gen-2")
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
