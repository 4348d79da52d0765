//! `cargo xtask vm`: runs a command as root inside a QEMU guest booted on a
//! Debian kernel (host kernels here lack BPF-LSM). The guest sees the host
//! root read-only over virtiofs, with fresh tmpfs on /tmp, /run and
//! /var/lib/governor, and the same working directory as the host.
//!
//! Library API for other subcommands: [`VmRun`] + [`run_in_vm`], plus
//! [`build_governor`] / [`bin_dir`] / [`target_dir`].

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::accel::{self, Accel};
use crate::cmd::{self, TempDir, Tied};
use crate::guest::{self, GuestPlan, TMPFS_DIRS};
use crate::kernels::{self, Kernel, Series};
use crate::{initramfs, modules, qemu, setup};

/// Exit code when the run timed out (like coreutils `timeout`).
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit code when the guest never reported the command's exit status.
pub const EXIT_NO_STATUS: i32 = 125;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);
pub const DEFAULT_MEM: &str = "2G";
/// One vCPU. With two, a 6.12 guest once died with "Oops: int3" at
/// `bpf_lsm_file_fcntl+0x5`: one vCPU ran the stale breakpoint that the other's
/// `text_poke_bp` had already removed while attaching a BPF trampoline, which
/// QEMU TCG's cross-vCPU self-modifying-code handling does not always catch.
/// A single vCPU makes that impossible, and the tests are sequential anyway.
pub const DEFAULT_CPUS: u32 = 1;

/// Modules every guest loads (built-in ones are skipped, dependencies come first): virtio and
/// virtiofs for the host root; overlay for the kernel tests' stacked-filesystem case (a
/// create on the upper layer); loop, btrfs and ext4 for the rollback tests and benchmark,
/// which mount filesystem images (`mount -o loop`) to snapshot on btrfs (reflinks) and ext4.
const GUEST_MODULES: &[&str] = &["virtio_pci", "virtiofs", "overlay", "loop", "btrfs", "ext4"];

/// Standard PATH entries appended after [`VmRun::path_prepend`].
const STD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Host variables passed into the guest, besides every `GOVERNOR_*`.
const PASSED_ENV: &[&str] = &["RUST_LOG", "RUST_BACKTRACE", "CI"];

/// One command to run in a fresh VM.
#[derive(Clone, Debug)]
pub struct VmRun {
    pub kernel: Series,
    /// Wall-clock limit from VM start; exceeded → [`EXIT_TIMEOUT`].
    pub timeout: Duration,
    /// Guest memory in QEMU syntax ("2G", "512M"; a bare number means MiB).
    pub mem: String,
    /// Guest vCPUs; default [`DEFAULT_CPUS`].
    pub cpus: u32,
    /// argv, passed exactly; `cmd[0]` is looked up in the guest PATH.
    pub cmd: Vec<OsString>,
    /// Working directory in the guest; default: the host's current directory.
    pub cwd: Option<PathBuf>,
    /// Extra guest environment (overrides the defaults).
    pub env: Vec<(String, String)>,
    /// Directories put first on the guest PATH (kept visible even under /tmp).
    pub path_prepend: Vec<PathBuf>,
    /// More host paths that must stay visible although below /tmp, /run, ...
    pub keep_paths: Vec<PathBuf>,
    /// Extra kernel command-line parameters (e.g. `lsm=landlock,yama`).
    pub kernel_args: Vec<String>,
    /// Guest clock from the instruction count (TCG only; see [`qemu::Machine::icount`]).
    pub icount: bool,
    /// Put before every echoed guest line (e.g. `[6.1] ` when VMs run side by side).
    pub label: String,
}

impl VmRun {
    pub fn new<I, S>(kernel: Series, cmd: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            kernel,
            timeout: DEFAULT_TIMEOUT,
            mem: DEFAULT_MEM.to_string(),
            cpus: DEFAULT_CPUS,
            cmd: cmd.into_iter().map(Into::into).collect(),
            cwd: None,
            env: Vec::new(),
            path_prepend: Vec::new(),
            keep_paths: Vec::new(),
            kernel_args: Vec::new(),
            icount: false,
            label: String::new(),
        }
    }
}

