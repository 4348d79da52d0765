//! `cargo xtask test`: every test. Host unit tests first, then the kernel integration tests
//! (tests/) inside VMs: on each BPF-LSM kernel (6.12, 6.1), and once on a kernel booted without
//! BPF-LSM to prove the daemon refuses. All kernel checks of one kernel share one boot; the
//! boots run side by side, one per host CPU.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};

use crate::{
    cmd,
    kernels::{self, Series},
    setup,
    vm::{self, VmRun},
};

/// Time limit of one kernel's test boot: every test starts its own daemon, which parses the
/// kernel's BTF and verifies every program under QEMU TCG (tens of seconds each on a loaded
/// 2-core host). A boot took about 33 minutes on one such host and more than 40 on another
/// (two boots side by side, 2026-12-07); 60 minutes keeps the whole run, with the build and
/// the no-BPF-LSM boot, under CI's 90.
const KERNEL_TESTS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// `lsm=` list for the no-BPF-LSM boot: the distribution's defaults minus `bpf`.
const LSM_WITHOUT_BPF: &str = "lsm=landlock,lockdown,yama,integrity,apparmor";

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Only this kernel (default: all of them).
    #[arg(long, value_enum)]
    pub kernel: Option<Series>,
    /// Skip the host unit tests.
    #[arg(long)]
    pub no_host: bool,
    /// Run only the kernel tests whose names contain this (libtest filter; repeat for
    /// several); skips the no-BPF-LSM boot unless one matches there too.
    #[arg(long)]
    pub filter: Vec<String>,
    /// VM boots run side by side (default: the host's CPU count; each guest has one vCPU).
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// Passed/failed counts, from libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    passed: u64,
    failed: u64,
    suites: u64,
}

impl Tally {
    fn observe(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        self.suites += 1;
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next(), words.next()) {
                if let Ok(n) = n.parse::<u64>() {
                    match what {
                        "passed" => self.passed += n,
                        "failed" => self.failed += n,
                        _ => {}
                    }
                }
            }
        }
    }
}

struct Step {
    name: String,
    ok: bool,
    tally: Tally,
    note: String,
}

pub fn run(args: TestArgs) -> Result<i32> {
    setup::ensure_all()?;
    let mut steps: Vec<Step> = Vec::new();

    if !args.no_host {
        eprintln!("\n== test: host unit tests (cargo test) ==");
        steps.push(host_tests()?);
        if let Some(sig) = cmd::caught_signal() {
            return Ok(128 + sig);
        }
    }

    eprintln!("\n== test: building governor and the kernel tests ==");
    let bin_dir = vm::build_governor(false)?;
    let kernel_tests = build_kernel_tests()?;
    let kernels: Vec<Series> = args
        .kernel
        .map_or_else(|| Series::ALL.to_vec(), |k| vec![k]);

    let mut boots: Vec<(String, VmRun)> = Vec::new();
    for &series in &kernels {
        let mut argv: Vec<&std::ffi::OsStr> = vec![
            kernel_tests.as_os_str(),
            "--test-threads=1".as_ref(),
            "--skip".as_ref(),
            "no_bpf_lsm".as_ref(),
        ];
        argv.extend(args.filter.iter().map(|f| std::ffi::OsStr::new(f.as_str())));
        let mut run = VmRun::new(series, argv);
        run.timeout = KERNEL_TESTS_TIMEOUT;
        run.path_prepend.push(bin_dir.clone());
        // The kernel-module tests load a module of the guest's own kernel.
        let kernel = kernels::ensure(series)?;
        run.env.push((
            "GOVERNOR_TEST_MODULES_DIR".to_owned(),
            kernel.modules_dir.display().to_string(),
        ));
        run.keep_paths.push(kernel.modules_dir);
        boots.push((format!("kernel tests, Linux {series}"), run));
    }
    let series = kernels[0];
    let no_bpf_wanted = args.filter.is_empty()
        || args
            .filter
            .iter()
            .any(|f| "no_bpf_lsm".contains(f.as_str()) || f.contains("no_bpf_lsm"));
    if no_bpf_wanted {
        let mut run = VmRun::new(
            series,
            [
                kernel_tests.as_os_str(),
                "--test-threads=1".as_ref(),
                "no_bpf_lsm".as_ref(),
            ],
        );
        run.path_prepend.push(bin_dir);
        run.kernel_args.push(LSM_WITHOUT_BPF.to_owned());
        boots.push((
            format!("no BPF-LSM, Linux {series} ({LSM_WITHOUT_BPF})"),
            run,
        ));
    }
    steps.extend(run_boots(boots, args.jobs)?);
    if let Some(sig) = cmd::caught_signal() {
        return Ok(128 + sig);
    }
    Ok(summarize(&steps))
}

