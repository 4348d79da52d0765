//! One daemon per pin directory, and a lock nobody else can turn into a refusal to start.
//!
//! A daemon (and `governor unload`) holds an exclusive flock(2) on a *lock object* of the pin
//! directory for its whole life: the directory itself at first, `lock-<n>` directories in it
//! later (see below). Right after taking it, it writes the **owner record**, a symlink
//! `owner` in the pin directory whose target is `governor-lock pid=<pid> start=<ticks>
//! lock=<n>`: its pid, its start time (field 22 of `/proc/<pid>/stat`, clock ticks since
//! boot, so that a reused pid never passes for it) and which lock object it holds.
//!
//! A flock can be taken by any process that can open the object, and a descriptor can be
//! handed to one that cannot; the lock alone therefore never proves that a daemon runs. When
//! the current lock object is held, the starting daemon asks the owner record: only if its
//! pid is alive, started at the recorded time and is a `governor` process does it refuse (a
//! real daemon runs; its open links would keep enforcing). Otherwise the lock is held by
//! something that is not a daemon (it says which process, from `/proc/locks`, when it can
//! tell) and it moves on to the next lock object, `lock-<n+1>`, and records that one. Two
//! real daemons stay mutually exclusive: both go through the same objects in the same order,
//! and the one that loses the race for `lock-<n+1>` finds its winner recorded, alive.
//!
//! A pin directory written by a governor without owner records names its daemon only in the
//! manifest (`pid=`): that pid counts as the owner while it is a live `governor` process.

use std::{
    fs::File,
    io,
    os::unix::{fs::MetadataExt, io::AsRawFd},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::pin::{Manifest, PinError};

/// The owner record's name in the pin directory.
pub const OWNER: &str = "owner";
/// Prefix of the lock objects after the directory itself.
pub const LOCK_PREFIX: &str = "lock-";
/// First word of the owner record.
const MAGIC: &str = "governor-lock";
/// How long a daemon keeps trying when another one is taking the next lock object.
const RACE_WAIT: Duration = Duration::from_secs(5);

/// The lock this process holds; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
    /// Which lock object: 0 is the pin directory, n is `lock-<n>`.
    pub object: u64,
    /// Set when the lock object before it was held by a process that is not a daemon.
    pub bypassed: Option<String>,
}

/// What the owner record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22); 0 when unknown.
    pub start: u64,
    pub lock: u64,
}

impl Owner {
    pub fn text(&self) -> String {
        format!(
            "{MAGIC} pid={} start={} lock={}",
            self.pid, self.start, self.lock
        )
    }

    pub fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        if words.next() != Some(MAGIC) {
            return None;
        }
        let (mut pid, mut start, mut lock) = (None, None, None);
        for w in words {
            let (k, v) = w.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "pid" => pid = u32::try_from(v).ok(),
                "start" => start = Some(v),
                "lock" => lock = Some(v),
                _ => {}
            }
        }
        Some(Owner {
            pid: pid?,
            start: start?,
            lock: lock?,
        })
    }

    /// Whether this owner is a running governor process (the one that wrote the record: the
    /// same pid started at the same time).
    pub fn alive(&self) -> bool {
        let Some(stat) = proc_stat(self.pid) else {
            return false;
        };
        (self.start == 0 || stat.start == self.start) && stat.comm == "governor"
    }
}

/// `comm` and start time of a process, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub start: u64,
}

/// Parses `/proc/<pid>/stat` text: `pid (comm) state ppid ...`, where `comm` may hold spaces
/// and parentheses (the last `)` ends it) and the start time is field 22.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    // Fields from 3 (state) on.
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let start = rest.get(22 - 3)?.parse().ok()?;
    Some(Stat { comm, start })
}

