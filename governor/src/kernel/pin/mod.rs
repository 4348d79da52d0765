//! Enforcement that survives the daemon: every link, program and map of a running daemon is
//! pinned in a bpf filesystem, so the kernel keeps enforcing when the daemon stops or dies.
//!
//! Layout of the pin directory (default [`DEFAULT_PIN_DIR`]; the whole directory belongs to
//! governor):
//!
//! ```text
//! /sys/fs/bpf/governor/
//!   manifest            symlink whose target is the manifest text (see [`Manifest`])
//!   owner, lock-<n>/    the lock's owner record and later lock objects (`super::pin_lock`)
//!   gen-000007/         one generation: what one daemon loaded
//!     links/lsm-<hook>             BPF-LSM links (one per hook)
//!     links/net-<prog>-cg<id>      cgroup sock_addr links (one per program and cgroup)
//!     progs/<program>              the programs
//!     maps/<MAP>                   the maps (bpftool map dump pinned …)
//! ```
//!
//! A bpf filesystem holds only pins, directories and symlinks, not regular files, so the
//! manifest is a symlink: it is replaced atomically (a new symlink renamed over the old one)
//! and read with readlink(2).
//!
//! # Adoption: replace, then unpin
//!
//! A daemon starting on a pin directory that holds a previous generation does not reuse any of
//! it. It loads and verifies fresh programs, fills fresh maps from its own policy, attaches its
//! links (from here both generations run: an operation is refused if either refuses, so there
//! is no gap), pins its own generation, points the manifest at it, and only then removes
//! every other entry of the directory. Removing a link's last pin detaches it; the daemon then
//! checks that none of the old links, nor the programs behind them, is still in the kernel.
//!
//! Why not reuse the pinned maps: a map's contents are the policy of the daemon that filled
//! it. Reconciling them entry by entry with a new policy is where a stale rule would survive or
//! a rule would briefly vanish; filling fresh maps makes the new daemon's policy, and only it,
//! what is enforced once it reports ready. Everything the daemon itself writes into the kernel
//! (agents, rules, its own pid for the self-protection rules) is written by the new daemon;
//! its event ring buffer is the new one, which it reads from then on. (What the old rings
//! still hold is drained into the lineage before the old pins go: `crate::daemon::takeover`.) It
//! also makes a pin set
//! left by a different governor build harmless: nothing of it is interpreted beyond the
//! manifest text, so an incompatible layout is replaced whole, never half-adopted.
//!
//! A daemon that dies at any point leaves enforcement in place: before its links are pinned,
//! its unpinned links die with it and the previous generation still enforces; after, its
//! generation enforces and the next daemon replaces whatever it finds.
//!
//! One daemon at a time: the daemon holds an exclusive flock(2) on the pin directory for its
//! whole life (the lock dies with the process, SIGKILL included), and records itself as the
//! lock's owner. `governor unload` takes the same lock, so it refuses while a daemon runs: that
//! daemon's open links would keep enforcing after the pins were gone. A lock held by anything
//! but a live daemon never blocks either of them ([`super::pin_lock`]).
//!
//! The folder owns the pin directory: this file the directory, its generations, adoption and
//! unload; `manifest.rs` the manifest text; `bpffs.rs` the bpf filesystem underneath (is it
//! one, what a pin is, which links and programs it holds, waiting for them to leave the kernel).
//! May import: `super::pin_lock` (the directory's lock), `crate::host` (the durable writer),
//! aya's link types; nothing of the daemon's. Imported by the loader, takeover and `unload`.

mod bpffs;
mod manifest;

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::programs::links::{FdLink, PinnedLink};

use super::pin_lock::{self, Lock};
use bpffs::{ensure_bpffs, entries, link_ids, reject_mount_root, remove, wait_detached, Ids};
pub(crate) use bpffs::{fs_type, pinned_links, walk_link_pins};
pub use manifest::Manifest;

