//! Authority end to end: operators' keys, signed lease files, the daemon's checks on submit,
//! the kernel enforcing exactly what was signed, expiry and revocation, agents' requests
//! (which grant nothing until an operator signs), and the kill switch, which with `status`
//! stays within its time bounds under a flood of refusals. Time: a lease's start
//! and end are on the boot clock, so moving the wall clock neither starts a scheduled lease
//! early nor extends one, and neither does a daemon restart with the clock set back. Keys:
//! a secret key made on a host with a live daemon is registered with it and off limits to
//! agents, restarts included.
//!
//! This file holds the shared policy and the helpers that read leases and keys; `signed` has
//! signed leases from issue to expiry (the clock and restart cases included), `requests` the
//! agents' requests, key protection and the kill switch.
//!
//! May import the test library (`governor_kernel_tests`); the kernel tests' folders import
//! nothing from each other.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, governor_bin,
    operator::{err_stderr, governor, lease_id, listed, ok_stdout, submit, trusted_dir, Operator},
    pin_dir_for, require_bpf_lsm, scratch, state_dir_for, write, Daemon, DEFAULT_STATE_DIR,
};
use serde_json::Value;

mod requests;
mod signed;

const OPS_CGROUP: &str = "/sys/fs/cgroup/governor-test/ops";
/// A local "database" port whose connects the policy leases.
const DB_PORT: u16 = 15432;

fn policy(dir: &Path) -> String {
    format!(
        r#"
[policy]
name = "authority"
owner = "platform-team@example.com"

[[agents]]
name = "ops"
cgroup = "governor-test/ops"
max_lease_ttl = "1h"

[[agents]]
name = "other"
cgroup = "governor-test/other"

# Deletes here are reversible enough (backups): one operator may approve them.
[classes.delete]
decision = "lease"
approvals = 1

[classes.chmod]
reversibility = "reversible"
blast_radius = "high"
decision = "lease"
approvals = 2

[[protect]]
path = "{prod}"
lease = ["delete"]
deny = ["truncate"]

[[protect]]
path = "{vault}"
lease = ["chmod"]

[[network]]
cidr = "127.0.0.1"
ports = [{port}]
lease = ["connect"]
"#,
        port = DB_PORT,
        prod = dir.join("prod").display(),
        vault = dir.join("vault").display(),
    )
}

/// The daemon's view of lease `id` (`governor lease list --all --json`).
fn lease_state(id: &str) -> Value {
    listed(id).unwrap_or_else(|| panic!("lease {id} not listed"))
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sleeps until the wall clock reads `ms` (unix milliseconds).
fn sleep_until_wall(ms: u64) {
    let now = wall_ms();
    if ms > now {
        thread::sleep(Duration::from_millis(ms - now));
    }
}

/// `governor key generate` for `name` while the daemon runs: checks its warning and that
/// the daemon took the secret key under protection; the secret key's path.
fn generate_here(dir: &Path, name: &str) -> std::path::PathBuf {
    let secrets = dir.join(format!("keys-{name}"));
    let out = governor(&[
        "key",
        "generate",
        "--operator",
        &format!("{name} <{name}@example.com>"),
        "--secret-dir",
        &s(&secrets),
        "--trusted-dir",
        &s(&dir.join(format!("untrusted-{name}"))),
    ]);
    ok_stdout(&out, &format!("key generate for {name}"));
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("a governor daemon runs on this host")
            && warning.contains("Operator keys belong on a machine where no agent runs")
            && warning.contains("the daemon protects"),
        "{warning}"
    );
    std::fs::read_dir(&secrets)
        .expect("secret dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .unwrap_or_else(|| panic!("no .key file in {}", secrets.display()))
}
