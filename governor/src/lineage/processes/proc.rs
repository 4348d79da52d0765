//! One process as `/proc` shows it ([`read_proc`]: stat, status, cgroup, exe, cmdline, cwd),
//! and where the tracker finds the host's `/proc` and cgroups ([`Host`]: the real ones, or a
//! test's fake tree).

use std::path::{Path, PathBuf};

/// Where the tracker reads the host's processes and cgroups (the real ones, or a test's
/// fake tree).
#[derive(Debug, Clone)]
pub struct Host {
    /// `/proc`.
    pub proc: PathBuf,
    /// The cgroup v2 mount.
    pub cgroup2: PathBuf,
    /// Nanoseconds per clock tick of `/proc/PID/stat` times.
    pub tick_ns: u64,
}

impl Host {
    /// This host: `/proc`, the cgroup v2 mount at `cgroup2`, `sysconf(_SC_CLK_TCK)`.
    pub fn real(cgroup2: &Path) -> Host {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Host {
            proc: PathBuf::from("/proc"),
            cgroup2: cgroup2.to_owned(),
            tick_ns: 1_000_000_000 / u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100),
        }
    }
}

/// A process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Start time, boot ns at tick resolution.
    pub start_ns: u64,
    pub uid: u32,
    /// Its cgroup v2 path, relative to the mount (no leading `/`).
    pub cgroup: PathBuf,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unexpected format ({what})")]
    Format { path: PathBuf, what: &'static str },
}

/// Reads process `pid` from `host.proc`: stat (ppid, start time), status (real uid), cgroup
/// (v2 path), and, if readable, exe, cmdline and cwd.
pub fn read_proc(host: &Host, pid: u32) -> Result<ProcInfo, ProcError> {
    let dir = host.proc.join(pid.to_string());
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| ProcError::Io { path, source })
    };
    let bad = |name: &str, what| ProcError::Format {
        path: dir.join(name),
        what,
    };
    let stat = read("stat")?;
    let stat = String::from_utf8_lossy(&stat);
    // "PID (COMM) STATE PPID ..."; COMM may hold spaces and parentheses.
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| bad("stat", "no `)` after comm"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields
        .get(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| bad("stat", "field 4 (ppid)"))?;
    let ticks: u64 = fields
        .get(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| bad("stat", "field 22 (starttime)"))?;
    let status = read("status")?;
    let uid = String::from_utf8_lossy(&status)
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| bad("status", "Uid line"))?;
    let cgroup = read("cgroup")?;
    let cgroup = String::from_utf8_lossy(&cgroup)
        .lines()
        .find_map(|l| {
            l.strip_prefix("0::")
                .map(|p| PathBuf::from(p.trim_start_matches('/')))
        })
        .ok_or_else(|| bad("cgroup", "no cgroup v2 (`0::`) line"))?;
    let link = |name: &str| {
        std::fs::read_link(dir.join(name))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    };
    let argv = read("cmdline")
        .map(|b| {
            let b = b.strip_suffix(&[0]).unwrap_or(&b);
            if b.is_empty() {
                Vec::new()
            } else {
                b.split(|&c| c == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            }
        })
        .unwrap_or_default();
    Ok(ProcInfo {
        pid,
        ppid,
        start_ns: ticks.saturating_mul(host.tick_ns),
        uid,
        cgroup,
        exe: link("exe"),
        argv,
        cwd: link("cwd"),
    })
}