/// Where the daemon pins by default.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/governor";
/// The usual bpffs mount point; the daemon mounts bpffs here if it is not yet mounted and the
/// pin directory lies below it.
const BPFFS_MOUNT: &str = "/sys/fs/bpf";
/// `statfs.f_type` of a bpf filesystem.
pub(crate) const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Version of the layout described in the module doc.
pub const FORMAT: u32 = 1;
/// First word of the manifest text.
const MAGIC: &str = "governor-pins";
const MANIFEST: &str = "manifest";
const GEN_PREFIX: &str = "gen-";
/// How long a daemon waits for another to finish mounting bpffs.
const MOUNT_GUARD_WAIT: Duration = Duration::from_secs(2);
/// How long retired links may take to leave the kernel.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("pin directory {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error(
        "pin directory {0} is not on a bpf filesystem: mount one (`mount -t bpf bpf {BPFFS_MOUNT}`) \
         or pass a --pin-dir below one"
    )]
    NotBpffs(PathBuf),
    #[error("mounting a bpf filesystem on {BPFFS_MOUNT} for the pins: {0}")]
    Mount(io::Error),
    #[error(
        "pin directory {0} is the root of a bpf filesystem; governor replaces everything in its pin \
         directory, so give it a directory of its own (e.g. {0}/governor)"
    )]
    MountRoot(PathBuf),
    #[error(
        "pin directory {path} is in use by a running governor daemon{holder}; stop it first \
         (SIGTERM: enforcement stays pinned)"
    )]
    Busy { path: PathBuf, holder: String },
    #[error("pinning {what} at {path}: {error}")]
    Pin {
        what: String,
        path: PathBuf,
        error: aya::pin::PinError,
    },
    #[error(
        "removed the pins of {path}, but {0} of their links or programs are still in the kernel \
         after {1:?} (ids {2:?}): some process holds them open",
        .ids.len(), RETIRE_TIMEOUT, .ids
    )]
    StillAttached { path: PathBuf, ids: Vec<u32> },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PinError + '_ {
    move |error| PinError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What a pin directory held before this daemon.
#[derive(Debug)]
pub enum Previous {
    /// Nothing: the first daemon on this directory (or after `governor unload`).
    Empty,
    /// A generation this layout describes (any governor build that writes this format).
    Governor(Manifest),
    /// Entries without a manifest we understand: an older or newer layout, or a daemon that
    /// died before writing its manifest. Replaced whole.
    Unknown { reason: String, entries: usize },
}

/// The pin directory, locked for this process.
#[derive(Debug)]
pub struct PinDir {
    dir: PathBuf,
    /// Holds the lock for as long as this value lives.
    lock: Lock,
    pub previous: Previous,
    /// The generation this process pins into, once [`PinDir::new_generation`] made it.
    current: Option<PathBuf>,
}

/// One generation's directories.
#[derive(Debug)]
pub struct Generation {
    pub number: u64,
    pub dir: PathBuf,
}

impl Generation {
    pub fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }
    pub fn progs(&self) -> PathBuf {
        self.dir.join("progs")
    }
    pub fn links(&self) -> PathBuf {
        self.dir.join("links")
    }
}

/// What retiring the previous generation removed.
#[derive(Debug, Default)]
pub struct Retired {
    /// Entries of the pin directory removed (generation directories, stray pins).
    pub entries: Vec<String>,
    /// Links that were detached by removing their pins.
    pub links: usize,
}

impl PinDir {
    /// Makes sure `dir` is a directory on a bpf filesystem (mounting bpffs on /sys/fs/bpf if
    /// `dir` lies below it and nothing is mounted there), locks it and reads what it holds.
    pub fn open(dir: &Path) -> Result<PinDir, PinError> {
        ensure_bpffs(dir)?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        reject_mount_root(dir)?;
        let lock = pin_lock::acquire(dir)?;
        let previous = read_previous(dir)?;
        Ok(PinDir {
            dir: dir.to_path_buf(),
            lock,
            previous,
            current: None,
        })
    }

