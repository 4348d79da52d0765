//! Process helpers: running host commands with readable errors, spawning
//! children that can never outlive xtask (QEMU, virtiofsd), and catching
//! Ctrl-C / SIGTERM / SIGHUP so that those children are cleaned up.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A shell-like rendering of `cmd` for messages ("LLVM_PREFIX=.. cargo install ..").
pub fn display(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), quote(v?))))
        .collect();
    parts.push(quote(cmd.get_program()));
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` and fails unless it exits successfully. Its stdout goes to
/// our stderr: xtask's stdout carries only guest output.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    if let Ok(fd) = io::stderr().as_fd().try_clone_to_owned() {
        cmd.stdout(fd);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; a failure includes its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("`{shown}` failed ({}): {}", out.status, err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when `cmd` can be started and exits successfully (all output discarded).
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A child process tied to xtask: it gets SIGKILL when xtask dies (even by
/// SIGKILL), lives in its own process group (a terminal Ctrl-C reaches only
/// xtask, which then cleans up), and is killed and reaped when dropped.
pub struct Tied {
    name: &'static str,
    child: Child,
    status: Option<ExitStatus>,
    /// Not `Send`: the kernel sends the parent-death signal when the *thread* that forked
    /// exits, so a `Tied` stays on (and is dropped, i.e. killed, by) the thread that spawned
    /// it, which therefore outlives the child.
    _same_thread: std::marker::PhantomData<*const ()>,
}

impl Tied {
    /// Spawns `cmd`, tied to the calling thread (see `_same_thread`).
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Result<Self> {
        // SAFETY: a plain syscall without side effects.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure only calls async-signal-safe libc functions.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // xtask may have died between fork and prctl.
                if libc::getppid() != parent {
                    return Err(io::Error::other("parent exited"));
                }
                if libc::setpgid(0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let shown = display(cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: `{shown}`"))?;
        Ok(Self {
            name,
            child,
            status: None,
            _same_thread: std::marker::PhantomData,
        })
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The exit status if the process has exited (non-blocking).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `grace` for a voluntary exit, then kills; always reaps.
    pub fn shutdown(&mut self, grace: Duration) {
        let until = Instant::now() + grace;
        while self.exited().is_none() && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Tied {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

const CAUGHT_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// While alive, SIGINT/SIGTERM/SIGHUP only set a flag (see [`caught_signal`])
/// instead of killing xtask; the previous dispositions are restored on drop.
pub struct SignalGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

pub fn catch_termination_signals() -> SignalGuard {
    let mut old = Vec::new();
    for sig in CAUGHT_SIGNALS {
        // SAFETY: zeroed sigaction is valid; the handler is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut prev: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, &action, &mut prev) == 0 {
                old.push((sig, prev));
            }
        }
    }
    SignalGuard { old }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restoring a disposition previously returned by the kernel.
            unsafe {
                libc::sigaction(*sig, prev, std::ptr::null_mut());
            }
        }
    }
}

/// The termination signal caught so far (sticky), if any.
pub fn caught_signal() -> Option<i32> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Random lowercase hex string of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A temporary directory removed (recursively) on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/<prefix>.<pid>.<random>`, first removing leftovers
    /// of earlier xtask processes that no longer exist (killed by SIGKILL).
    pub fn new(prefix: &str) -> Result<Self> {
        remove_stale(prefix);
        let name = format!("{prefix}.{}.{}", std::process::id(), random_hex(6)?);
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

fn remove_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
