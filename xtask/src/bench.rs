//! `cargo xtask bench`: governor's benchmarks, in one VM boot. Builds governor (with its
//! `bench` feature) and the benchmark driver (`bench/`, crate governor-bench), runs the
//! driver as root inside the VM, prints its table, writes its JSON report to `target/bench/<kernel>.json`, and fails if a
//! target is missed (unless `--no-fail`). Not part of `cargo xtask test`: timings are not
//! tests.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{bail, Context, Result};
use governor_bench::{report, JSON_MARKER};
use serde_json::Value;

use crate::{
    bench_flood, bench_ingest, bench_lineage, cmd,
    kernels::Series,
    setup,
    vm::{self, VmRun},
};

/// The driver's exit code when it could not run the benchmark at all.
const DRIVER_ERROR: i32 = 2;

/// Benchmarks run governor as it is deployed: the release build (the lineage pipeline's
/// rate under a flood is the daemon's own code's, tokio and tracing included).
const RELEASE: bool = true;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Guest kernel series.
    #[arg(long, value_enum, default_value_t = Series::V6_12)]
    pub kernel: Series,
    /// Report missed targets but exit 0 (for development).
    #[arg(long)]
    pub no_fail: bool,
    /// Only this benchmark group (repeatable; default: all). `ingest`, `lineage-trace` and
    /// `flood-host` run on the host, the others (`enforcement`, `flood`, `rollback`) in the VM.
    #[arg(long)]
    pub group: Vec<String>,
    /// Blocks with governor; there is one more block without (each starts the daemon anew).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Timed batches of each case per block (the fastest counts).
    #[arg(long)]
    pub repeats: Option<u32>,
    /// Target duration of one timed batch, in milliseconds.
    #[arg(long)]
    pub batch_ms: Option<u32>,
    /// Seconds before the VM is killed.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// What the enforcement group's guest clock counts. `instructions` (QEMU's icount, TCG
    /// only): one guest nanosecond per instruction executed, so the figures do not move with
    /// the host's load and a change of a few instructions per operation shows. `wall`: real
    /// time, as the guest sees it. The flood group always runs on wall time, in its own boot.
    #[arg(long, value_enum, default_value_t = Clock::Instructions)]
    pub clock: Clock,
    /// Guest vCPUs. Default: 1 on the instruction clock (icount runs vCPUs in turn on one
    /// host thread), 2 on wall time (the daemon on the first, the measured processes on the
    /// last, so they do not share a vCPU; the host has 2 cores).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Denied sends of the VM's flood group (the host's floods 1,000,000): one second at
    /// 100,000/s. Under QEMU TCG the daemon records about 20,000 a second (its SQLite writer
    /// alone about 27,000), so the VM checks a flood its buffers (kernel ring and queues)
    /// hold while it drains; the sustained rate is the host's `flood-host` group.
    #[arg(long, default_value_t = 100_000)]
    pub vm_flood_count: u64,
}

/// The enforcement group's guest clock (`--clock`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Instructions,
    Wall,
}

impl BenchArgs {
    /// The driver's command-line options, for `groups` (empty: all of the driver's).
    fn driver_args(&self, groups: &[String]) -> Vec<String> {
        let mut a = Vec::new();
        for g in groups {
            a.extend(["--group".to_owned(), g.clone()]);
        }
        for (flag, v) in [
            ("--rounds", self.rounds),
            ("--repeats", self.repeats),
            ("--batch-ms", self.batch_ms),
        ] {
            if let Some(v) = v {
                a.extend([flag.to_owned(), v.to_string()]);
            }
        }
        a.extend(["--flood-count".to_owned(), self.vm_flood_count.to_string()]);
        a
    }

