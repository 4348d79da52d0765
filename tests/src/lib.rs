//! Helpers for governor's kernel integration tests: start a daemon on a policy, run commands
//! as an agent or not, and read the decisions the daemon logged.
//!
//! These tests need a kernel with BPF-LSM. `cargo xtask test` runs them inside the QEMU VM
//! (`cargo xtask vm`); anywhere else [`require_bpf_lsm`] fails them — it never skips.
//!
//! The crate root keeps where things are (the binary, pin and state directories, scratch
//! directories); `daemon`, `host` and `policy` hold the rest, re-exported here so a
//! test names every helper as `governor_kernel_tests::NAME`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

pub mod lease;
pub mod loopfs;
pub mod net;
pub mod net_lease;
pub mod operator;
pub mod paths;
pub mod tree;

mod daemon;
mod host;
mod policy;

pub use daemon::Daemon;
pub use host::*;
pub use policy::*;

static GOVERNOR_BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes [`governor_bin`] return `path` (for tests that know their binary, like cargo's
/// `CARGO_BIN_EXE_governor` in the governor package's own integration tests).
pub fn set_governor_bin(path: impl Into<PathBuf>) {
    let _ = GOVERNOR_BIN.set(path.into());
}

/// The governor binary under test: the one given to [`set_governor_bin`], else
/// `$GOVERNOR_BIN`, else `governor` on PATH (the VM runner puts the freshly built one first).
pub fn governor_bin() -> PathBuf {
    if let Some(p) = GOVERNOR_BIN.get() {
        return p.clone();
    }
    std::env::var_os("GOVERNOR_BIN").map_or_else(|| PathBuf::from("governor"), PathBuf::from)
}

static PIN_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The daemon's default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/governor";

/// The daemon's default pin directory, which the kernel tests use.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/governor";

/// Makes every [`Daemon`] pin in `<prefix><name of its scratch directory>` instead of in
/// [`DEFAULT_PIN_DIR`] (for the host tier, whose tests run in parallel).
pub fn set_pin_prefix(prefix: &str) {
    let _ = PIN_PREFIX.set(prefix.to_owned());
}

/// The pin directory a daemon started for scratch directory `dir` uses.
pub fn pin_dir_for(dir: &Path) -> PathBuf {
    match (PIN_PREFIX.get(), dir.file_name()) {
        (Some(prefix), Some(name)) => PathBuf::from(format!("{prefix}{}", name.to_string_lossy())),
        _ => PathBuf::from(DEFAULT_PIN_DIR),
    }
}

/// `--runtime-dir` for daemons that run side by side (the host tests, which set a pin
/// prefix): each gets its own admin socket, named after its pin directory. Daemons in the VM
/// run one at a time and keep the default, `/run/governor`.
fn runtime_dir_args(pin_dir: &Path) -> Vec<String> {
    match (PIN_PREFIX.get(), pin_dir.file_name()) {
        (Some(_), Some(name)) => vec![
            "--runtime-dir".to_owned(),
            format!("/run/{}", name.to_string_lossy()),
            "--request-dir".to_owned(),
            format!("/run/{}-requests", name.to_string_lossy()),
        ],
        _ => Vec::new(),
    }
}

/// The state directory (lease store, halts, requests) of the daemons on `pin_dir`, emptied
/// when a test starts its first daemon and shared with its successors, so that leases outlive
/// a restart as they do in production, and no test sees another's. In the VM (one daemon at
/// a time, on the default pin directory) it is the default, `/var/lib/governor` (a tmpfs
/// there); host tests, side by side, get one each.
pub fn state_dir_for(pin_dir: &Path) -> PathBuf {
    if pin_dir == Path::new(DEFAULT_PIN_DIR) {
        return PathBuf::from(DEFAULT_STATE_DIR);
    }
    let name = pin_dir.file_name().map_or_else(
        || "governor".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    PathBuf::from(format!("/tmp/governor-test/state/{name}"))
}

/// Runs `governor unload --pin-dir DIR` and panics, with its output, unless it succeeded and
/// the directory is gone: a test must never leave enforcement behind for the next one.
pub fn unload(pin_dir: &Path) -> Output {
    try_unload(pin_dir).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `governor unload --pin-dir DIR` and returns its output, whatever it did.
pub fn try_unload_output(pin_dir: &Path) -> Output {
    Command::new(governor_bin())
        .args(["unload", "--pin-dir"])
        .arg(pin_dir)
        .output()
        .expect("spawning governor unload")
}

fn try_unload(pin_dir: &Path) -> Result<Output, String> {
    let out = Command::new(governor_bin())
        .args(["unload", "--pin-dir"])
        .arg(pin_dir)
        .output()
        .map_err(|e| format!("spawning governor unload: {e}"))?;
    if out.status.success() && !pin_dir.exists() {
        return Ok(out);
    }
    Err(format!(
        "governor unload --pin-dir {} failed ({}): stdout={:?} stderr={:?}",
        pin_dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Fails the test unless the running kernel has BPF-LSM active.
pub fn require_bpf_lsm() {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    assert!(
        lsm.split(',').any(|l| l.trim() == "bpf"),
        "this test needs a kernel with BPF-LSM active (found LSMs: {lsm:?}); \
         run it with `cargo xtask test`, which boots one in a VM"
    );
}

/// A fresh scratch directory under /tmp named after the test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/governor-test/{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes `text` to `path`, creating parent directories.
pub fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent");
    }
    std::fs::write(path, text).expect("write file");
}

/// governor's configuration directory for test daemons: the VM's `/etc` is read-only, so
/// the default `/etc/governor` cannot be created there. (The other own directories keep
/// their defaults: the VM has tmpfs on `/run` and `/var/lib/governor`, and bpffs.)
pub const TEST_CONFIG_DIR: &str = "/tmp/governor-test/etc-governor";
