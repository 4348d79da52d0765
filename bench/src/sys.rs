//! The few system facilities the driver needs: root and BPF-LSM checks, cgroup v2 moves, CPU
//! pinning, and facts about the machine for the report.

use std::{fs, io, path::PathBuf};

use anyhow::{bail, Context, Result};

/// Where cgroup v2 is mounted: `/sys/fs/cgroup` in the VM; a host may mount it elsewhere
/// (this development host: `/sys/fs/cgroup/unified`).
pub fn cgroup_root() -> PathBuf {
    fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                let (_, dir, kind) = (f.next()?, f.next()?, f.next()?);
                (kind == "cgroup2").then(|| PathBuf::from(dir))
            })
        })
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
}

/// Fails unless running as root.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("governor-bench must run as root (cargo xtask bench runs it as root)");
    }
    Ok(())
}

/// Fails unless BPF-LSM is active.
pub fn require_bpf_lsm() -> Result<()> {
    let lsm = fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    if !lsm.split(',').any(|l| l.trim() == "bpf") {
        bail!(
            "BPF-LSM is not active (LSMs: {lsm:?}); run the benchmark with `cargo xtask bench`, \
             which boots a kernel that has it"
        );
    }
    Ok(())
}

/// A cgroup v2 directory, by path relative to [`cgroup_root`].
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub rel: String,
}

impl Cgroup {
    /// The cgroup at `rel`, created if missing.
    pub fn create(rel: &str) -> Result<Cgroup> {
        let cg = Cgroup {
            rel: rel.to_owned(),
        };
        fs::create_dir_all(cg.path())
            .with_context(|| format!("creating cgroup {}", cg.path().display()))?;
        Ok(cg)
    }

    /// The cgroup this process is in now (from `/proc/self/cgroup`).
    pub fn current() -> Result<Cgroup> {
        let text = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
        let rel = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .context("/proc/self/cgroup has no cgroup v2 entry (0::)")?;
        Ok(Cgroup {
            rel: rel.trim_start_matches('/').to_owned(),
        })
    }

    pub fn path(&self) -> PathBuf {
        cgroup_root().join(&self.rel)
    }

    /// Moves process `pid` (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) -> Result<()> {
        let procs = self.path().join("cgroup.procs");
        fs::write(&procs, pid.to_string())
            .with_context(|| format!("moving process {pid} into {}", procs.display()))
    }

    /// Removes the (empty) cgroup.
    pub fn remove(&self) -> Result<()> {
        fs::remove_dir(self.path())
            .with_context(|| format!("removing cgroup {}", self.path().display()))
    }
}

/// Online CPUs.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Pins the calling thread (and the processes it spawns later) to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // touch the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("pinning to CPU {cpu}"));
        }
    }
    Ok(())
}

/// `uname -r`.
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

/// The first `model name` in /proc/cpuinfo.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `BPF_PROG_TYPE_LSM` (linux/bpf.h): the statistics reader lists these, the floor loads them.
pub const BPF_PROG_TYPE_LSM: u32 = 29;

/// The bpf(2) system call with `attr`, a `union bpf_attr` prefix (the kernel accepts a
/// shorter one, zero-padded beyond what the command uses): its non-negative result.
pub fn bpf<A>(cmd: i64, attr: &mut A) -> io::Result<i64> {
    // SAFETY: the kernel reads and writes at most size_of::<A>() bytes at `attr`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut A).cast::<u8>(),
            std::mem::size_of::<A>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}
