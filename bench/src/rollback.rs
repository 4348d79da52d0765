//! Benchmark group `rollback`: what a lease's snapshot and a rollback cost on a tree of 10,000
//! files / 1 GiB, through the real daemon: on btrfs, where the snapshot is a reflink per file
//! (targets: snapshot ≤ 200 ms, restore ≤ 1 s), and on tmpfs, the copy path (reported, no
//! target).
//!
//! One daemon protects both trees (every file class needs a lease). The driver makes an
//! operator key, and per filesystem fills the tree, checks that the agent is refused without
//! a lease (else governor would not be enforcing what this group measures), then `rounds`
//! times: issues and submits a lease over the tree (`lease submit --json`: the snapshot's
//! `took_ms` and method), lets the agent `rm -rf` everything in it under the lease, rolls back
//! with `governor rollback --lease L --revoke --json` (`took_ms`), and checks that every file
//! is back with its bytes. On btrfs the daemon's snapshot store (`/var/lib/governor/snapshots`)
//! is bound onto the same btrfs, so that a snapshot can be a reflink. A snapshot is removed
//! once restored: the guest's memory holds the tmpfs tree and one copy, not more.
//!
//! The figures are the daemon's own `took_ms`, on the guest clock (`cargo xtask bench` boots
//! this group on the instruction clock: one guest nanosecond per instruction); the group
//! passes when the medians over the rounds meet the btrfs targets.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Instant,
};

use anyhow::{bail, Context, Result};
use governor_bench::{report::Row, stats};
use serde_json::{json, Map, Value};

use crate::{
    daemon::Daemon,
    rollback_floor,
    rollback_tree::{self as tree, Mounted},
    Ctx,
};

pub const NAME: &str = "rollback";
const AGENT: &str = "bench-rollback";
const SNAPSHOT_TARGET_MS: f64 = 200.0;
const RESTORE_TARGET_MS: f64 = 1000.0;
/// The btrfs image (sparse): the tree's 1 GiB, metadata, and room to spare.
const BTRFS_MIB: u64 = 3072;
/// The daemon's snapshot store (its default state directory, a tmpfs in the VM).
const STORE: &str = "/var/lib/governor/snapshots";

/// One filesystem the group measures on.
struct Case {
    name: &'static str,
    tree: PathBuf,
    /// The snapshot method the daemon must report there.
    method: &'static str,
    /// A directory on the tree's filesystem to bind over [`STORE`], if the store must move.
    store: Option<PathBuf>,
    /// Where the floor's rounds keep their blobs: on the filesystem governor's store is on.
    floor_store: PathBuf,
}

pub fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    crate::sys::require_bpf_lsm()?;
    let root = ctx.scratch.join(NAME);
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("tmpfs"))?;
    let btrfs = root.join("btrfs");
    let mounted = Mounted::btrfs(&root.join("btrfs.img"), &btrfs, BTRFS_MIB)?;
    let cases = [
        Case {
            name: "tmpfs",
            tree: root.join("tmpfs/tree"),
            method: "copy",
            store: None,
            floor_store: Path::new(STORE).with_file_name("bench-floor"),
        },
        Case {
            name: "btrfs",
            tree: btrfs.join("tree"),
            method: "reflink",
            store: Some(btrfs.join("snapshots")),
            floor_store: btrfs.join("bench-floor"),
        },
    ];
    for c in &cases {
        fs::create_dir(&c.tree).with_context(|| format!("creating {}", c.tree.display()))?;
        if let Some(store) = &c.store {
            fs::create_dir(store)?;
        }
    }
    let policy = root.join("policy.toml");
    fs::write(&policy, policy_text(&cases))?;
    let log = root.join("daemon.log");
    // The config directory the driver's daemons read (daemon.rs): its trusted keys.
    let key = operator_key(ctx, &root, &log.with_file_name("etc-governor"))?;
    let daemon = Daemon::start(&ctx.governor, &policy, &log, 0)?;
    let mut results = Map::new();
    for c in &cases {
        eprintln!(
            "bench: {NAME}: {}: {} files, {} bytes",
            c.name,
            tree::FILES,
            tree::TOTAL_BYTES
        );
        let r = measure(ctx, c, &policy, &key, &root)
            .with_context(|| format!("the {} case", c.name))?;
        results.insert(c.name.into(), r);
    }
    daemon.stop()?;
    drop(mounted);
    let _ = fs::remove_dir_all(&root);

    let median = |case: &str, what: &str| results[case][what]["median_ms"].as_f64();
    let snap = median("btrfs", "snapshot").unwrap_or(f64::INFINITY);
    let restore = median("btrfs", "restore").unwrap_or(f64::INFINITY);
    let pass = snap <= SNAPSHOT_TARGET_MS && restore <= RESTORE_TARGET_MS;
    for (name, r) in &results {
        eprintln!(
            "bench: {NAME}: {name} ({}): snapshot median {} ms (floor {}), restore median {} ms \
             (floor {})",
            r["method"],
            r["snapshot"]["median_ms"],
            r["floor"]["snapshot"]["median_ms"],
            r["restore"]["median_ms"],
            r["floor"]["restore"]["median_ms"]
        );
    }
    let mut v = Value::Object(results);
    v["files"] = tree::FILES.into();
    v["bytes"] = tree::TOTAL_BYTES.into();
    v["targets"] = json!({"btrfs": {"snapshot_ms": SNAPSHOT_TARGET_MS,
                                    "restore_ms": RESTORE_TARGET_MS}});
    v["pass"] = pass.into();
    ctx.results.insert(NAME.into(), v);
    Ok(Vec::new())
}