pub fn proc_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Takes the pin directory's lock for this process (see the module doc).
pub fn acquire(dir: &Path) -> Result<Lock, PinError> {
    let me = Owner {
        pid: std::process::id(),
        start: proc_stat(std::process::id()).map_or(0, |s| s.start),
        lock: 0,
    };
    let deadline = Instant::now() + RACE_WAIT;
    let mut bypassed = None;
    loop {
        let recorded = read_owner(dir);
        let current = recorded.as_ref().map_or(0, |o| o.lock);
        let object = lock_object(dir, current)?;
        if let Some(file) = try_flock(&object)? {
            return take(dir, file, current, &me, bypassed);
        }
        // Held. By the daemon the record names?
        let owner = recorded.or_else(|| legacy_owner(dir));
        if let Some(o) = owner.as_ref().filter(|o| o.alive() && o.pid != me.pid) {
            return Err(PinError::Busy {
                path: dir.to_path_buf(),
                holder: format!(" (pid {})", o.pid),
            });
        }
        // By something that is not a live daemon: never a reason not to start.
        let holder = holder_of(&object);
        bypassed.get_or_insert_with(|| holder.clone());
        let next = lock_object(dir, current + 1)?;
        if let Some(file) = try_flock(&next)? {
            tracing::warn!(pin_dir = %dir.display(), lock = %object.display(), holder = %holder,
                "the pin directory's lock is held by {holder}, which is not a governor daemon \
                 (the owner record names none alive); taking {} instead", next.display());
            return take(dir, file, current + 1, &me, bypassed);
        }
        // Another daemon took the next object first: its record names it once written.
        if Instant::now() > deadline {
            return Err(PinError::Busy {
                path: dir.to_path_buf(),
                holder: format!(" ({} is held by {})", next.display(), holder_of(&next)),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Records `me` as the owner of lock object `object`, now held through `file`.
fn take(
    dir: &Path,
    file: File,
    object: u64,
    me: &Owner,
    bypassed: Option<String>,
) -> Result<Lock, PinError> {
    let owner = Owner {
        lock: object,
        ..me.clone()
    };
    write_owner(dir, &owner)?;
    Ok(Lock {
        _file: file,
        object,
        bypassed,
    })
}

/// The lock object `n`: the directory itself, or `lock-<n>` in it (made if missing).
fn lock_object(dir: &Path, n: u64) -> Result<PathBuf, PinError> {
    if n == 0 {
        return Ok(dir.to_path_buf());
    }
    let path = dir.join(format!("{LOCK_PREFIX}{n}"));
    match std::fs::create_dir(&path) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(path),
        Err(error) => Err(PinError::Io { path, error }),
    }
}

/// An exclusive, non-blocking flock on `path`; `None` while another holds it.
fn try_flock(path: &Path) -> Result<Option<File>, PinError> {
    let io = |error| PinError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: flock(2) on an fd this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(io(err))
    }
}

pub fn read_owner(dir: &Path) -> Option<Owner> {
    let text = std::fs::read_link(dir.join(OWNER)).ok()?;
    Owner::parse(&text.to_string_lossy())
}

/// A pin directory without an owner record (a governor from before them): the manifest's pid.
fn legacy_owner(dir: &Path) -> Option<Owner> {
    let text = std::fs::read_link(dir.join("manifest")).ok()?;
    let m = Manifest::parse(&text.to_string_lossy()).ok()?;
    Some(Owner {
        pid: m.pid,
        start: 0,
        lock: 0,
    })
}

/// Replaces the owner record atomically (a new symlink renamed over it; bpffs takes no dots).
fn write_owner(dir: &Path, owner: &Owner) -> Result<(), PinError> {
    crate::host::write::replace_symlink(dir, OWNER, &owner.text())
        .map_err(|(path, error)| PinError::Io { path, error })
}

/// Who holds a flock on `path`, in words: from `/proc/locks`, the pid that took it (which
/// may have exited since, its descriptor living on in another process), and every process
/// that has `path` open; or why that cannot be told.
pub fn holder_of(path: &Path) -> String {
    let Ok(meta) = std::fs::metadata(path) else {
        return "an unknown process".to_owned();
    };
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let dev = meta.dev();
    let pids = flock_holders(&locks, libc::major(dev), libc::minor(dev), meta.ino());
    let mut text = if pids.is_empty() {
        "an unknown process (no FLOCK entry in /proc/locks names it)".to_owned()
    } else {
        pids.iter()
            .map(|&pid| describe_pid(pid))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let open = open_by(dev, meta.ino());
    if !open.is_empty() {
        let who: Vec<String> = open.iter().map(|&p| describe_pid(i64::from(p))).collect();
        text.push_str(&format!("; open by {}", who.join(", ")));
    }
    text
}

/// Pids of the processes (other than this one) with a descriptor open on inode `ino` of
/// device `dev`.
fn open_by(dev: u64, ino: u64) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino));
        if holds && pid != me {
            pids.push(pid);
        }
    }
    pids
}