    /// Opens and locks an existing pin directory for `governor unload`; `None` if there is
    /// nothing to unload (no such directory).
    pub fn open_existing(dir: &Path) -> Result<Option<PinDir>, PinError> {
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(dir)(e)),
            Ok(_) => {}
        }
        if fs_type(dir).map_err(io_err(dir))? != BPF_FS_MAGIC {
            return Err(PinError::NotBpffs(dir.to_path_buf()));
        }
        reject_mount_root(dir)?;
        let lock = pin_lock::acquire(dir)?;
        let previous = read_previous(dir)?;
        Ok(Some(PinDir {
            dir: dir.to_path_buf(),
            lock,
            previous,
            current: None,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Who held the lock this process bypassed (not a daemon), if it had to.
    pub fn lock_bypassed(&self) -> Option<&str> {
        self.lock.bypassed.as_deref()
    }

    /// Creates the directories of the next generation (numbered after every generation
    /// present), empty.
    pub fn new_generation(&mut self) -> Result<Generation, PinError> {
        let mut last = match &self.previous {
            Previous::Governor(m) => m.generation,
            _ => 0,
        };
        for name in entries(&self.dir)? {
            if let Some(n) = name
                .strip_prefix(GEN_PREFIX)
                .and_then(|n| n.parse::<u64>().ok())
            {
                last = last.max(n);
            }
        }
        let number = last + 1;
        let dir = self.dir.join(format!("{GEN_PREFIX}{number:06}"));
        let generation = Generation { number, dir };
        for d in [generation.maps(), generation.progs(), generation.links()] {
            std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        self.current = Some(generation.dir.clone());
        Ok(generation)
    }

    /// Every generation directory in the pin directory (number and path), this process's
    /// own included once it made one.
    pub fn generations(&self) -> Vec<Generation> {
        let mut out: Vec<Generation> = entries(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| {
                let number = name.strip_prefix(GEN_PREFIX)?.parse::<u64>().ok()?;
                Some(Generation {
                    number,
                    dir: self.dir.join(&name),
                })
            })
            .collect();
        out.sort_by_key(|g| g.number);
        out
    }

    /// The generation this process pinned last (or is pinning), if any.
    pub fn current(&self) -> Option<&Path> {
        self.current.as_deref()
    }

    /// Removes `failed`, a generation that did not go live (its manifest was never written),
    /// with whatever it pinned, and makes `restore` this process's generation again.
    pub fn discard(
        &mut self,
        failed: &Generation,
        restore: Option<PathBuf>,
    ) -> Result<(), PinError> {
        self.current = restore;
        match std::fs::symlink_metadata(&failed.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            _ => remove(&failed.dir),
        }
    }

    /// Points the manifest at `manifest`'s generation, atomically: a new symlink renamed over
    /// the old one. (bpffs refuses names with a dot: no `.tmp` names.)
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), PinError> {
        crate::host::write::replace_symlink(&self.dir, MANIFEST, &manifest.text())
            .map_err(|(path, e)| io_err(&path)(e))
    }

    /// Removes every entry of the pin directory except the manifest and this process's
    /// generation, then waits until the links those entries pinned have left the kernel.
    pub fn retire_others(&self) -> Result<Retired, PinError> {
        let keep: Option<&Path> = self.current.as_deref();
        let mut doomed = Vec::new();
        let lock = format!("{}{}", pin_lock::LOCK_PREFIX, self.lock.object);
        for name in entries(&self.dir)? {
            let path = self.dir.join(&name);
            if name == MANIFEST || name == pin_lock::OWNER || name == lock {
                continue;
            }
            if Some(path.as_path()) == keep {
                continue;
            }
            doomed.push((name, path));
        }
        let mut ids = Ids::default();
        for (_, path) in &doomed {
            link_ids(path, &mut ids);
        }
        let mut retired = Retired {
            links: ids.links.len(),
            ..Retired::default()
        };
        for (name, path) in doomed {
            remove(&path)?;
            retired.entries.push(name);
        }
        wait_detached(&self.dir, &ids)?;
        Ok(retired)
    }

    /// `governor unload`: removes every pin (links first, so enforcement ends before the maps
    /// go), the manifest and the directory itself; returns the removed entries and how many
    /// links were detached.
    pub fn unload(self) -> Result<Retired, PinError> {
        let mut ids = Ids::default();
        link_ids(&self.dir, &mut ids);
        let mut retired = Retired {
            links: ids.links.len(),
            ..Retired::default()
        };
        for name in entries(&self.dir)? {
            let links = self.dir.join(&name).join("links");
            if links.is_dir() {
                remove(&links)?;
            }
        }
        for name in entries(&self.dir)? {
            remove(&self.dir.join(&name))?;
            retired.entries.push(name);
        }
        wait_detached(&self.dir, &ids)?;
        std::fs::remove_dir(&self.dir).map_err(io_err(&self.dir))?;
        Ok(retired)
    }
}

/// Pins `link` at `dir/name`; the returned pin keeps the link's fd (dropping it does not detach).
pub fn pin_link(dir: &Path, name: &str, link: FdLink) -> Result<PinnedLink, PinError> {
    let path = dir.join(name);
    link.pin(&path).map_err(|error| PinError::Pin {
        what: format!("link {name}"),
        path,
        error,
    })
}

/// Hash of the embedded eBPF object (FNV-1a, 64 bits), as hex: the build identity written into
/// the manifest.
pub fn build_id(object: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in object {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn read_previous(dir: &Path) -> Result<Previous, PinError> {
    // The lock's bookkeeping is not enforcement.
    let names: Vec<String> = entries(dir)?
        .into_iter()
        .filter(|n| n != pin_lock::OWNER && !n.starts_with(pin_lock::LOCK_PREFIX))
        .collect();
    if names.is_empty() {
        return Ok(Previous::Empty);
    }
    let reason = match std::fs::read_link(dir.join(MANIFEST)) {
        Ok(text) => match Manifest::parse(&text.to_string_lossy()) {
            Ok(m) => return Ok(Previous::Governor(m)),
            Err(e) => e,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => "no manifest".to_owned(),
        Err(e) => format!("manifest unreadable: {e}"),
    };
    Ok(Previous::Unknown {
        reason,
        entries: names.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_tells_objects_apart() {
        assert_eq!(build_id(b"abc"), build_id(b"abc"));
        assert_ne!(build_id(b"abc"), build_id(b"abd"));
        assert_eq!(build_id(b"").len(), 16);
    }
}
