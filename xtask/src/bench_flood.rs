//! The host-side flood step of `cargo xtask bench` (`--group flood-host`): the driver's
//! `flood` group run natively on this host, as root, with the daemon in degraded mode (the
//! host kernel refuses BPF-LSM; the flood's `send` denials come from the cgroup sendmsg
//! program, through the same ring buffer, reader, sink and lineage writer as any decision).
//! Target: 0 deny events lost under a 100,000/s flood. The VM runs the same group under QEMU
//! TCG (`--group flood`), which shows where a flood the emulated daemon cannot keep up with
//! goes (counted gaps), not the rate.

use std::{path::Path, process::Command};

use anyhow::{bail, Context, Result};
use governor_bench::JSON_MARKER;
use serde_json::Value;

/// The group name (`cargo xtask bench --group flood-host`).
pub const GROUP: &str = "flood-host";

/// Runs the flood on the host with `driver` and the governor in `bin_dir`; returns its
/// result (with `pass`).
pub fn run(driver: &Path, bin_dir: &Path) -> Result<Value> {
    eprintln!("\n== bench: lineage flood on the host (native; daemon in degraded mode) ==");
    let mut c = Command::new(driver);
    c.args(["--group", "flood"])
        .env("GOVERNOR_BIN", bin_dir.join("governor"));
    let out = c.output().with_context(|| format!("cannot start {c:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Option<Value> = stdout
        .lines()
        .find_map(|l| l.split_once(JSON_MARKER))
        .and_then(|(_, j)| serde_json::from_str(j).ok());
    let Some(flood) = report
        .map(|mut r| r["flood"].take())
        .filter(|f| !f.is_null())
    else {
        bail!(
            "the host flood produced no result ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    println!("{}", summary("host", &flood));
    Ok(flood)
}

/// One line for a flood result; `place` is "host" or the VM's kernel.
pub fn summary(place: &str, f: &Value) -> String {
    format!(
        "lineage flood ({place}, kernel {}): {} denied sends at {}/s (target {}/s): {} rows, \
         {} lost ({} counted in {} gap rows{}); last row {:.1} s after the flood: {}",
        f["kernel"].as_str().unwrap_or("?"),
        f["denied"],
        f["rate_per_sec"],
        f["target_rate_per_sec"],
        f["rows"],
        f["lost"],
        f["gap_lost"],
        f["gaps"].as_array().map_or(0, Vec::len),
        if f["accounted"] == true {
            ": every denial is a row or counted"
        } else {
            ": SOME DENIALS NEITHER RECORDED NOR COUNTED"
        },
        f["drained_s"].as_f64().unwrap_or(f64::NAN),
        if f["pass"] == true { "met" } else { "MISSED" }
    )
}