/// Pids of the FLOCK entries of `/proc/locks` text on inode `ino` of device `major:minor`.
pub fn flock_holders(locks: &str, major: u32, minor: u32, ino: u64) -> Vec<i64> {
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    locks
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            // `1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF` (a blocked waiter has `->`).
            let i = words.iter().position(|w| *w == "FLOCK")?;
            if words.get(1) == Some(&"->") {
                return None;
            }
            let pid = words.get(i + 3)?.parse().ok()?;
            (words.get(i + 4)? == &want).then_some(pid)
        })
        .collect()
}

/// `pid 1234 (comm) in cgroup /x`, as far as `/proc` tells.
pub fn describe_pid(pid: i64) -> String {
    let Ok(pid) = u32::try_from(pid) else {
        return format!("pid {pid} (an open file description lock)");
    };
    let comm = proc_stat(pid).map_or_else(|| "gone".to_owned(), |s| s.comm);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        })
        .unwrap_or_else(|| "?".to_owned());
    format!("pid {pid} ({comm}) in cgroup {cgroup}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_and_rejects_other_text() {
        let o = Owner {
            pid: 42,
            start: 123_456,
            lock: 3,
        };
        assert_eq!(Owner::parse(&o.text()), Some(o));
        assert_eq!(Owner::parse("governor-pins format=1"), None);
        assert_eq!(Owner::parse("governor-lock pid=1 start=2"), None);
        assert_eq!(Owner::parse("governor-lock pid=x start=2 lock=0"), None);
    }

    #[test]
    fn stat_parsing_survives_odd_names() {
        let line = "77 (a) b (c)) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 \
                    1000 100 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                comm: "a) b (c)".to_owned(),
                start: 98765
            })
        );
        assert_eq!(parse_stat("77 (short) S 1"), None);
        // This very process: alive, and not a `governor` process under `cargo test`.
        let me = proc_stat(std::process::id()).expect("own stat");
        assert!(me.start > 0);
        let owner = Owner {
            pid: std::process::id(),
            start: me.start,
            lock: 0,
        };
        assert_eq!(owner.alive(), me.comm == "governor");
        let reused = Owner {
            start: me.start + 1,
            ..owner
        };
        assert!(!reused.alive(), "a different start time is another process");
    }

    #[test]
    fn flock_holders_reads_proc_locks() {
        let locks = "1: FLOCK  ADVISORY  WRITE 4321 00:2a:5678 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 999 00:2a:5678 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 55 00:2a:5678 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 66 00:2a:5679 0 EOF\n";
        assert_eq!(flock_holders(locks, 0, 0x2a, 5678), vec![4321]);
        assert!(flock_holders(locks, 0, 0x2b, 5678).is_empty());
    }

    /// A lock held by a process that is not a daemon (here: this test, through another open
    /// file description, with no owner record) does not block: the next lock object is taken
    /// and recorded; a second taker then finds the recorded owner alive only if it is a
    /// governor process.
    #[test]
    fn a_lock_held_by_a_non_daemon_is_bypassed_and_recorded() {
        let dir = std::env::temp_dir().join(format!("gov-pin-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let squatter = try_flock(&dir).expect("flock").expect("free");
        let lock = acquire(&dir).expect("not blocked by a non-daemon");
        assert_eq!(lock.object, 1);
        assert!(lock.bypassed.is_some());
        let owner = read_owner(&dir).expect("owner record");
        assert_eq!((owner.pid, owner.lock), (std::process::id(), 1));
        drop(lock);
        drop(squatter);
        let again = acquire(&dir).expect("free again");
        assert_eq!(again.object, 1, "the recorded object is tried first");
        assert!(again.bypassed.is_none());
        drop(again);
        // Another process with the directory open is named as holding it.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(File::open(&dir).expect("open dir"))
            .spawn()
            .expect("sleep");
        let said = holder_of(&dir);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            said.contains(&format!("open by pid {} (sleep)", child.id())),
            "{said}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