/// The agent, one lease approval for every file class on both trees, and a budget that
/// holds the 1 GiB tree.
fn policy_text(cases: &[Case]) -> String {
    let mut p = format!(
        "[policy]\nname = \"bench-rollback\"\nowner = \"bench@example.com\"\n\n\
         [[agents]]\nname = \"{AGENT}\"\ncgroup = \"governor-bench/rollback\"\n\
         max_lease_ttl = \"1h\"\n\n\
         [classes.delete]\napprovals = 1\n\n[classes.truncate]\napprovals = 1\n\n\
         [classes.chattr]\napprovals = 1\n\n\
         [rollback]\nmax_bytes = {}\nmax_bytes_per_agent = {}\n",
        2 * tree::TOTAL_BYTES,
        8 * tree::TOTAL_BYTES
    );
    for c in cases {
        p += &format!(
            "\n[[protect]]\npath = \"{}\"\nlease = [\"modify\"]\n",
            c.tree.display()
        );
    }
    p
}

/// `governor key generate` for the bench's operator, trusted in `config_dir`; the secret key.
fn operator_key(ctx: &Ctx, root: &Path, config_dir: &Path) -> Result<PathBuf> {
    let secrets = root.join("keys");
    governor(
        ctx,
        &[
            "key",
            "generate",
            "--operator",
            "bench <bench@example.com>",
            "--secret-dir",
            &secrets.display().to_string(),
            "--trusted-dir",
            &config_dir.join("trusted-keys").display().to_string(),
        ],
    )?;
    fs::read_dir(&secrets)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .with_context(|| format!("no .key file in {}", secrets.display()))
}

/// Runs `governor ARGS`, which must succeed; its stdout.
fn governor(ctx: &Ctx, args: &[&str]) -> Result<String> {
    let out = Command::new(&ctx.governor)
        .args(args)
        .output()
        .with_context(|| format!("cannot start {}", ctx.governor.display()))?;
    ok(out, &format!("governor {}", args.join(" ")))
}

