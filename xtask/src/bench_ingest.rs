//! The host-side step of `cargo xtask bench`: lineage ingest, records per second into SQLite
//! through the daemon's real writer thread on one core (the `ingest_bench` test of
//! `governor/src/lineage/writer/tests.rs`, run on the host: it needs no BPF). Three rounds; the
//! median is judged. Target: 250,000 events/s.

use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::vm;

/// The benchmark group name (`cargo xtask bench --group ingest`).
pub const GROUP: &str = "ingest";
/// Events per second the writer must sustain.
pub const TARGET_EVENTS_PER_SEC: f64 = 250_000.0;
/// What the test prints before its JSON result.
const MARKER: &str = "INGEST_BENCH ";

/// Runs the ingest benchmark; returns whether it met its target.
pub fn run() -> Result<bool> {
    eprintln!(
        "\n== bench: lineage ingest on the host (3 rounds of 1,000,000 events, one writer \
         thread) =="
    );
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(vm::workspace_root()).args([
        "test",
        "-p",
        "governor",
        "--bin",
        "governor",
        "lineage::writer::tests::ingest_bench",
        "--",
        "--exact",
        "--ignored",
        "--nocapture",
    ]);
    let out = c.output().with_context(|| format!("cannot start {c:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the ingest benchmark failed: {c:?}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json = stdout
        .lines()
        .find_map(|l| l.split_once(MARKER).map(|(_, j)| j.to_owned()))
        .context("the ingest benchmark printed no result")?;
    let v: Value = serde_json::from_str(&json).context("the ingest result is not JSON")?;
    let rate = v["events_per_sec"].as_f64().unwrap_or(0.0);
    let pass = rate >= TARGET_EVENTS_PER_SEC;
    println!(
        "lineage ingest: {:.0} events/s, median of {} rounds of {} events (rounds: {}); \
         target >= {:.0}: {}",
        rate,
        v["rounds"],
        v["events"],
        v["round_rates"],
        TARGET_EVENTS_PER_SEC,
        if pass { "met" } else { "MISSED" }
    );
    let out = vm::target_dir()?.join("bench").join("ingest.json");
    std::fs::create_dir_all(out.parent().context("report path has a parent")?)?;
    std::fs::write(&out, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(pass)
}