    /// The VM boots the VM groups need. On wall time, one boot runs them all. On the
    /// instruction clock the enforcement group gets its own boot, the rollback group another
    /// (with the memory its tmpfs tree and snapshot need), and the flood group, whose pace is
    /// real time, another on wall time.
    fn boots(&self) -> Vec<Boot> {
        let wants = |g: &str| self.group.is_empty() || self.group.iter().any(|x| x == g);
        let mem = |rollback: bool| {
            if rollback {
                ROLLBACK_MEM
            } else {
                vm::DEFAULT_MEM
            }
            .to_owned()
        };
        if self.clock == Clock::Wall {
            return vec![Boot {
                groups: self.group.clone(),
                icount: false,
                cpus: self.cpus.unwrap_or(2),
                mem: mem(wants(ROLLBACK_GROUP)),
            }];
        }
        let mut boots = Vec::new();
        // Names the driver does not know go to the first boot, which refuses them by name.
        let mut first: Vec<String> = self
            .group
            .iter()
            .filter(|g| *g != FLOOD_GROUP && *g != ROLLBACK_GROUP)
            .cloned()
            .collect();
        if wants(ENFORCEMENT_GROUP) || !first.is_empty() {
            if first.is_empty() {
                first.push(ENFORCEMENT_GROUP.to_owned());
            }
            boots.push(Boot {
                groups: first,
                icount: true,
                cpus: self.cpus.unwrap_or(1),
                mem: mem(false),
            });
        }
        if wants(ROLLBACK_GROUP) {
            boots.push(Boot {
                groups: vec![ROLLBACK_GROUP.to_owned()],
                icount: true,
                cpus: self.cpus.unwrap_or(1),
                mem: mem(true),
            });
        }
        if wants(FLOOD_GROUP) {
            boots.push(Boot {
                groups: vec![FLOOD_GROUP.to_owned()],
                icount: false,
                cpus: self.cpus.unwrap_or(2),
                mem: mem(false),
            });
        }
        boots
    }
}

/// The governor every group runs, on the host and in the guest alike: the release build
/// with the crate's `bench` feature, which adds only the hidden `governor lineage
/// bench-trace` (and the synthetic database it builds) to the shipped binary.
fn build_governor() -> Result<PathBuf> {
    vm::build_governor_with(RELEASE, &[GOVERNOR_FEATURE])
}

/// The governor crate's feature for benchmark-only code.
const GOVERNOR_FEATURE: &str = "bench";

/// The driver's VM groups.
const ENFORCEMENT_GROUP: &str = "enforcement";
const FLOOD_GROUP: &str = "flood";
const ROLLBACK_GROUP: &str = "rollback";
/// Guest memory of a boot running the rollback group: its 1 GiB tree on tmpfs and the
/// snapshot's 1 GiB copy (the state directory is a tmpfs too), besides the btrfs image.
const ROLLBACK_MEM: &str = "4G";

/// One VM boot of the driver.
#[derive(Debug, PartialEq, Eq)]
struct Boot {
    groups: Vec<String>,
    icount: bool,
    cpus: u32,
    mem: String,
}

pub fn run(args: BenchArgs) -> Result<i32> {
    // The host-side steps first (no VM); `--group ingest` / `--group lineage-trace` run
    // only them.
    let wants = |g: &str| args.group.is_empty() || args.group.iter().any(|x| x == g);
    let ingest_missed = wants(bench_ingest::GROUP) && !bench_ingest::run()?;
    let mut host_missed = Vec::new();
    if wants(bench_lineage::GROUP) {
        let report = bench_lineage::run(&build_governor()?)?;
        if report["pass"] != true {
            host_missed.push(format!(
                "{} (p99 {} ms)",
                bench_lineage::GROUP,
                report["p99_ms"]
            ));
        }
    }
    let host_only = |g: &String| {
        g == bench_ingest::GROUP || g == bench_lineage::GROUP || g == bench_flood::GROUP
    };
    let mut built = None;
    if wants(bench_flood::GROUP) {
        eprintln!("\n== bench: building governor and the benchmark driver ==");
        let (bin_dir, driver) = (build_governor()?, build_driver()?);
        let flood = bench_flood::run(&driver, &bin_dir)?;
        if flood["pass"] != true {
            host_missed.push(format!("{} (lost {})", bench_flood::GROUP, flood["lost"]));
        }
        built = Some((bin_dir, driver));
    }
    if !args.group.is_empty() && args.group.iter().all(host_only) {
        let missed = ingest_missed || !host_missed.is_empty();
        return Ok(i32::from(missed && !args.no_fail));
    }
    let mut args = args;
    args.group.retain(|g| !host_only(g));
    setup::ensure_all()?;
    let (bin_dir, driver) = match built {
        Some(b) => b,
        None => {
            eprintln!("\n== bench: building governor and the benchmark driver ==");
            (build_governor()?, build_driver()?)
        }
    };
    let load_before = host_load();

    let mut report: Option<Value> = None;
    for boot in args.boots() {
        let one = match boot_report(&args, &boot, &driver, &bin_dir)? {
            Ok(one) => one,
            Err(code) => return Ok(code),
        };
        report = Some(match report {
            None => one,
            Some(mut first) => {
                merge(&mut first, one, &boot.groups.join("+"));
                first
            }
        });
    }
    let Some(mut report) = report else {
        bail!("no benchmark group to run in the VM");
    };
    report["machine"]["host_cpus"] = std::thread::available_parallelism()
        .map_or(0, usize::from)
        .into();
    report["machine"]["host_load_before"] = load_before.into();
    report["machine"]["host_load_after"] = host_load().into();

    let out = vm::target_dir()?
        .join("bench")
        .join(format!("{}.json", args.kernel));
    std::fs::create_dir_all(out.parent().context("report path has a parent")?)?;
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;

    let rows = report::rows_from_json(&report).context("the driver's report has no valid rows")?;
    println!("\n== bench: Linux {} ==", args.kernel);
    if report["machine"]["clock"] == "instructions" {
        println!(
            "enforcement clock: guest instructions (QEMU icount, 1 ns = 1 instruction \
             executed); the host's load does not move these figures"
        );
    }
    if !rows.is_empty() {
        print!("{}", report::table(&rows)?);
    }
    if let Some(b) = report::breakdown_from_json(&report).filter(|b| !b.is_empty()) {
        println!("\nWhere the time goes with governor attached (kernel BPF statistics):");
        print!("{}", report::breakdown_table(&b));
    }
    println!(
        "host load average (1 min) before/after: {} / {}; report: {}",
        report["machine"]["host_load_before"],
        report["machine"]["host_load_after"],
        out.display()
    );
    if let Some(f) = report.get("flood") {
        println!("{}", bench_flood::summary("VM, QEMU TCG", f));
    }
    if let Some(r) = report.get(ROLLBACK_GROUP) {
        print!("{}", rollback_summary(r));
    }
    let mut missed = missed(&report);
    if ingest_missed {
        missed.push("lineage ingest".to_owned());
    }
    missed.extend(host_missed);
    if missed.is_empty() {
        println!("xtask bench: every target met");
        return Ok(0);
    }
    println!(
        "xtask bench: TARGET MISSED for {}{}",
        missed.join(", "),
        if args.no_fail {
            " (--no-fail: exit 0)"
        } else {
            ""
        }
    );
    Ok(i32::from(!args.no_fail))
}