/// `cargo xtask vm` arguments.
#[derive(clap::Args, Debug)]
pub struct VmArgs {
    /// Guest kernel series.
    #[arg(long, value_enum, default_value_t = Series::V6_12)]
    pub kernel: Series,
    /// Seconds before the VM is killed (exit code 124).
    #[arg(long, default_value_t = DEFAULT_TIMEOUT.as_secs())]
    pub timeout: u64,
    /// Guest memory ("2G", "512M").
    #[arg(long, default_value = DEFAULT_MEM)]
    pub mem: String,
    /// Build and use the release profile of governor.
    #[arg(long)]
    pub release: bool,
    /// Skip `cargo build -p governor` (the caller already built it).
    #[arg(long)]
    pub no_build: bool,
    /// Extra kernel command-line parameter (repeatable), e.g. `--kernel-arg lsm=landlock,yama`.
    #[arg(long = "kernel-arg", value_name = "ARG")]
    pub kernel_args: Vec<String>,
    /// Run the guest on the instruction clock the benchmarks use (QEMU icount, one vCPU: one
    /// guest nanosecond per instruction), to time something as `cargo xtask bench` would.
    #[arg(long)]
    pub icount: bool,
    /// Command and arguments to run in the guest (after `--`).
    #[arg(last = true, required = true)]
    pub cmd: Vec<OsString>,
}

/// Runs `cargo xtask vm`; returns the process exit code.
pub fn cli(args: VmArgs) -> Result<i32> {
    let bin = if args.no_build {
        bin_dir(args.release)?
    } else {
        build_governor(args.release)?
    };
    let mut run = VmRun::new(args.kernel, args.cmd);
    run.timeout = Duration::from_secs(args.timeout);
    run.mem = args.mem;
    run.kernel_args = args.kernel_args;
    run.icount = args.icount;
    if args.icount {
        run.cpus = 1;
    }
    run.path_prepend.push(bin);
    run_in_vm(&run)
}

pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// The workspace's cargo target directory (`cargo metadata`).
pub fn target_dir() -> Result<PathBuf> {
    let out = cmd::output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let meta: serde_json::Value = serde_json::from_str(&out).context("bad cargo metadata")?;
    match meta["target_directory"].as_str() {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => bail!("cargo metadata has no target_directory"),
    }
}

/// `<target dir>/debug` or `<target dir>/release`.
pub fn bin_dir(release: bool) -> Result<PathBuf> {
    Ok(target_dir()?.join(if release { "release" } else { "debug" }))
}

/// `cargo build -p governor [--release]`; returns the directory of the binary.
pub fn build_governor(release: bool) -> Result<PathBuf> {
    build_governor_with(release, &[])
}

/// `cargo build -p governor [--release] [--features ...]`; returns the directory of the
/// binary (the same path with or without features: the last build is the one there).
pub fn build_governor_with(release: bool, features: &[&str]) -> Result<PathBuf> {
    let mut build = cargo();
    build.args(["build", "-p", "governor"]);
    if release {
        build.arg("--release");
    }
    if !features.is_empty() {
        build.args(["--features", &features.join(",")]);
    }
    cmd::run(&mut build)?;
    bin_dir(release)
}

/// Boots a VM, runs `run.cmd` in it and returns the command's exit code, or
/// [`EXIT_TIMEOUT`], [`EXIT_NO_STATUS`], or 128+signal if xtask was
/// interrupted (check [`cmd::caught_signal`] to stop further work). QEMU and
/// virtiofsd never outlive this call (nor xtask).
pub fn run_in_vm(run: &VmRun) -> Result<i32> {
    run_in_vm_with(run, &mut |_| {})
}

