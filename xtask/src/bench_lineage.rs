//! `cargo xtask bench --group lineage-trace`: the lineage `trace` benchmark, on the host (a
//! query benchmark; no kernel involved). Runs the hidden `governor lineage bench-trace`,
//! which builds a synthetic 10M-event database in `target/bench/lineage-trace.db` (kept and
//! reused while it holds as many events) and times the trace query path on 1000 random
//! events. Target: p99 ≤ 20 ms.

use std::{path::Path, process::Command};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::vm;

/// The group's name for `--group`.
pub const GROUP: &str = "lineage-trace";
const EVENTS: u64 = 10_000_000;

/// Runs the benchmark with the governor binary in `bin_dir`; prints its figures and
/// returns its report (`pass` says whether the target was met).
pub fn run(bin_dir: &Path) -> Result<Value> {
    let db = vm::target_dir()?.join("bench").join("lineage-trace.db");
    eprintln!(
        "\n== bench: lineage trace on {EVENTS} events ({}; the first run builds it) ==",
        db.display()
    );
    let governor = bin_dir.join("governor");
    let out = Command::new(&governor)
        .args([
            "lineage",
            "bench-trace",
            "--events",
            &EVENTS.to_string(),
            "--db",
        ])
        .arg(&db)
        .output()
        .with_context(|| format!("cannot start {}", governor.display()))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("governor lineage bench-trace failed ({})", out.status);
    }
    let report: Value = serde_json::from_slice(&out.stdout)
        .context("governor lineage bench-trace printed no JSON report")?;
    println!(
        "lineage trace, {} events: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} traces \
         (target p99 <= {} ms): {}",
        report["events"],
        report["p50_ms"].as_f64().unwrap_or(f64::NAN),
        report["p99_ms"].as_f64().unwrap_or(f64::NAN),
        report["max_ms"].as_f64().unwrap_or(f64::NAN),
        report["traces"],
        report["target_ms"],
        if report["pass"] == true {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(report)
}
