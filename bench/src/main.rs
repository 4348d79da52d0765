//! `governor-bench`: the benchmark driver. Runs as root inside the BPF-LSM VM (`cargo xtask
//! bench` starts it), measures each benchmark group without and with governor, prints a
//! table, and prints the JSON report on one line starting with
//! [`governor_bench::JSON_MARKER`].
//!
//! Exit codes: 0 every target met, 1 a target missed, 2 the benchmark could not run.
//!
//! `governor-bench --worker DIR` is the same executable as a worker process, which runs the
//! timed loops inside one cgroup (see `worker.rs`); the driver starts those itself.
//!
//! To add a benchmark group, write a module with a `run(&mut Ctx) -> Result<Vec<Row>>` (use
//! [`schedule::run`] for the interleaved blocks) and list it in [`GROUPS`].

mod bpfstats;
mod daemon;
mod empty_lsm;
mod enforcement;
mod flood;
mod lsm_floor;
mod ops;
mod rollback;
mod rollback_floor;
mod rollback_tree;
mod schedule;
mod sys;
mod worker;

use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::{bail, Context, Result};
use governor_bench::{report, JSON_MARKER};
use serde_json::{Map, Value};

use crate::schedule::Schedule;

type GroupFn = fn(&mut Ctx) -> Result<Vec<report::Row>>;

/// Every benchmark group, in the order they run.
const GROUPS: &[(&str, GroupFn)] = &[
    (enforcement::NAME, enforcement::run),
    (flood::NAME, flood::run),
    (rollback::NAME, rollback::run),
];

const USAGE: &str = "usage: governor-bench [--group NAME]... [--rounds N] [--repeats N] \
[--batch-ms MS] [--paths N] [--rules N] [--flood-count N]
  --group     run only this group (repeatable; groups: enforcement, flood, rollback)
  --rounds    blocks with governor (default 3; there is one more block without it);
              the rollback group's snapshot-and-restore rounds per filesystem
  --repeats   timed batches of each case per block; the fastest counts (default 5)
  --batch-ms  target duration of one timed batch (default 100)
  --paths     protected paths loaded (default 10000)
  --rules     network rules loaded (default 1000)
  --flood-count  denied sends of the flood group (default 1000000)";

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Opts {
    pub groups: Vec<String>,
    pub schedule: Schedule,
    pub batch_ms: u64,
    pub paths: usize,
    pub rules: usize,
    pub flood_count: u64,
}

impl Opts {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Opts> {
        let mut o = Opts {
            groups: Vec::new(),
            schedule: Schedule {
                rounds: 3,
                repeats: 5,
            },
            batch_ms: 100,
            paths: 10_000,
            rules: 1000,
            flood_count: 1_000_000,
        };
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                bail!("{USAGE}");
            }
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
            let num = || -> Result<u64> {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{flag} wants a positive number, not {value:?}"))
            };
            match flag.as_str() {
                "--group" => {
                    if !GROUPS.iter().any(|(n, _)| *n == value) {
                        bail!("no benchmark group {value:?}\n{USAGE}");
                    }
                    o.groups.push(value.clone());
                }
                "--rounds" => o.schedule.rounds = num()? as usize,
                "--repeats" => o.schedule.repeats = num()? as usize,
                "--batch-ms" => o.batch_ms = num()?,
                "--paths" => o.paths = num()? as usize,
                "--rules" => o.rules = num()? as usize,
                "--flood-count" => o.flood_count = num()?,
                _ => bail!("unknown option {flag:?}\n{USAGE}"),
            }
        }
        Ok(o)
    }
}

/// What every group gets: options, the governor binary, a scratch directory, and the
/// report's `machine` facts, which a group may add to.
pub struct Ctx {
    pub opts: Opts,
    pub governor: PathBuf,
    pub scratch: PathBuf,
    pub machine: Map<String, Value>,
    /// Where the time goes with governor attached (kernel BPF statistics), per case.
    pub breakdown: Vec<report::Breakdown>,
    /// Results of groups that are not overhead rows, by group name; each has `pass`.
    pub results: Map<String, Value>,
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == worker::WORKER_FLAG) {
        let Some(work) = args.next() else {
            eprintln!(
                "governor-bench: {} needs the work directory",
                worker::WORKER_FLAG
            );
            return ExitCode::from(2);
        };
        return match worker::serve(std::path::Path::new(&work)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("governor-bench worker: error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("governor-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool> {
    let opts = Opts::parse(std::env::args().skip(1))?;
    sys::require_root()?;
    let governor =
        std::env::var_os("GOVERNOR_BIN").map_or_else(|| PathBuf::from("governor"), PathBuf::from);
    let cpus = sys::cpu_count();
    // The loops run on the last CPU, the daemon on CPU 0.
    sys::pin_to_cpu(cpus - 1)?;
    let mut machine = Map::new();
    machine.insert("kernel".into(), sys::kernel_release().into());
    machine.insert("cpus".into(), cpus.into());
    machine.insert("cpu_model".into(), sys::cpu_model().into());
    // `cargo xtask vm` says what the guest clock counts: with QEMU's icount, one guest
    // nanosecond is one instruction executed.
    let clock = std::env::var("GOVERNOR_VM_CLOCK").unwrap_or_else(|_| "wall".into());
    machine.insert("clock".into(), clock.into());
    machine.insert("rounds".into(), opts.schedule.rounds.into());
    machine.insert("repeats".into(), opts.schedule.repeats.into());
    machine.insert("batch_ms".into(), opts.batch_ms.into());
    let scratch = PathBuf::from("/tmp/governor-bench");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let mut ctx = Ctx {
        opts,
        governor,
        scratch,
        machine,
        breakdown: Vec::new(),
        results: Map::new(),
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    for (name, group) in GROUPS {
        if !ctx.opts.groups.is_empty() && !ctx.opts.groups.iter().any(|g| g == name) {
            continue;
        }
        eprintln!("bench: group {name}");
        rows.extend(group(&mut ctx).with_context(|| format!("benchmark group {name}"))?);
    }
    ctx.machine
        .insert("seconds".into(), started.elapsed().as_secs().into());
    if !rows.is_empty() {
        println!("\n{}", report::table(&rows)?);
    }
    if !ctx.breakdown.is_empty() {
        println!(
            "Where the time goes with governor attached (kernel BPF statistics, one batch \
             each):\n{}",
            report::breakdown_table(&ctx.breakdown)
        );
    }
    let mut json = report::to_json(ctx.machine, &rows, &ctx.breakdown)?;
    for (group, result) in ctx.results {
        println!("{group}: {result}");
        if result["pass"] != true {
            json["pass"] = false.into();
        }
        json[group] = result;
    }
    println!("{JSON_MARKER}{json}");
    Ok(json["pass"] == true)
}