/// [`run_in_vm`], also handing every guest output line (without its newline) to `on_line`.
pub fn run_in_vm_with(run: &VmRun, on_line: &mut dyn FnMut(&[u8])) -> Result<i32> {
    if run.cmd.is_empty() {
        bail!("no command given to run in the VM");
    }
    if let Some(sig) = cmd::caught_signal() {
        return Ok(128 + sig);
    }
    let vm = prepare(run)?;
    let _signals = cmd::catch_termination_signals();
    let deadline = Instant::now() + run.timeout;
    let work = vm.work.path();
    let socket = work.join("virtiofsd.sock");
    let vfs_log = work.join("virtiofsd.log");
    let mut virtiofsd = qemu::start_virtiofsd(&socket, &vfs_log)?;
    let qemu_log = work.join("qemu.log");
    let initrd = work.join("initramfs.cpio");
    let mut qemu_cmd = qemu::qemu_command(
        &vm.kernel,
        &initrd,
        &qemu::Machine {
            accel: vm.accel,
            mem: &vm.mem,
            cpus: run.cpus,
            kernel_args: &run.kernel_args,
            icount: vm.icount,
        },
        Some(&socket),
        &qemu_log,
    )?;
    let mut qemu_proc = Tied::spawn("qemu", &mut qemu_cmd)?;
    let prefix = guest::marker_prefix(&vm.nonce);
    let outcome = qemu::supervise(
        &mut qemu_proc,
        &mut [&mut virtiofsd],
        &prefix,
        deadline,
        Some(run.label.as_str()),
        on_line,
    );
    let grace = match outcome {
        qemu::Outcome::Exited(_) => Duration::from_secs(1),
        _ => Duration::ZERO,
    };
    qemu_proc.shutdown(grace);
    virtiofsd.shutdown(Duration::from_millis(200));

    Ok(match outcome {
        qemu::Outcome::Exited(code) => code,
        qemu::Outcome::Timeout => {
            eprintln!("vm: timed out after {}s; VM killed", run.timeout.as_secs());
            EXIT_TIMEOUT
        }
        qemu::Outcome::Interrupted(sig) => {
            eprintln!("vm: interrupted by signal {sig}; VM killed");
            128 + sig
        }
        qemu::Outcome::NoStatus(status) => {
            eprintln!(
                "vm: the guest stopped without reporting an exit status \
                 (kernel panic or guest setup failure, see output above; \
                 GOVERNOR_VM_DEBUG=1 shows kernel messages); qemu: {}",
                status.map_or("still running".into(), |s| s.to_string())
            );
            qemu::show_log("qemu", &qemu_log);
            EXIT_NO_STATUS
        }
        qemu::Outcome::HelperDied(name, status) => {
            eprintln!("vm: {name} exited unexpectedly ({status}); VM killed");
            qemu::show_log(name, &vfs_log);
            EXIT_NO_STATUS
        }
    })
}

/// Everything a VM boot needs, with the initramfs written into `work`.
struct Prepared {
    kernel: Kernel,
    accel: Accel,
    icount: bool,
    mem: String,
    nonce: String,
    work: TempDir,
}

fn prepare(run: &VmRun) -> Result<Prepared> {
    if !setup::missing_apt_packages(setup::VM_PACKAGES).is_empty() {
        setup::ensure_vm_tools()?;
    }
    if !Path::new(qemu::VIRTIOFSD).is_file() {
        bail!(
            "{} missing (fix: apt-get install qemu-system-x86)",
            qemu::VIRTIOFSD
        );
    }
    let mem = normalise_mem(&run.mem)?;
    let kernel = kernels::ensure(run.kernel)?;
    let modules = modules::resolve(&kernel, GUEST_MODULES)?;
    let (accel, why) = accel::choose(&kernel)?;
    let icount = run.icount && accel == Accel::Tcg;
    if run.icount && !icount {
        eprintln!("vm: the instruction clock needs TCG; this guest's clock is wall time");
    }
    let cwd = match &run.cwd {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("no current directory")?,
    };
    for dir in TMPFS_DIRS {
        // The guest mounts tmpfs on these; they must exist in the host root.
        fs::create_dir_all(dir).with_context(|| format!("cannot create {dir} on the host"))?;
    }
    let mut keep = vec![cwd.clone()];
    keep.extend(run.path_prepend.iter().cloned());
    keep.extend(run.keep_paths.iter().cloned());
    let plan = GuestPlan {
        nonce: cmd::random_hex(8)?,
        modules: modules.iter().map(|m| m.name.clone()).collect(),
        keep: paths_to_keep(&keep),
        cwd,
        env: guest_env(run, icount)?,
        argv: run.cmd.clone(),
    };
    let work = TempDir::new("governor-vm")?;
    let run_sh = guest::run_script(&plan);
    initramfs::write(
        &work.path().join("initramfs.cpio"),
        &guest::init_script(&plan),
        &[("run.sh", &run_sh)],
        &modules,
    )?;
    eprintln!(
        "vm: kernel {} ({}), accel {} ({why}){}, timeout {}s",
        kernel.series,
        kernel.release,
        accel.name(),
        if icount {
            ", clock: instructions (icount)"
        } else {
            ""
        },
        run.timeout.as_secs()
    );
    Ok(Prepared {
        kernel,
        accel,
        icount,
        mem,
        nonce: plan.nonce,
        work,
    })
}

