//! Starting and stopping `governor daemon` for the "with governor" blocks. Its log goes to a
//! file (JSON lines), so a busy log can never block it, and is shown when it fails to start.
//!
//! Enforcement outlives the daemon (its programs and links are pinned), so stopping one is
//! SIGTERM and then `governor unload` of its pin directory.

use std::{
    fs::{self, File},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// How long a start may take: under QEMU TCG the daemon parses the kernel's BTF and resolves
/// every protected path.
const START_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a log record may lag behind the ready file.
const LOG_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `governor unload` may take (it waits for the links to leave the kernel).
const UNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The daemon's pin directory (its default, given explicitly to unload the same one).
const PIN_DIR: &str = "/sys/fs/bpf/governor";
/// After its ready file, the daemon may still be busy for a while (the first events, the
/// state it writes); the blocks measure it once it has gone quiet, for at most this long.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Quiet: at most this many clock ticks of CPU (user + system) in [`SETTLE_INTERVAL`].
const SETTLE_TICKS: u64 = 1;
const SETTLE_INTERVAL: Duration = Duration::from_millis(500);

/// A running daemon; stopped and unloaded if dropped without [`Daemon::stop`].
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    governor: PathBuf,
}

impl Daemon {
    /// Starts `governor daemon` on `policy` with its log in `log`, on CPU `cpu`, and waits
    /// until it reports that it enforces (its ready file).
    pub fn start(governor: &Path, policy: &Path, log: &Path, cpu: usize) -> Result<Daemon> {
        Daemon::start_with(governor, policy, log, cpu, &[])
    }

    /// [`Daemon::start`] with more `governor daemon` arguments.
    pub fn start_with(
        governor: &Path,
        policy: &Path,
        log: &Path,
        cpu: usize,
        extra: &[&std::ffi::OsStr],
    ) -> Result<Daemon> {
        if Path::new(PIN_DIR).exists() {
            bail!(
                "{PIN_DIR} exists before the daemon starts: enforcement pinned by an earlier \
                 daemon would make a block \"without governor\" meaningless (`governor unload` \
                 removes it)"
            );
        }
        let ready = log.with_extension("ready");
        let _ = fs::remove_file(&ready);
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(governor);
        // The guest sees the host's /etc read-only: governor's config directory (one of its
        // own, always protected) goes next to the log instead.
        let config_dir = log.with_file_name("etc-governor");
        cmd.args(["daemon", "--log-format", "json", "--policy"])
            .arg(policy)
            .arg("--config-dir")
            .arg(&config_dir)
            .arg("--ready-file")
            .arg(&ready)
            .args(["--pin-dir", PIN_DIR])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: the closure only makes async-signal-safe calls (sched_setaffinity).
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} daemon", governor.display()))?;
        let mut d = Daemon {
            child: Some(child),
            log: log.to_owned(),
            governor: governor.to_owned(),
        };
        let started = Instant::now();
        while !ready.exists() {
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!(
                    "governor daemon exited with {status} before enforcing; its log:\n{}",
                    d.log_text()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "governor daemon not ready within {}s; its log:\n{}",
                    START_TIMEOUT.as_secs(),
                    d.log_text()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(d)
    }

    /// Waits until the daemon uses (almost) no CPU, for at most [`SETTLE_TIMEOUT`]; returns
    /// how long that took, or `None` if it never went quiet.
    pub fn settle(&self) -> Result<Option<Duration>> {
        let pid = self.child.as_ref().context("the daemon was stopped")?.id();
        let started = Instant::now();
        let mut last = cpu_ticks(pid)?;
        while started.elapsed() < SETTLE_TIMEOUT {
            thread::sleep(SETTLE_INTERVAL);
            let now = cpu_ticks(pid)?;
            if now - last <= SETTLE_TICKS {
                return Ok(Some(started.elapsed()));
            }
            last = now;
        }
        Ok(None)
    }

    /// The daemon's `enforcing` log record (counts of what it loaded).
    pub fn enforcing(&self) -> Result<Value> {
        self.logged(|m| m == "enforcing", "enforcing")
    }

    /// How many of governor's own directories the daemon protects (its log record that
    /// lists them); they count among its protected paths.
    pub fn own_dirs(&self) -> Result<usize> {
        let v = self.logged(
            |m| m.starts_with("governor's own directories are protected"),
            "governor's own directories are protected",
        )?;
        let dirs = v["dirs"]
            .as_str()
            .with_context(|| format!("no `dirs` in the daemon's log record {v}"))?;
        Ok(dirs.split(", ").filter(|d| !d.is_empty()).count())
    }

    /// The first log record whose message satisfies `pred`; `what` names it in the error.
    /// The daemon's logger may write a record a moment after the ready file appears.
    fn logged(&self, pred: impl Fn(&str) -> bool, what: &str) -> Result<Value> {
        let find = || {
            self.log_text()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["message"].as_str().is_some_and(&pred))
        };
        let started = Instant::now();
        let mut found = find();
        while found.is_none() && started.elapsed() < LOG_TIMEOUT {
            thread::sleep(Duration::from_millis(50));
            found = find();
        }
        found.with_context(|| format!("no `{what}` line in the daemon log:\n{}", self.log_text()))
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_else(|e| format!("({}: {e})", self.log.display()))
    }

    /// Stops the daemon with SIGTERM and waits for it to exit cleanly.
    pub fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        if unsafe { libc::kill(child.id() as i32, libc::SIGTERM) } != 0 {
            bail!(
                "cannot stop governor daemon {} with SIGTERM: {}",
                child.id(),
                std::io::Error::last_os_error()
            );
        }
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "governor daemon exited with {status} on SIGTERM; its log:\n{}",
                        self.log_text()
                    );
                }
                return unload(&self.governor);
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "governor daemon did not stop within {}s of SIGTERM",
                    STOP_TIMEOUT.as_secs()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in `stop`.
            if unsafe { libc::kill(child.id() as i32, libc::SIGTERM) } != 0 {
                // Waiting for a daemon we cannot signal would never end.
                eprintln!(
                    "governor-bench: cannot stop governor daemon {}: {}",
                    child.id(),
                    std::io::Error::last_os_error()
                );
                return;
            }
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if started.elapsed() > STOP_TIMEOUT {
                    if let Err(e) = child.kill() {
                        eprintln!(
                            "governor-bench: cannot kill governor daemon {}: {e}",
                            child.id()
                        );
                        return;
                    }
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
            if let Err(e) = unload(&self.governor) {
                eprintln!("governor-bench: {e:#}");
            }
        }
    }
}

/// `governor unload` of [`PIN_DIR`], within [`UNLOAD_TIMEOUT`].
fn unload(governor: &Path) -> Result<()> {
    let mut child = Command::new(governor)
        .args(["unload", "--pin-dir", PIN_DIR])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} unload", governor.display()))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let out = child.wait_with_output()?;
            if !status.success() || Path::new(PIN_DIR).exists() {
                bail!(
                    "governor unload --pin-dir {PIN_DIR} failed ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            return Ok(());
        }
        if started.elapsed() > UNLOAD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "governor unload --pin-dir {PIN_DIR} did not finish within {}s",
                UNLOAD_TIMEOUT.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// User plus system CPU time of process `pid`, in clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = text
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .with_context(|| format!("{path}: no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 of `rest`.
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("{path}: no field {}", i + 3))
    };
    Ok(tick(11)? + tick(12)?)
}