fn ok(out: Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `governor run --agent AGENT -- ARGS` (the command runs in the agent's cgroup).
fn as_agent(ctx: &Ctx, policy: &Path, args: &[&str]) -> Result<Output> {
    Command::new(&ctx.governor)
        .arg("run")
        .arg("--policy")
        .arg(policy)
        .args(["--agent", AGENT, "--"])
        .args(args)
        .output()
        .context("cannot start governor run")
}

/// Fills the case's tree, then `rounds` times: lease (snapshot), the agent's `rm -rf`,
/// rollback, check. The figures.
fn measure(ctx: &Ctx, c: &Case, policy: &Path, key: &Path, root: &Path) -> Result<Value> {
    let started = Instant::now();
    tree::fill(&c.tree)?;
    eprintln!(
        "bench: {NAME}: {}: tree written in {:.1} s",
        c.name,
        started.elapsed().as_secs_f64()
    );
    let probe = c.tree.join("d000/f00000");
    let out = as_agent(ctx, policy, &["rm", &probe.display().to_string()])?;
    if out.status.success() || !probe.exists() {
        bail!(
            "the agent removed {} without a lease: governor is not enforcing what this group \
             measures ({})",
            probe.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The floor, rounds times, before governor's own rounds on the same tree.
    let (mut floor_snaps, mut floor_restores) = (Vec::new(), Vec::new());
    for round in 0..ctx.opts.schedule.rounds {
        let r = rollback_floor::round(&c.tree, &c.floor_store)
            .with_context(|| format!("the floor's round {}", round + 1))?;
        tree::verify(&c.tree).context("after the floor's restore")?;
        eprintln!(
            "bench: {NAME}: {} floor round {}: snapshot {:.0} ms, restore {:.0} ms",
            c.name,
            round + 1,
            r.snapshot_ms,
            r.restore_ms
        );
        floor_snaps.push(r.snapshot_ms);
        floor_restores.push(r.restore_ms);
    }
    let _store = match &c.store {
        Some(dir) => Some(Mounted::bind(dir, Path::new(STORE))?),
        None => None,
    };
    let (mut snaps, mut restores, mut submits) = (Vec::new(), Vec::new(), Vec::new());
    let mut method = String::new();
    for round in 0..ctx.opts.schedule.rounds {
        let file = root.join(format!("{}-{round}.lease", c.name));
        let tree_arg = c.tree.display().to_string();
        governor(
            ctx,
            &[
                "lease",
                "issue",
                "--key",
                &key.display().to_string(),
                "--agent",
                AGENT,
                "--ttl",
                "30m",
                "--reason",
                "rollback benchmark",
                "--ticket",
                "BENCH-1",
                "--scope",
                &format!("modify:{tree_arg}"),
                "--out",
                &file.display().to_string(),
            ],
        )?;
        let t = Instant::now();
        let out = governor(
            ctx,
            &["lease", "submit", &file.display().to_string(), "--json"],
        )?;
        submits.push(t.elapsed().as_secs_f64() * 1000.0);
        let v: Value = serde_json::from_str(&out).context("lease submit --json")?;
        let snap = &v["snapshot"];
        let id = v["id"]
            .as_str()
            .with_context(|| format!("no lease id: {v}"))?;
        method = snap["method"].as_str().unwrap_or("?").to_owned();
        if method != c.method
            || snap["files"].as_u64() != Some(tree::FILES as u64)
            || snap["bytes"].as_u64() != Some(tree::TOTAL_BYTES)
        {
            bail!(
                "the snapshot on {} is not {} files, {} bytes by {}: {v}",
                c.name,
                tree::FILES,
                tree::TOTAL_BYTES,
                c.method
            );
        }
        snaps.push(took_ms(snap, "lease submit --json's snapshot")?);

        let out = as_agent(
            ctx,
            policy,
            &["sh", "-c", "rm -rf -- \"$1\"/*", "sh", &tree_arg],
        )?;
        ok(out, "the agent's rm -rf under the lease")?;
        if tree::entries(&c.tree)? != 0 {
            bail!("the agent's rm -rf left {} non-empty", c.tree.display());
        }
        let out = governor(ctx, &["rollback", "--lease", id, "--revoke", "--json"])?;
        let r: Value = serde_json::from_str(&out).context("rollback --json")?;
        let restore = &r["restores"][0];
        if restore["lease"] != id || restore["outcome"] != "restored" {
            bail!("the rollback of {id} did not restore it all: {r}");
        }
        restores.push(took_ms(restore, "rollback --json's restore")?);
        tree::verify(&c.tree).context("after the rollback")?;
        // Keep the guest's memory for the next round.
        fs::remove_dir_all(Path::new(STORE).join(id))
            .with_context(|| format!("removing the restored snapshot {id}"))?;
        eprintln!(
            "bench: {NAME}: {} round {}: snapshot {} ms, restore {} ms",
            c.name,
            round + 1,
            snaps[snaps.len() - 1],
            restores[restores.len() - 1]
        );
    }
    tree::empty(&c.tree)?;
    Ok(json!({
        "method": method,
        "snapshot": figures(&snaps),
        "restore": figures(&restores),
        "submit_command": figures(&submits),
        "floor": {
            "snapshot": figures(&floor_snaps),
            "restore": figures(&floor_restores),
        },
    }))
}

/// `took_ms` of a reply, which must have it.
fn took_ms(v: &Value, what: &str) -> Result<f64> {
    v["took_ms"]
        .as_f64()
        .with_context(|| format!("no took_ms in {what}: {v}"))
}

/// Every round's figure, their median and the worst.
fn figures(ms: &[f64]) -> Value {
    json!({
        "rounds_ms": ms,
        "median_ms": stats::median(ms),
        "max_ms": ms.iter().copied().fold(f64::NAN, f64::max),
    })
}
