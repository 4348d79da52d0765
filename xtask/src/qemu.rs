//! Running QEMU (and virtiofsd) for a guest: the command line, waiting for
//! the virtiofsd socket, and supervising the serial console (forwarding
//! output, spotting the exit marker, enforcing deadline and signals).

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::accel::Accel;
use crate::cmd::{self, Tied};
use crate::guest;
use crate::kernels::Kernel;

/// virtiofsd of Debian 12's qemu-system-common (C implementation).
pub const VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";
const KERNEL_CMDLINE: &str = "console=ttyS0 panic=-1 rdinit=/init";

/// Starts virtiofsd exporting the host root at `socket`, logging to `log`,
/// and waits until the socket exists.
pub fn start_virtiofsd(socket: &Path, log: &Path) -> Result<Tied> {
    let mut virtiofsd = Tied::spawn(
        "virtiofsd",
        Command::new(VIRTIOFSD)
            .arg(format!("--socket-path={}", socket.display()))
            .args([
                "-o",
                "source=/",
                "-o",
                "cache=always",
                "-o",
                "sandbox=chroot",
            ])
            .args(["-o", "log_level=warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log)?),
    )?;
    wait_for_socket(socket, &mut virtiofsd, log)?;
    Ok(virtiofsd)
}

fn wait_for_socket(socket: &Path, virtiofsd: &mut Tied, log: &Path) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if let Some(status) = virtiofsd.exited() {
            show_log("virtiofsd", log);
            bail!("virtiofsd exited before creating its socket ({status})");
        }
        if Instant::now() > until {
            show_log("virtiofsd", log);
            bail!("virtiofsd did not create {} within 10s", socket.display());
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub fn show_log(name: &str, path: &Path) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if !lines.is_empty() {
        eprintln!("vm: last lines of the {name} log:");
        for l in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("  {l}");
        }
    }
}

/// `GOVERNOR_VM_DEBUG=1` shows all kernel messages (boot problems).
fn kernel_cmdline(extra: &[String]) -> String {
    let debug = std::env::var_os("GOVERNOR_VM_DEBUG").is_some_and(|v| v != "0" && !v.is_empty());
    let verbosity = if debug {
        "loglevel=7"
    } else {
        "quiet loglevel=3"
    };
    let mut line = format!("{KERNEL_CMDLINE} {verbosity}");
    for arg in extra {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

/// The virtual machine's shape.
pub struct Machine<'a> {
    pub accel: Accel,
    /// Memory in QEMU syntax.
    pub mem: &'a str,
    pub cpus: u32,
    /// Extra kernel command-line parameters.
    pub kernel_args: &'a [String],
    /// Guest clock from the instruction count (`-icount shift=0,sleep=on`, TCG only): one
    /// guest nanosecond per instruction executed, whatever else the host is doing. While
    /// every vCPU is idle (waiting for the host's virtiofsd, say), guest time runs at real
    /// speed (`sleep=on`): with `sleep=off` it would leap to the next timer, and a guest
    /// waiting on a busy host would see its timeouts expire at once.
    pub icount: bool,
}

/// The QEMU command line; serial console on stdout (piped), stderr to `log`.
pub fn qemu_command(
    kernel: &Kernel,
    initrd: &Path,
    machine: &Machine<'_>,
    virtiofs_socket: Option<&Path>,
    log: &Path,
) -> Result<Command> {
    let Machine {
        accel,
        mem,
        cpus,
        kernel_args,
        icount,
    } = *machine;
    let mut c = Command::new("qemu-system-x86_64");
    c.args(accel.qemu_args());
    if icount && accel == Accel::Tcg {
        c.args(["-icount", "shift=0,sleep=on"]);
    }
    c.args(["-smp", &cpus.to_string(), "-m", mem])
        .args(["-nodefaults", "-no-user-config", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(kernel_cmdline(kernel_args));
    if let Some(socket) = virtiofs_socket {
        let mut chardev = OsString::from("socket,id=fs0,path=");
        chardev.push(socket);
        c.arg("-object")
            .arg(format!("memory-backend-memfd,id=mem,size={mem},share=on"))
            .args(["-numa", "node,memdev=mem", "-chardev"])
            .arg(chardev)
            .arg("-device")
            .arg(format!(
                "vhost-user-fs-pci,chardev=fs0,tag={}",
                guest::FS_TAG
            ));
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(log).with_context(|| format!("cannot create {}", log.display()))?);
    Ok(c)
}

/// How a supervised VM run ended.
#[derive(Debug)]
pub enum Outcome {
    /// The guest printed the exit marker with this code.
    Exited(i32),
    Timeout,
    Interrupted(i32),
    /// QEMU's output ended without a marker.
    NoStatus(Option<ExitStatus>),
    HelperDied(&'static str, ExitStatus),
}

/// Forwards QEMU's serial output (if `echo` is set, each line after that
/// label, e.g. `[6.1] `) line by line to stdout, minus the exit marker, until the marker, EOF, the deadline, a caught signal or
/// the death of a helper process.
pub fn supervise(
    qemu: &mut Tied,
    helpers: &mut [&mut Tied],
    prefix: &str,
    deadline: Instant,
    echo: Option<&str>,
    on_line: &mut dyn FnMut(&[u8]),
) -> Outcome {
    let Some(serial) = qemu.child_mut().stdout.take() else {
        return Outcome::NoStatus(None);
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        let mut reader = BufReader::new(serial);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut out = io::stdout();
    loop {
        if let Some(sig) = cmd::caught_signal() {
            return Outcome::Interrupted(sig);
        }
        let now = Instant::now();
        if now >= deadline {
            return Outcome::Timeout;
        }
        match rx.recv_timeout((deadline - now).min(Duration::from_millis(100))) {
            Ok(mut line) => {
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                if let Some((at, code)) = guest::find_marker(&line, prefix) {
                    if let Some(label) = echo.filter(|_| at > 0) {
                        let mut shown = label.as_bytes().to_vec();
                        shown.extend_from_slice(&line[..at]);
                        let _ = out.write_all(&shown).and_then(|()| out.flush());
                    }
                    return Outcome::Exited(code);
                }
                on_line(&line);
                if let Some(label) = echo {
                    // One write per line, so that parallel VMs' lines never interleave.
                    let mut shown = label.as_bytes().to_vec();
                    shown.extend_from_slice(&line);
                    shown.push(b'\n');
                    let _ = out.lock().write_all(&shown).and_then(|()| out.flush());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // Only when no output is pending: the exit marker may still
                // be queued while virtiofsd exits after the guest powered off.
                for h in helpers.iter_mut() {
                    if let Some(status) = h.exited() {
                        return Outcome::HelperDied(h.name(), status);
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                qemu.shutdown(Duration::from_millis(500));
                return Outcome::NoStatus(qemu.exited());
            }
        }
    }
}
