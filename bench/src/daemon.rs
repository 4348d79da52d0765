//! Starting and stopping `governor daemon` for the "with governor" blocks. Its log goes to a
//! file (JSON lines), so a busy log can never block it, and is shown when it fails to start.

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

/// A running daemon; killed if dropped without [`Daemon::stop`].
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `governor daemon` on `policy` with its log in `log`, on CPU `cpu`, and waits
    /// until it reports that it enforces (its ready file).
    pub fn start(governor: &Path, policy: &Path, log: &Path, cpu: usize) -> Result<Daemon> {
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
                return Ok(());
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
        }
    }
}
