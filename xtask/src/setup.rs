//! `cargo xtask setup`: idempotently installs what building and testing
//! governor needs (apt packages, bpf-linker, nightly rust-src, test kernels),
//! saying on stderr what it does and doing nothing costly when all is there.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

use crate::cmd;
use crate::kernels::{self, Kernel, Series};

/// Debian packages the VM runner needs (QEMU + virtiofsd, busybox, xz), and `btrfs-progs`,
/// whose `mkfs.btrfs` the rollback tests and benchmark run in the guest (it sees the host's
/// root): they snapshot onto a btrfs loop image, where a snapshot is a reflink.
pub const VM_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "xz-utils",
    "btrfs-progs",
];

/// Debian packages needed to build bpf-linker against LLVM 22.
pub const EBPF_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
];

/// Other tools used by the project's scripts, demos and tests (`bpftool`: the kernel tests
/// list loaded programs with it).
pub const MISC_PACKAGES: &[&str] = &["sqlite3", "bpftool"];

/// Everything: apt packages, eBPF toolchain and both test kernels.
pub fn ensure_all() -> Result<()> {
    ensure_vm_tools()?;
    ensure_ebpf_toolchain()?;
    ensure_apt_packages(MISC_PACKAGES)?;
    for series in Series::ALL {
        let k = ensure_kernel(series)?;
        eprintln!("setup: kernel {series}: {} ({})", k.release, k.package);
    }
    eprintln!("setup: all set");
    Ok(())
}

/// QEMU, virtiofsd, busybox-static and xz.
pub fn ensure_vm_tools() -> Result<()> {
    ensure_apt_packages(VM_PACKAGES)
}

/// LLVM dev packages, bpf-linker and nightly rust-src.
pub fn ensure_ebpf_toolchain() -> Result<()> {
    ensure_apt_packages(EBPF_PACKAGES)?;
    ensure_bpf_linker()?;
    ensure_nightly_rust_src()
}

/// Downloads (if needed) and extracts the newest cached Debian cloud kernel.
pub fn ensure_kernel(series: Series) -> Result<Kernel> {
    kernels::ensure(series)
}

/// The subset of `pkgs` that is not installed (one `dpkg-query` call).
pub fn missing_apt_packages(pkgs: &[&str]) -> Vec<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\\n"])
        .args(pkgs)
        .output();
    // dpkg-query exits 1 when some package is unknown but still lists the rest.
    let listed = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    pkgs.iter()
        .filter(|p| {
            !listed.lines().any(|l| {
                l.split_once(' ').is_some_and(|(name, status)| {
                    name == **p && status.contains("install ok installed")
                })
            })
        })
        .map(|p| p.to_string())
        .collect()
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

fn is_root() -> bool {
    // SAFETY: trivial syscall.
    unsafe { libc::geteuid() == 0 }
}

fn ensure_apt_packages(pkgs: &[&str]) -> Result<()> {
    let missing = missing_apt_packages(pkgs);
    if missing.is_empty() {
        eprintln!("setup: apt packages already installed: {}", pkgs.join(" "));
        return Ok(());
    }
    let list = missing.join(" ");
    let sudo = if is_root() { "" } else { "sudo " };
    let fix = format!(
        "{sudo}apt-get update && {sudo}env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y --no-install-recommends {list}"
    );
    if !is_root() {
        bail!("missing apt packages: {list}; install them with: {fix}");
    }
    eprintln!("setup: installing apt packages: {list}");
    let update = || -> Result<()> {
        // One `apt-get update` per xtask process is enough.
        if !APT_UPDATED.swap(true, Ordering::SeqCst) {
            cmd::run(Command::new("apt-get").arg("update"))?;
        }
        Ok(())
    };
    let result = update().and_then(|()| {
        cmd::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing),
        )
    });
    if let Err(e) = result {
        bail!("cannot install apt packages {list}: {e:#}\nfix: {fix}");
    }
    let still = missing_apt_packages(pkgs);
    if !still.is_empty() {
        bail!(
            "apt packages still missing: {}\nfix: {fix}",
            still.join(" ")
        );
    }
    Ok(())
}

fn ensure_bpf_linker() -> Result<()> {
    if cmd::succeeds(Command::new("bpf-linker").arg("--version")) {
        eprintln!("setup: bpf-linker already installed");
        return Ok(());
    }
    let mut install = Command::new("cargo");
    install
        .env("LLVM_PREFIX", "/usr/lib/llvm-22")
        .args(["install", "bpf-linker", "--no-default-features"])
        .args(["--features", "llvm-22"]);
    let fix = cmd::display(&install);
    eprintln!("setup: installing bpf-linker: {fix}");
    if let Err(e) = cmd::run(&mut install) {
        bail!("cannot install bpf-linker: {e:#}\nfix: {fix}");
    }
    if !cmd::succeeds(Command::new("bpf-linker").arg("--version")) {
        bail!("bpf-linker installed but not runnable; is ~/.cargo/bin on PATH? fix: {fix}");
    }
    Ok(())
}

fn ensure_nightly_rust_src() -> Result<()> {
    let installed = cmd::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    if let Ok(list) = &installed {
        if list.lines().any(|l| l.trim().starts_with("rust-src")) {
            eprintln!("setup: nightly rust-src already installed");
            return Ok(());
        }
    }
    let mut fix = Command::new("rustup");
    if installed.is_err() {
        // No nightly toolchain at all.
        fix.args(["toolchain", "install", "nightly", "--profile", "minimal"])
            .args(["--component", "rust-src"]);
    } else {
        fix.args(["component", "add", "rust-src", "--toolchain", "nightly"]);
    }
    let shown = cmd::display(&fix);
    eprintln!("setup: installing nightly rust-src: {shown}");
    if let Err(e) = cmd::run(&mut fix) {
        bail!("cannot install nightly rust-src: {e:#}\nfix: {shown}");
    }
    Ok(())
}