/// "2G" / "512M" / "2048" (MiB) → a size QEMU's `-m` and memory backends
/// both read the same way.
fn normalise_mem(mem: &str) -> Result<String> {
    let digits = mem.trim_end_matches(|c: char| "KMGTkmgt".contains(c));
    let suffix = &mem[digits.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || suffix.len() > 1 {
        bail!("bad memory size {mem:?}: expected e.g. 2G or 512M");
    }
    Ok(if suffix.is_empty() {
        format!("{digits}M")
    } else {
        format!("{digits}{}", suffix.to_ascii_uppercase())
    })
}

/// Guest environment: passed-through host variables, then the fixed ones,
/// then the caller's.
fn guest_env(run: &VmRun, icount: bool) -> Result<Vec<(OsString, OsString)>> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let mut set = |k: OsString, v: OsString| {
        env.retain(|(old, _)| *old != k);
        env.push((k, v));
    };
    for (k, v) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if PASSED_ENV.contains(&name.as_ref()) || name.starts_with("GOVERNOR_") {
            set(k, v);
        }
    }
    let mut path = OsString::new();
    for dir in &run.path_prepend {
        if dir.as_os_str().as_bytes().contains(&b':') {
            bail!("PATH entry {} contains ':'", dir.display());
        }
        path.push(dir);
        path.push(":");
    }
    path.push(STD_PATH);
    set("HOME".into(), "/root".into());
    set("PATH".into(), path);
    set("GOVERNOR_VM".into(), "1".into());
    set("GOVERNOR_VM_KERNEL".into(), run.kernel.as_str().into());
    let clock = if icount { "instructions" } else { "wall" };
    set("GOVERNOR_VM_CLOCK".into(), clock.into());
    for (k, v) in &run.env {
        if k.is_empty() || k.contains('=') {
            bail!("bad environment variable name {k:?}");
        }
        set(k.into(), v.into());
    }
    Ok(env)
}

/// Those of `paths` lying below a guest tmpfs, without nested duplicates.
fn paths_to_keep(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut hidden: Vec<PathBuf> = paths
        .iter()
        .map(|p| fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .filter(|p| TMPFS_DIRS.iter().any(|d| p.starts_with(d)))
        .collect();
    hidden.sort();
    hidden.dedup();
    let all = hidden.clone();
    hidden.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_sizes() {
        assert_eq!(normalise_mem("2G").unwrap(), "2G");
        assert_eq!(normalise_mem("512m").unwrap(), "512M");
        assert_eq!(normalise_mem("2048").unwrap(), "2048M");
        assert!(normalise_mem("G").is_err());
        assert!(normalise_mem("2GB").is_err());
    }

    #[test]
    fn keeps_only_hidden_paths() {
        let kept = paths_to_keep(&[
            "/work/x".into(),
            "/tmp/no-such-dir-governor/a".into(),
            "/tmp/no-such-dir-governor/a/target/debug".into(),
        ]);
        assert_eq!(kept, [PathBuf::from("/tmp/no-such-dir-governor/a")]);
    }
}
