//! governor's own directories: its state, its configuration and trusted keys, its runtime
//! directory (home of the admin socket), its bpffs pin directory, and the directory of the
//! request socket agents file lease requests through. Every one is protected against agents
//! for every file class, and all but the request directory for unix-connect too, whatever
//! the policy says (`policy::compile` adds them with `RULE_SELF`). The daemon creates the missing ones before
//! it compiles the policy, since protection is by inode.

use std::{
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Default state directory.
pub const DEFAULT_STATE: &str = "/var/lib/governor";
/// Default configuration and trusted-keys directory.
pub const DEFAULT_CONFIG: &str = "/etc/governor";
/// Default runtime directory (admin socket).
pub const DEFAULT_RUNTIME: &str = "/run/governor";
/// Default bpffs pin directory.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf/governor";
/// File name of the admin socket in the runtime directory.
pub const SOCKET_NAME: &str = "governor.sock";
/// Default directory of the request socket (agents may connect to it, and do nothing else).
pub const DEFAULT_REQUESTS: &str = "/run/governor-requests";
/// File name of the request socket in its directory.
pub const REQUEST_SOCKET_NAME: &str = "request.sock";

#[derive(Debug, thiserror::Error)]
pub enum OwnDirError {
    #[error(
        "governor's {what} directory {path}: {source}; create it (mode {mode:o}, owned by \
         root) or point `--{flag}` at another directory"
    )]
    Create {
        what: &'static str,
        flag: &'static str,
        path: PathBuf,
        mode: u32,
        source: std::io::Error,
    },
    #[error(
        "governor's {what} directory {path} exists but is not a directory; move it away or \
         point `--{flag}` at another directory"
    )]
    NotADir {
        what: &'static str,
        flag: &'static str,
        path: PathBuf,
    },
}

/// One of governor's own directories.
#[derive(Debug, Clone)]
pub struct OwnDir {
    /// "state", "config", "runtime" or "bpffs".
    pub what: &'static str,
    /// The daemon flag that relocates it.
    pub flag: &'static str,
    pub path: PathBuf,
    /// Mode it is created with when missing.
    pub mode: u32,
    /// Agents may connect to unix sockets in it (the request socket's directory).
    pub connectable: bool,
}

/// A directory left unprotected, and why.
pub type Unprotected = (OwnDir, String);

/// governor's own directories.
#[derive(Debug, Clone)]
pub struct OwnDirs {
    pub state: PathBuf,
    pub config: PathBuf,
    pub runtime: PathBuf,
    pub bpffs: PathBuf,
    pub requests: PathBuf,
}

impl Default for OwnDirs {
    fn default() -> Self {
        OwnDirs {
            state: DEFAULT_STATE.into(),
            config: DEFAULT_CONFIG.into(),
            runtime: DEFAULT_RUNTIME.into(),
            bpffs: DEFAULT_BPFFS.into(),
            requests: DEFAULT_REQUESTS.into(),
        }
    }
}

impl OwnDirs {
    /// Every directory, with its name, flag and creation mode.
    pub fn list(&self) -> [OwnDir; 5] {
        let dir = |what, flag, path: &Path, mode| OwnDir {
            what,
            flag,
            path: path.to_owned(),
            mode,
            connectable: false,
        };
        [
            dir("state", "state-dir", &self.state, 0o700),
            dir("config", "config-dir", &self.config, 0o755),
            // Readable so that `--admin-uid` users reach the socket; the daemon checks
            // every peer itself.
            dir("runtime", "runtime-dir", &self.runtime, 0o755),
            dir("bpffs", "bpffs-dir", &self.bpffs, 0o700),
            OwnDir {
                connectable: true,
                ..dir("requests", "request-dir", &self.requests, 0o755)
            },
        ]
    }

    /// The admin socket's path.
    pub fn socket(&self) -> PathBuf {
        self.runtime.join(SOCKET_NAME)
    }

    /// The request socket's path.
    pub fn request_socket(&self) -> PathBuf {
        self.requests.join(REQUEST_SOCKET_NAME)
    }

    /// Creates every missing directory (parents included) with its mode, and returns the
    /// ones to protect. The bpffs directory is left out, with a reason, when its parent is
    /// not a bpffs mount: nothing can be pinned there, and sysfs refuses the `mkdir`.
    pub fn ensure(&self) -> Result<(Vec<OwnDir>, Vec<Unprotected>), OwnDirError> {
        let mut present = Vec::new();
        let mut absent = Vec::new();
        for d in self.list() {
            if d.what == "bpffs" && !d.path.exists() {
                if let Some(why) = not_bpffs(d.path.parent().unwrap_or(Path::new("/"))) {
                    absent.push((d, why));
                    continue;
                }
            }
            ensure_dir(&d)?;
            present.push(d);
        }
        Ok((present, absent))
    }
}

/// Creates `d` if missing; checks it is a directory.
fn ensure_dir(d: &OwnDir) -> Result<(), OwnDirError> {
    let create = |source| OwnDirError::Create {
        what: d.what,
        flag: d.flag,
        path: d.path.clone(),
        mode: d.mode,
        source,
    };
    match std::fs::metadata(&d.path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(OwnDirError::NotADir {
                what: d.what,
                flag: d.flag,
                path: d.path.clone(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(create(e)),
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(d.mode)
        .create(&d.path)
        .map_err(create)?;
    // The umask may have narrowed the mode; set it exactly.
    std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(d.mode)).map_err(create)
}

/// Why `dir` is not on a bpffs mount, or `None` if it is.
fn not_bpffs(dir: &Path) -> Option<String> {
    match nix::sys::statfs::statfs(dir) {
        Ok(fs) if fs.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC => None,
        Ok(_) => Some(format!(
            "{} is not a bpffs mount (mount one with `mount -t bpf bpf {}`)",
            dir.display(),
            dir.display()
        )),
        Err(e) => Some(format!("{}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("governor-own-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn creates_missing_dirs_with_their_modes() {
        let root = scratch("create");
        let dirs = OwnDirs {
            state: root.join("var/lib/governor"),
            config: root.join("etc/governor"),
            runtime: root.join("run/governor"),
            bpffs: root.join("bpf/governor"),
            requests: root.join("run/governor-requests"),
        };
        std::fs::create_dir_all(root.join("bpf")).expect("mkdir");
        let (present, absent) = dirs.ensure().expect("creates");
        // The temporary directory is not a bpffs mount.
        assert_eq!(present.len(), 4, "{present:?}");
        assert_eq!(absent.len(), 1);
        assert!(absent[0].1.contains("not a bpffs mount"), "{absent:?}");
        for d in &present {
            let meta = std::fs::metadata(&d.path).expect("exists");
            assert!(meta.is_dir());
            assert_eq!(
                meta.permissions().mode() & 0o7777,
                d.mode,
                "{}",
                d.path.display()
            );
        }
        assert_eq!(dirs.socket(), root.join("run/governor/governor.sock"));
        // Idempotent.
        dirs.ensure().expect("again");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_file_in_the_way_is_an_error_naming_the_flag() {
        let root = scratch("file");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("state"), "x").expect("write");
        let dirs = OwnDirs {
            state: root.join("state"),
            ..OwnDirs::default()
        };
        let err = dirs.ensure().unwrap_err();
        assert!(matches!(err, OwnDirError::NotADir { .. }), "{err}");
        assert!(err.to_string().contains("--state-dir"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