/// Runs the driver for `boot`'s groups in one VM boot: its report, or the exit code to end
/// with when it gave none.
fn boot_report(
    args: &BenchArgs,
    boot: &Boot,
    driver: &std::path::Path,
    bin_dir: &std::path::Path,
) -> Result<Result<Value, i32>> {
    let clock = if boot.icount {
        "instruction clock"
    } else {
        "wall clock"
    };
    eprintln!(
        "\n== bench: Linux {} (BPF-LSM), one VM boot, {}, {} vCPU ==",
        args.kernel,
        if boot.groups.is_empty() {
            "every VM group".to_owned()
        } else {
            boot.groups.join(", ")
        },
        boot.cpus
    );
    eprintln!("bench: guest on the {clock}");
    let mut argv = vec![driver.as_os_str().to_owned()];
    argv.extend(args.driver_args(&boot.groups).into_iter().map(Into::into));
    let mut run = VmRun::new(args.kernel, argv);
    run.cpus = boot.cpus.max(1);
    run.mem = boot.mem.clone();
    run.icount = boot.icount;
    run.path_prepend.push(bin_dir.to_path_buf());
    run.timeout = Duration::from_secs(args.timeout);
    let mut report: Option<Value> = None;
    let code = vm::run_in_vm_with(&run, &mut |line| {
        if let Some(v) = report_line(&String::from_utf8_lossy(line)) {
            report = Some(v);
        }
    })?;
    if let Some(sig) = cmd::caught_signal() {
        return Ok(Err(128 + sig));
    }
    match report {
        Some(r) => Ok(Ok(r)),
        None => {
            eprintln!(
                "xtask bench: the benchmark produced no report (driver exit code {code}{}); \
                 see its output above",
                if code == DRIVER_ERROR {
                    ": it could not run"
                } else {
                    ""
                }
            );
            Ok(Err(if code == 0 { 1 } else { code }))
        }
    }
}

/// Adds a later boot's report to the first: its rows and breakdown after the first's, and
/// any section the first lacks (the flood group's, the rollback group's); its machine facts
/// under `machine_<name>` (the later boot's groups).
fn merge(first: &mut Value, later: Value, name: &str) {
    let Value::Object(later) = later else {
        return;
    };
    for (key, value) in later {
        match (key.as_str(), first.get_mut(&key)) {
            ("rows" | "breakdown", Some(Value::Array(mine))) => {
                if let Value::Array(more) = value {
                    mine.extend(more);
                }
            }
            ("machine", _) => first[format!("machine_{name}")] = value,
            ("pass", Some(mine)) => *mine = Value::Bool(*mine == true && value == true),
            (_, None) => first[key] = value,
            _ => {}
        }
    }
}

