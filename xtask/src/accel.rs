//! Choice of QEMU accelerator. `GOVERNOR_VM_ACCEL=tcg|kvm|auto` (default
//! auto). Auto uses TCG unless a probe (one tiny KVM boot per host kernel
//! release, verdict cached next to the kernels) showed that KVM guests work.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::cmd::{self, TempDir, Tied};
use crate::kernels::{self, Kernel};
use crate::{guest, initramfs, qemu};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }

    /// `-accel` and `-cpu` arguments.
    pub fn qemu_args(self) -> [&'static str; 4] {
        match self {
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
        }
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Picks the accelerator and explains why (one line, for stderr).
pub fn choose(kernel: &Kernel) -> Result<(Accel, String)> {
    let setting = std::env::var("GOVERNOR_VM_ACCEL").unwrap_or_default();
    match setting.as_str() {
        "tcg" => return Ok((Accel::Tcg, "GOVERNOR_VM_ACCEL=tcg".into())),
        "kvm" => return Ok((Accel::Kvm, "GOVERNOR_VM_ACCEL=kvm".into())),
        "" | "auto" => {}
        other => bail!("GOVERNOR_VM_ACCEL={other}: expected tcg, kvm or auto"),
    }
    let kvm_usable = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !kvm_usable {
        return Ok((Accel::Tcg, "auto: /dev/kvm not usable".into()));
    }
    let host = fs::read_to_string("/proc/sys/kernel/osrelease")?
        .trim()
        .to_string();
    let verdict_file = kernels::cache_dir()?.join(format!("kvm-probe-{host}"));
    let cached = fs::read_to_string(&verdict_file).ok();
    let works = match cached.as_deref().map(str::trim) {
        Some("ok") => true,
        Some("fail") => false,
        _ => {
            eprintln!("vm: probing KVM on host kernel {host} (once, up to {PROBE_TIMEOUT:?})");
            let works = probe(kernel)?;
            fs::write(&verdict_file, if works { "ok\n" } else { "fail\n" })?;
            works
        }
    };
    let (accel, what) = if works {
        (Accel::Kvm, "works")
    } else {
        (Accel::Tcg, "fails")
    };
    let why = format!("auto: KVM {what} on host {host}, cached probe");
    Ok((accel, why))
}

/// Boots `kernel` under KVM with an initramfs that only prints a marker.
fn probe(kernel: &Kernel) -> Result<bool> {
    if cmd::caught_signal().is_some() {
        bail!("interrupted");
    }
    let work = TempDir::new("governor-kvm-probe")?;
    let nonce = cmd::random_hex(8)?;
    let initrd = work.path().join("initramfs.cpio");
    initramfs::write(&initrd, &guest::probe_init(&nonce), &[], &[])?;
    let log = work.path().join("qemu.log");
    let mut qemu_cmd = qemu::qemu_command(
        kernel,
        &initrd,
        &qemu::Machine {
            accel: Accel::Kvm,
            mem: "256M",
            cpus: 1,
            kernel_args: &[],
            icount: false,
        },
        None,
        &log,
    )?;
    let mut qemu = Tied::spawn("qemu", &mut qemu_cmd)?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let outcome = qemu::supervise(
        &mut qemu,
        &mut [],
        &guest::marker_prefix(&nonce),
        deadline,
        None,
        &mut |_| {},
    );
    qemu.shutdown(Duration::from_secs(1));
    match outcome {
        qemu::Outcome::Exited(_) => Ok(true),
        qemu::Outcome::Interrupted(_) => bail!("interrupted"),
        _ => Ok(false),
    }
}
