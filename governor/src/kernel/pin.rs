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

use std::{
    collections::BTreeSet,
    ffi::CString,
    fs::File,
    io,
    os::unix::{ffi::OsStrExt, fs::MetadataExt, io::AsRawFd},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::programs::links::{FdLink, PinnedLink};

use super::pin_lock::{self, Lock};

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

/// What a generation's manifest says about it. Text form, one line:
/// `governor-pins format=1 generation=7 build=<hex> version=0.1.0 pid=123 lsm=36 net=12
/// policy=<version>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub generation: u64,
    /// Hash of the embedded eBPF object: equal builds have equal programs and map layouts.
    pub build: String,
    pub version: String,
    /// The daemon that pinned it.
    pub pid: u32,
    /// Pinned BPF-LSM links and network links.
    pub lsm: usize,
    pub net: usize,
    /// Version of the policy its programs enforce (what its events' agent and rule ids
    /// refer to); absent in manifests of governors before it.
    pub policy: Option<String>,
}

impl Manifest {
    pub fn text(&self) -> String {
        let policy = self
            .policy
            .as_ref()
            .map_or_else(String::new, |p| format!(" policy={p}"));
        format!(
            "{MAGIC} format={} generation={} build={} version={} pid={} lsm={} net={}{policy}",
            self.format, self.generation, self.build, self.version, self.pid, self.lsm, self.net
        )
    }

    /// Parses the text form; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut words = text.split_whitespace();
        if words.next() != Some(MAGIC) {
            return Err(format!("not a governor manifest: {text:?}"));
        }
        let mut m = Manifest {
            format: 0,
            generation: 0,
            build: String::new(),
            version: String::new(),
            pid: 0,
            lsm: 0,
            net: 0,
            policy: None,
        };
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("manifest word {word:?} is not key=value"))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("manifest {key}={v:?}"))
            };
            match key {
                "format" => m.format = num(value)? as u32,
                "generation" => m.generation = num(value)?,
                "build" => m.build = value.to_owned(),
                "version" => m.version = value.to_owned(),
                "pid" => m.pid = num(value)? as u32,
                "lsm" => m.lsm = num(value)? as usize,
                "net" => m.net = num(value)? as usize,
                "policy" => m.policy = Some(value.to_owned()),
                // A later format may add words; `format` decides whether we understand it.
                _ => {}
            }
        }
        if m.format != FORMAT {
            return Err(format!(
                "manifest format {} (this governor writes format {FORMAT})",
                m.format
            ));
        }
        Ok(m)
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

pub(crate) fn fs_type(path: &Path) -> io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: statfs(2) on a NUL-terminated path into a zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

/// The deepest existing ancestor of `path` (itself included).
fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

fn ensure_bpffs(dir: &Path) -> Result<(), PinError> {
    let base = existing_ancestor(dir);
    if fs_type(base).map_err(io_err(base))? == BPF_FS_MAGIC {
        return Ok(());
    }
    let mount = Path::new(BPFFS_MOUNT);
    if !dir.starts_with(mount) || !mount.is_dir() {
        return Err(PinError::NotBpffs(dir.to_path_buf()));
    }
    // Two daemons starting at once must not stack two bpf filesystems (the lower one's pins
    // would vanish from view): lock the directory under the mount point, then look again. A
    // process that opens it after the mount gets the new filesystem's root and sees bpffs.
    // Anyone can flock that directory, so the lock is waited for a bounded time only: past
    // it, the admin socket (bound before this) already keeps a second daemon out.
    let _guard = File::open(mount).map_err(io_err(mount))?;
    let deadline = Instant::now() + MOUNT_GUARD_WAIT;
    // SAFETY: flock(2) on an fd this function owns; released when `_guard` is closed.
    while unsafe { libc::flock(_guard.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io_err(mount)(err));
        }
        if Instant::now() > deadline {
            tracing::warn!(mount = BPFFS_MOUNT, holder = %pin_lock::holder_of(mount),
                "{BPFFS_MOUNT} is locked by {}; mounting without waiting longer",
                pin_lock::holder_of(mount));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if fs_type(mount).map_err(io_err(mount))? == BPF_FS_MAGIC {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        mount,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        Some("mode=0700"),
    )
    .map_err(|e| PinError::Mount(e.into()))?;
    tracing::info!(mount = BPFFS_MOUNT, "mounted a bpf filesystem for the pins");
    if fs_type(existing_ancestor(dir)).map_err(io_err(dir))? != BPF_FS_MAGIC {
        return Err(PinError::NotBpffs(dir.to_path_buf()));
    }
    Ok(())
}

/// Refuses a directory that is itself a mount (its parent is on another filesystem).
fn reject_mount_root(dir: &Path) -> Result<(), PinError> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let own = std::fs::metadata(dir).map_err(io_err(dir))?.dev();
    let up = std::fs::metadata(parent).map_err(io_err(parent))?.dev();
    if own != up || fs_type(parent).map_err(io_err(parent))? != BPF_FS_MAGIC {
        return Err(PinError::MountRoot(dir.to_path_buf()));
    }
    Ok(())
}