/// The report on a guest output line starting with [`JSON_MARKER`].
fn report_line(line: &str) -> Option<Value> {
    let json = line.trim_end().split_once(JSON_MARKER)?.1;
    serde_json::from_str(json).ok()
}

/// "operation/who" of every row that missed its target, and the flood and rollback groups
/// if they did.
fn missed(report: &Value) -> Vec<String> {
    let mut missed = rows_missed(report);
    if report.get("flood").is_some_and(|f| f["pass"] != true) {
        missed.push("flood (VM)".to_owned());
    }
    if report
        .get(ROLLBACK_GROUP)
        .is_some_and(|r| r["pass"] != true)
    {
        missed.push("rollback (btrfs snapshot/restore)".to_owned());
    }
    missed
}

/// The rollback group's figures, one line per filesystem with the floor beside them (the
/// least per-file system calls cost there, `bench/src/rollback_floor.rs`), against the btrfs
/// targets.
fn rollback_summary(r: &Value) -> String {
    let mut out = format!(
        "rollback, {} files / {} bytes, the daemon's took_ms (median, worst over the rounds):\n",
        r["files"], r["bytes"]
    );
    for fs in ["btrfs", "tmpfs"] {
        let c = &r[fs];
        let ms = |what: &str, k: &str| c[what][k].as_f64().unwrap_or(f64::NAN);
        let floor = |what: &str| c["floor"][what]["median_ms"].as_f64().unwrap_or(f64::NAN);
        out += &format!(
            "  {fs} ({}): snapshot {:.0} ms (worst {:.0}; floor {:.0}), restore {:.0} ms \
             (worst {:.0}; floor {:.0})\n",
            c["method"].as_str().unwrap_or("?"),
            ms("snapshot", "median_ms"),
            ms("snapshot", "max_ms"),
            floor("snapshot"),
            ms("restore", "median_ms"),
            ms("restore", "max_ms"),
            floor("restore"),
        );
    }
    let t = &r["targets"]["btrfs"];
    out += &format!(
        "  targets on btrfs: snapshot <= {} ms, restore <= {} ms: {}\n",
        t["snapshot_ms"],
        t["restore_ms"],
        if r["pass"] == true { "met" } else { "MISSED" }
    );
    out
}

fn rows_missed(report: &Value) -> Vec<String> {
    report["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["pass"] != true)
                .map(|r| {
                    format!(
                        "{} {}/{} ({:+.1}% > {}%)",
                        r["group"].as_str().unwrap_or("?"),
                        r["op"].as_str().unwrap_or("?"),
                        r["who"].as_str().unwrap_or("?"),
                        r["overhead_pct"].as_f64().unwrap_or(f64::NAN),
                        r["target_pct"]
                    )
                })
                .collect()
        })
        .unwrap_or_else(|| vec!["(report without rows)".to_owned()])
}

