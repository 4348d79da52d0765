//! Operators' secret key files registered with the daemon (`governor key generate` on a host
//! with a live daemon, or `governor key protect FILE`). A secret key signs leases: an agent
//! that reads one can authorize itself. Each registered file is protected from agents like
//! governor's own directories (`RULE_SELF`: every file class, reads included, whatever the
//! policy says), from the moment it is registered and after every restart: the list is kept
//! in `<state>/secret-keys.json`.
//!
//! [`Registry`] keeps the list; [`own_with`] turns it into entries beside governor's own
//! directories for `policy::compile`; [`Guard`] registers a file and writes its protection
//! into the enforcing generation at once (`Reloader::protect_own`).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use serde::{Deserialize, Serialize};

use crate::{
    api::protocol::ErrorCode,
    host::dirs::OwnDir,
    host::files,
    leases::{clock, store},
};

/// File name of the registry in the state directory.
pub const FILE: &str = "secret-keys.json";
/// Most files that may be registered (each is one entry of the kernel's protected map).
pub const MAX_FILES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "`{0}` is not an absolute path; give the secret key file's full path (e.g. \
         ~/.config/governor/keys/ID.key expanded)"
    )]
    NotAbsolute(String),
    #[error("{path}: {source}; give the path of an existing secret key file")]
    Missing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file; give the path of the secret key file itself")]
    NotAFile { path: PathBuf },
    #[error(
        "{MAX_FILES} secret key files are registered already; remove keys that are no longer \
         used from {0} (one entry each) and restart the daemon"
    )]
    Full(PathBuf),
    #[error("{path}: not governor's list of secret key files ({why}); fix or remove it")]
    Corrupt { path: PathBuf, why: String },
    #[error("{0}")]
    Read(#[from] files::ReadError),
    #[error("{0}")]
    Store(#[from] store::StoreError),
}

/// One registered file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// Canonical path (symlinks resolved when it was registered).
    pub path: PathBuf,
    pub by_uid: u32,
    /// Unix milliseconds.
    pub at_ms: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OnDisk {
    files: Vec<Registered>,
}

/// The registered files, as kept in the state directory.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    files: Vec<Registered>,
}

impl Registry {
    /// Reads the registry in `state_dir` (none yet: empty).
    pub fn open(state_dir: &Path) -> Result<Registry, SecretError> {
        let path = state_dir.join(FILE);
        let files = match files::read(&path, files::STATE) {
            Ok(bytes) => {
                serde_json::from_slice::<OnDisk>(&bytes)
                    .map_err(|e| SecretError::Corrupt {
                        path: path.clone(),
                        why: e.to_string(),
                    })?
                    .files
            }
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Registry { path, files })
    }

    pub fn files(&self) -> &[Registered] {
        &self.files
    }

    /// Registers the file at `path` (absolute; a regular file) for `uid`, saving the list;
    /// the canonical path, and whether it was new.
    pub fn register(&mut self, path: &str, uid: u32) -> Result<(PathBuf, bool), SecretError> {
        if !Path::new(path).is_absolute() {
            return Err(SecretError::NotAbsolute(path.to_owned()));
        }
        let real = std::fs::canonicalize(path).map_err(|source| SecretError::Missing {
            path: PathBuf::from(path),
            source,
        })?;
        let meta = std::fs::metadata(&real).map_err(|source| SecretError::Missing {
            path: real.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(SecretError::NotAFile { path: real });
        }
        if self.files.iter().any(|f| f.path == real) {
            return Ok((real, false));
        }
        if self.files.len() >= MAX_FILES {
            return Err(SecretError::Full(self.path.clone()));
        }
        let mut next = self.files.clone();
        next.push(Registered {
            path: real.clone(),
            by_uid: uid,
            at_ms: clock::wall_ms(),
        });
        let bytes = serde_json::to_vec_pretty(&OnDisk {
            files: next.clone(),
        })
        .map_err(|e| SecretError::Corrupt {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        store::write_atomic(&self.path, &bytes)?;
        self.files = next;
        Ok((real, true))
    }
}

/// governor's own directories (`own`) followed by every registered secret file that is a
/// regular file now: what `policy::compile` protects with `RULE_SELF`. A registered file
/// that is gone is left out and logged (a new file at its path is protected again).
pub fn own_with(own: &[OwnDir], registry: &Mutex<Registry>) -> Vec<OwnDir> {
    let registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = own.to_vec();
    for f in registry.files() {
        match std::fs::metadata(&f.path) {
            Ok(meta) if meta.is_file() => out.push(OwnDir {
                what: "secret key",
                flag: "state-dir",
                path: f.path.clone(),
                mode: meta.mode() & 0o7777,
                connectable: false,
            }),
            Ok(_) => tracing::warn!(file = %f.path.display(),
                "a registered secret key file is no longer a regular file; not protected"),
            Err(e) => tracing::warn!(file = %f.path.display(), error = %e,
                "a registered secret key file is gone; not protected"),
        }
    }
    out
}

impl SecretError {
    /// The admin reply's code: the request's fault, or the daemon's.
    pub fn code(&self) -> ErrorCode {
        match self {
            SecretError::NotAbsolute(_)
            | SecretError::Missing { .. }
            | SecretError::NotAFile { .. }
            | SecretError::Full(_) => ErrorCode::Rejected,
            SecretError::Corrupt { .. } | SecretError::Read(_) | SecretError::Store(_) => {
                ErrorCode::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        crate::host::scratch(&format!("secrets-{name}"))
    }

    #[test]
    fn registered_files_survive_a_restart_and_join_the_own_entries() {
        let dir = scratch("persist");
        let key = dir.join("k.key");
        std::fs::write(&key, "secret").expect("write key");
        std::os::unix::fs::symlink(&key, dir.join("link.key")).expect("symlink");
        let mut r = Registry::open(&dir).expect("open");
        assert!(r.files().is_empty());
        let (real, new) = r
            .register(&key.display().to_string(), 1000)
            .expect("register");
        assert!(new && real == std::fs::canonicalize(&key).expect("canon"));
        // Through a link it is the same file: not registered twice.
        let (again, new) = r
            .register(&dir.join("link.key").display().to_string(), 0)
            .expect("again");
        assert!(!new && again == real);
        // A restarted daemon reads it back.
        let reopened = Registry::open(&dir).expect("reopen");
        assert_eq!(reopened.files().len(), 1);
        assert_eq!(reopened.files()[0].by_uid, 1000);
        let own = own_with(&[], &Mutex::new(reopened));
        assert_eq!(own.len(), 1);
        assert_eq!((own[0].what, own[0].path.clone()), ("secret key", real));
        assert!(!own[0].connectable);
        // A registered file that is gone is left out.
        std::fs::remove_file(&key).expect("rm");
        assert!(own_with(&[], &Mutex::new(Registry::open(&dir).expect("open"))).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_paths_are_refused_with_what_to_do() {
        let dir = scratch("bad");
        let mut r = Registry::open(&dir).expect("open");
        let e = r.register("keys/k.key", 0).unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
        let e = r
            .register(&dir.join("nope.key").display().to_string(), 0)
            .unwrap_err();
        assert!(e.to_string().contains("nope.key"), "{e}");
        let e = r.register(&dir.display().to_string(), 0).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(r.files().is_empty());
        assert!(!dir.join(FILE).exists(), "nothing saved");
        // A damaged list is an error naming it, not an empty list.
        std::fs::write(dir.join(FILE), "{").expect("write");
        let e = Registry::open(&dir).unwrap_err();
        assert!(e.to_string().contains(FILE), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