fn entries(dir: &Path) -> Result<Vec<String>, PinError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
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

/// Ids of every BPF link pinned at or below `path`, and of the programs behind them and
/// pinned there (map pins are skipped).
fn link_ids(path: &Path, ids: &mut Ids) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                link_ids(&e.path(), ids);
            }
        }
    } else if meta.file_type().is_file() {
        match pin_kind(path).as_deref().and_then(std::ffi::OsStr::to_str) {
            Some("anon_inode:bpf-link") => {
                if let Ok(link) = PinnedLink::from_pin(path) {
                    if let Ok(info) = FdLink::from(link).info() {
                        ids.links.insert(info.id());
                        ids.programs.insert(info.program_id());
                    }
                }
            }
            Some("anon_inode:bpf-prog") => {
                if let Ok(info) = aya::programs::ProgramInfo::from_pin(path) {
                    ids.programs.insert(info.id());
                }
            }
            _ => {}
        }
    }
}

/// Ids of every BPF link pinned at or below `path`.
pub(crate) fn pinned_links(path: &Path) -> BTreeSet<u32> {
    let mut ids = Ids::default();
    link_ids(path, &mut ids);
    ids.links
}

/// Calls `f(pin, link id)` for every BPF link pinned at or below `path`, at most `depth`
/// directories down.
pub(crate) fn walk_link_pins(path: &Path, depth: usize, f: &mut dyn FnMut(&Path, u32)) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if depth == 0 {
            return;
        }
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                walk_link_pins(&e.path(), depth - 1, f);
            }
        }
    } else if meta.file_type().is_file()
        && pin_kind(path).is_some_and(|k| k == "anon_inode:bpf-link")
    {
        if let Ok(link) = PinnedLink::from_pin(path) {
            if let Ok(info) = FdLink::from(link).info() {
                f(path, info.id());
            }
        }
    }
}

/// Links and programs that must leave the kernel.
#[derive(Debug, Default)]
struct Ids {
    links: BTreeSet<u32>,
    programs: BTreeSet<u32>,
}

/// What is pinned at `path`: the name of the file behind its fd (`anon_inode:bpf-link`,
/// `anon_inode:bpf-prog`, `anon_inode:bpf-map`).
fn pin_kind(path: &Path) -> Option<std::ffi::OsString> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    /// `union bpf_attr` as BPF_OBJ_GET reads it.
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let attr = ObjGet {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    const BPF_OBJ_GET: libc::c_long = 7;
    // SAFETY: bpf(BPF_OBJ_GET) reads `attr` (and the path it points to, alive in `c`).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &attr as *const ObjGet,
            std::mem::size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us; `OwnedFd` closes it.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(PathBuf::into_os_string)
}

fn remove(path: &Path) -> Result<(), PinError> {
    let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path).map_err(io_err(path))
    } else {
        std::fs::remove_file(path).map_err(io_err(path))
    }
}

/// Waits until none of `ids` is in the kernel: no link, and no program (the kernel releases a
/// link's id before it detaches its program; a program that is gone is attached nowhere).
fn wait_detached(dir: &Path, ids: &Ids) -> Result<(), PinError> {
    if ids.links.is_empty() && ids.programs.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + RETIRE_TIMEOUT;
    loop {
        let alive: Vec<u32> = aya::programs::loaded_links()
            .filter_map(Result::ok)
            .map(|l| l.id())
            .filter(|id| ids.links.contains(id))
            .chain(
                aya::programs::loaded_programs()
                    .filter_map(Result::ok)
                    .map(|p| p.id())
                    .filter(|id| ids.programs.contains(id)),
            )
            .collect();
        if alive.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PinError::StillAttached {
                path: dir.to_path_buf(),
                ids: alive,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            generation: 7,
            build: "00ff00ff00ff00ff".to_owned(),
            version: "0.1.0".to_owned(),
            pid: 4242,
            lsm: 36,
            net: 12,
            policy: Some("56e2aa".to_owned()),
        }
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.text()), Ok(m));
    }

    #[test]
    fn manifest_rejects_foreign_and_other_formats() {
        assert!(Manifest::parse("something else").is_err());
        assert!(Manifest::parse("").is_err());
        let other = sample().text().replace("format=1", "format=2");
        let err = Manifest::parse(&other).unwrap_err();
        assert!(err.contains("format 2"), "{err}");
        assert!(Manifest::parse("governor-pins format=1 generation=x").is_err());
        assert!(Manifest::parse("governor-pins format=1 oops").is_err());
        // Unknown words of the same format are ignored.
        let extra = format!("{} future=1", sample().text());
        assert_eq!(Manifest::parse(&extra), Ok(sample()));
    }

    #[test]
    fn build_id_tells_objects_apart() {
        assert_eq!(build_id(b"abc"), build_id(b"abc"));
        assert_ne!(build_id(b"abc"), build_id(b"abd"));
        assert_eq!(build_id(b"").len(), 16);
    }
}