/// The 1-minute load average of the host (how busy the machine under the VM was).
fn host_load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Builds the benchmark driver and returns its path.
fn build_driver() -> Result<PathBuf> {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(vm::workspace_root()).args([
        "build",
        "-p",
        "governor-bench",
        "--bin",
        "governor-bench",
        "--message-format=json-render-diagnostics",
    ]);
    let out = c.output().with_context(|| format!("cannot start {c:?}"))?;
    if !out.status.success() {
        bail!("building the benchmark driver failed: {c:?}");
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "governor-bench")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo built no governor-bench executable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_report_line_and_misses() {
        assert!(report_line("bench: block 1/9 without governor").is_none());
        assert!(report_line(&format!("{JSON_MARKER}{{not json")).is_none());
        let line = format!(
            "{JSON_MARKER}{}\r",
            serde_json::json!({"pass": false, "rows": [
                {"group": "enforcement", "op": "open+read", "who": "agent", "pass": true,
                 "overhead_pct": 1.0, "target_pct": 3.0},
                {"group": "enforcement", "op": "tcp connect", "who": "non-agent", "pass": false,
                 "overhead_pct": 2.25, "target_pct": 1.0}]})
        );
        let r = report_line(&line).expect("report found");
        assert_eq!(
            missed(&r),
            ["enforcement tcp connect/non-agent (+2.2% > 1.0%)"]
        );
        assert_eq!(missed(&serde_json::json!({})), ["(report without rows)"]);
        let rollback = serde_json::json!({"rows": [], "rollback": {"pass": false,
            "files": 10000, "bytes": 1073741824,
            "btrfs": {"method": "reflink", "snapshot": {"median_ms": 250.0, "max_ms": 300.0},
                      "restore": {"median_ms": 900.0, "max_ms": 950.0},
                      "floor": {"snapshot": {"median_ms": 120.0},
                                "restore": {"median_ms": 700.0}}},
            "targets": {"btrfs": {"snapshot_ms": 200.0, "restore_ms": 1000.0}}}});
        assert_eq!(missed(&rollback), ["rollback (btrfs snapshot/restore)"]);
        let summary = rollback_summary(&rollback["rollback"]);
        assert!(
            summary.contains(
                "btrfs (reflink): snapshot 250 ms (worst 300; floor 120), restore 900 ms \
                 (worst 950; floor 700)"
            ) && summary.contains("tmpfs (?)")
                && summary.ends_with("restore <= 1000.0 ms: MISSED\n"),
            "{summary}"
        );
    }

    fn args(group: &[&str], clock: Clock, cpus: Option<u32>) -> BenchArgs {
        BenchArgs {
            kernel: Series::V6_12,
            no_fail: false,
            group: group.iter().map(|g| (*g).to_owned()).collect(),
            rounds: None,
            repeats: None,
            batch_ms: None,
            timeout: 1,
            clock,
            cpus,
            vm_flood_count: 7,
        }
    }

    fn boot(groups: &[&str], icount: bool, cpus: u32) -> Boot {
        let mem = if groups.is_empty() || groups.contains(&"rollback") {
            ROLLBACK_MEM
        } else {
            vm::DEFAULT_MEM
        };
        Boot {
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            icount,
            cpus,
            mem: mem.to_owned(),
        }
    }

    #[test]
    fn the_instruction_clock_boots_the_flood_apart() {
        use Clock::{Instructions, Wall};
        assert_eq!(
            args(&[], Instructions, None).boots(),
            [
                boot(&["enforcement"], true, 1),
                boot(&["rollback"], true, 1),
                boot(&["flood"], false, 2)
            ]
        );
        assert_eq!(
            args(&["rollback"], Instructions, None).boots(),
            [boot(&["rollback"], true, 1)]
        );
        assert_eq!(
            args(&["enforcement", "rollback"], Instructions, None).boots(),
            [
                boot(&["enforcement"], true, 1),
                boot(&["rollback"], true, 1)
            ]
        );
        assert_eq!(
            args(&["flood"], Instructions, Some(3)).boots(),
            [boot(&["flood"], false, 3)]
        );
        assert_eq!(
            args(&["enforcement"], Instructions, None).boots(),
            [boot(&["enforcement"], true, 1)]
        );
        // An unknown name reaches the driver, which refuses it by name.
        assert_eq!(
            args(&["nope"], Instructions, None).boots(),
            [boot(&["nope"], true, 1)]
        );
        assert_eq!(args(&[], Wall, None).boots(), [boot(&[], false, 2)]);
    }

    #[test]
    fn merges_a_later_boot() {
        let mut first = serde_json::json!({"pass": true, "rows": [{"op": "a"}],
            "breakdown": [1], "machine": {"clock": "instructions"}});
        merge(
            &mut first,
            serde_json::json!({"pass": false, "rows": [], "breakdown": [2],
                "machine": {"clock": "wall"}, "flood": {"pass": false}}),
            "flood",
        );
        assert_eq!(
            first,
            serde_json::json!({"pass": false, "rows": [{"op": "a"}], "breakdown": [1, 2],
                "machine": {"clock": "instructions"}, "machine_flood": {"clock": "wall"},
                "flood": {"pass": false}})
        );
    }

    #[test]
    fn passes_only_given_options() {
        let a = BenchArgs {
            kernel: Series::V6_12,
            no_fail: false,
            group: vec!["enforcement".into()],
            rounds: Some(2),
            repeats: None,
            batch_ms: Some(50),
            timeout: 1,
            clock: Clock::Wall,
            cpus: Some(2),
            vm_flood_count: 7,
        };
        assert_eq!(
            a.driver_args(&a.group),
            [
                "--group",
                "enforcement",
                "--rounds",
                "2",
                "--batch-ms",
                "50",
                "--flood-count",
                "7"
            ]
        );
    }
}