/// Runs the VM boots, `jobs` at a time (each guest has one vCPU, so a 2-core host runs two
/// side by side at nearly full speed), in the order given; every echoed guest line carries
/// its boot's label. Returns the steps in the order given.
fn run_boots(boots: Vec<(String, VmRun)>, jobs: Option<usize>) -> Result<Vec<Step>> {
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, boots.len().max(1));
    // One guard for the whole batch: the per-boot guards nest inside it.
    let _signals = cmd::catch_termination_signals();
    let queue = std::sync::Mutex::new(boots.into_iter().enumerate().collect::<Vec<_>>());
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let next = queue.lock().map(|mut q| {
                    if q.is_empty() || cmd::caught_signal().is_some() {
                        None
                    } else {
                        Some(q.remove(0))
                    }
                });
                let Ok(Some((i, (name, mut run)))) = next else {
                    return;
                };
                if jobs > 1 {
                    run.label = format!("[{}] ", run.kernel);
                    if !run.kernel_args.is_empty() {
                        run.label = format!("[{} no-bpf] ", run.kernel);
                    }
                }
                eprintln!("\n== test: {name} (VM started) ==");
                let step = vm_step(name.clone(), &run).unwrap_or_else(|e| Step {
                    name,
                    ok: false,
                    tally: Tally::default(),
                    note: format!("{e:#}"),
                });
                eprintln!(
                    "\n== test: {} finished: {} passed, {} failed {} ==",
                    step.name, step.tally.passed, step.tally.failed, step.note
                );
                if let Ok(mut d) = done.lock() {
                    d.push((i, step));
                }
            });
        }
    });
    let mut done = done
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a VM runner thread panicked"))?;
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, s)| s).collect())
}

/// `cargo test` on the host for everything but the kernel tests and the BPF crate.
fn host_tests() -> Result<Step> {
    let cargo = || Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let mut workspace = cargo();
    workspace.args([
        "test",
        "--workspace",
        "--exclude",
        "governor-kernel-tests",
        "--exclude",
        "governor-ebpf",
    ]);
    // The kernel tests' library (manifests, paths): its unit tests run here; its `kernel`
    // test binary only in the VM.
    let mut harness = cargo();
    harness.args(["test", "-p", "governor-kernel-tests", "--lib"]);
    let mut tally = Tally::default();
    let mut ok = true;
    for c in [&mut workspace, &mut harness] {
        ok &= tee(c, true, &mut |l| tally.observe(l))?;
    }
    Ok(Step {
        name: "host unit tests".into(),
        ok: ok && tally.failed == 0,
        tally,
        note: String::new(),
    })
}

/// Runs `c`, feeding each stdout line to `on_line` (and echoing it if `echo`); true on
/// success.
fn tee(c: &mut Command, echo: bool, on_line: &mut dyn FnMut(&str)) -> Result<bool> {
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {c:?}"))?;
    let stdout = child.stdout.take().context("stdout not piped")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.with_context(|| format!("reading the output of {c:?}"))?;
        if echo {
            println!("{line}");
        }
        on_line(&line);
    }
    Ok(child.wait()?.success())
}

/// Builds the kernel test binary and returns its path.
fn build_kernel_tests() -> Result<PathBuf> {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.args([
        "test",
        "-p",
        "governor-kernel-tests",
        "--no-run",
        "--message-format=json",
    ]);
    let mut exe = None;
    let ok = tee(&mut c, false, &mut |line| {
        if let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) {
            if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "kernel" {
                if let Some(path) = msg["executable"].as_str() {
                    exe = Some(PathBuf::from(path));
                }
            }
        }
    })?;
    if !ok {
        bail!("building the kernel tests failed: {c:?}");
    }
    exe.context("cargo built no `kernel` test executable")
}

/// One VM boot running the kernel tests; a run that executes no test fails.
fn vm_step(name: String, run: &VmRun) -> Result<Step> {
    let mut tally = Tally::default();
    let code = vm::run_in_vm_with(run, &mut |line| {
        tally.observe(&String::from_utf8_lossy(line));
    })?;
    let mut note = String::new();
    if code != 0 {
        note = format!("exit code {code}");
    } else if tally.passed == 0 {
        note = "no kernel test ran".into();
    }
    Ok(Step {
        name,
        ok: code == 0 && tally.passed > 0 && tally.failed == 0,
        tally,
        note,
    })
}

/// Prints the summary and returns the exit code.
fn summarize(steps: &[Step]) -> i32 {
    println!("\n== summary ==");
    let mut total = Tally::default();
    for s in steps {
        total.passed += s.tally.passed;
        total.failed += s.tally.failed;
        println!(
            "{:<4} {:<32} {:>4} passed {:>3} failed {}",
            if s.ok { "ok" } else { "FAIL" },
            s.name,
            s.tally.passed,
            s.tally.failed,
            s.note
        );
    }
    let failed_steps = steps.iter().filter(|s| !s.ok).count() as u64;
    // A failed step without a failed test (a crash, a boot failure) still counts as a failure.
    let failed = total.failed.max(failed_steps);
    println!("xtask test: {} passed, {} failed", total.passed, failed);
    i32::from(failed > 0)
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn tally_reads_libtest_summaries() {
        let mut t = Tally::default();
        t.observe("test result: ok. 36 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.37s");
        t.observe("test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 1 filtered out");
        t.observe("running 4 tests");
        assert_eq!((t.passed, t.failed, t.suites), (39, 2, 2));
    }
}
