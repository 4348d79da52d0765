//! Benchmark group `enforcement`: what governor's enforcement costs operations it allows.
//!
//! With 10k protected paths and 1k network rules loaded, it times create+unlink, open+read,
//! open+write and TCP connect loops in an unprotected directory on the same filesystem as the
//! protected tree (and to a loopback address no rule matches), as a non-agent process and as
//! an agent, without governor and with the daemon running. Non-agent processes pay the
//! BPF-LSM programs' one cgroup lookup per hook (target ≤1%); agents also pay the walk of the
//! target's ancestors through the protected map and the network programs' trie lookups
//! (target ≤3%). The file loops run a third time as an agent that records every file change
//! it is allowed (`record = "all"`), held to the agent's target: what recording costs falls
//! on that agent, and the other rows show it does not fall on anyone else.
//!
//! Each caller is a worker process (see `worker.rs`) that sits in its cgroup for the whole
//! run; the driver stays outside both and starts and stops the daemon.
//!
//! Then, without the daemon, the non-agent's loops are timed against empty programs attached
//! where governor attaches its own (`lsm_floor.rs`): the least any BPF-LSM design costs.
//!
//! Every block checks that it measures what it claims: with governor, the agent is refused
//! the unlink of a protected canary file; without it, the same unlink succeeds (and the canary
//! is put back), so programs left attached after the daemon stops would fail the run.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use governor_bench::{
    policy::{self, Layout},
    report::{Breakdown, Row},
};

use crate::{
    bpfstats::{self, StatsOn},
    daemon::Daemon,
    lsm_floor,
    ops::{Fixture, Op},
    schedule,
    sys::Cgroup,
    worker::Worker,
    Ctx,
};

pub const NAME: &str = "enforcement";
const AGENT: &str = "bench-agent";
const RECORDING: &str = "bench-recording";
const CGROUP_PARENT: &str = "governor-bench";
const TARGET_NON_AGENT_PCT: f64 = 1.0;
const TARGET_AGENT_PCT: f64 = 3.0;
/// Iterations of each calibration batch.
const CALIBRATION_ITERS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    NonAgent,
    Agent,
    /// An agent with `record = "all"`.
    Recording,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::NonAgent => "non-agent",
            Who::Agent => "agent",
            Who::Recording => "recording",
        }
    }

    fn target_pct(self) -> f64 {
        match self {
            Who::NonAgent => TARGET_NON_AGENT_PCT,
            Who::Agent | Who::Recording => TARGET_AGENT_PCT,
        }
    }
}

struct Case {
    op: Op,
    who: Who,
    iters: u64,
}

/// The cgroups the loops run in: a plain one and the two agents', siblings, so every caller
/// sits at the same depth of the hierarchy.
struct Cgroups {
    host: Cgroup,
    agent: Cgroup,
    recording: Cgroup,
}

impl Cgroups {
    fn remove(&self) -> Result<()> {
        self.recording.remove()?;
        self.agent.remove()?;
        self.host.remove()?;
        Cgroup {
            rel: CGROUP_PARENT.into(),
        }
        .remove()
    }
}

/// One worker per caller, each in its own cgroup for the whole run.
struct Workers {
    host: Worker,
    agent: Worker,
    recording: Worker,
}

impl Workers {
    fn of(&mut self, who: Who) -> &mut Worker {
        match who {
            Who::NonAgent => &mut self.host,
            Who::Agent => &mut self.agent,
            Who::Recording => &mut self.recording,
        }
    }

    fn finish(self) -> Result<()> {
        let recording = self.recording.finish();
        let agent = self.agent.finish();
        self.host.finish()?;
        agent.and(recording)
    }
}

pub fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    crate::sys::require_bpf_lsm()?;
    let layout = Layout::new(ctx.scratch.join(NAME));
    let _ = fs::remove_dir_all(&layout.root);
    let started = Instant::now();
    let protected = create_protected(&layout, ctx.opts.paths)?;
    fs::write(
        layout.policy_file(),
        policy::policy_text(
            AGENT,
            &format!("{CGROUP_PARENT}/agent"),
            Some((RECORDING, &format!("{CGROUP_PARENT}/recording"))),
            &protected,
            ctx.opts.rules,
        ),
    )
    .with_context(|| format!("writing {}", layout.policy_file().display()))?;
    check_policy(ctx, &layout)?;
    eprintln!(
        "bench: {NAME}: {} protected files and a policy with {} network rules ready in {:.1}s",
        protected.len(),
        ctx.opts.rules,
        started.elapsed().as_secs_f64()
    );
    ctx.machine
        .insert("protected_paths".into(), protected.len().into());
    ctx.machine
        .insert("network_rules".into(), ctx.opts.rules.into());

    let cgroups = Cgroups {
        host: Cgroup::create(&format!("{CGROUP_PARENT}/host"))?,
        agent: Cgroup::create(&format!("{CGROUP_PARENT}/agent"))?,
        recording: Cgroup::create(&format!("{CGROUP_PARENT}/recording"))?,
    };
    let result = with_workers(ctx, &layout, &protected[0], &cgroups);
    // Clean up even after a failure (the workers have exited or been killed by then), but
    // report the failure rather than the clean-up's.
    let cleanup = cgroups.remove();
    let _ = fs::remove_dir_all(&layout.root);
    let rows = result?;
    cleanup?;
    Ok(rows)
}

/// Starts the two workers, measures, and stops them.
fn with_workers(
    ctx: &mut Ctx,
    layout: &Layout,
    canary: &Path,
    cgroups: &Cgroups,
) -> Result<Vec<Row>> {
    let work = layout.work_dir();
    Fixture::create_files(&work)?;
    // A batch lasts about batch-ms without governor; leave room for a very slow one.
    let run_timeout = Duration::from_secs(120) + Duration::from_millis(ctx.opts.batch_ms) * 100;
    let mut workers = Workers {
        host: Worker::start(Who::NonAgent.name(), &cgroups.host, &work, run_timeout)?,
        agent: Worker::start(Who::Agent.name(), &cgroups.agent, &work, run_timeout)?,
        recording: Worker::start(
            Who::Recording.name(),
            &cgroups.recording,
            &work,
            run_timeout,
        )?,
    };
    let mut rows = measure(ctx, layout, canary, &mut workers)?;
    // The same loops, at the same batch sizes, as a non-agent with empty programs attached.
    let floor_cases: Vec<(Op, u64)> = rows
        .iter()
        .filter(|r| r.who == Who::NonAgent.name())
        .filter_map(|r| Some((Op::from_name(&r.op)?, r.iters)))
        .collect();
    rows.extend(lsm_floor::run(
        ctx,
        &mut workers.host,
        &mut workers.agent,
        &cgroups.agent.path(),
        &floor_cases,
        TARGET_NON_AGENT_PCT,
    )?);
    workers.finish()?;
    Ok(rows)
}

fn measure(
    ctx: &mut Ctx,
    layout: &Layout,
    canary: &Path,
    workers: &mut Workers,
) -> Result<Vec<Row>> {
    let mut cases = Vec::new();
    for who in [Who::NonAgent, Who::Agent, Who::Recording] {
        // Recording is about file changes: the connect loop would time the agent's again.
        for op in Op::ALL
            .into_iter()
            .filter(|&op| who != Who::Recording || op != Op::Connect)
        {
            cases.push(Case { op, who, iters: 0 });
        }
    }
    // Iterations per batch, from the operation's cost without governor, as a non-agent.
    for op in Op::ALL {
        workers.host.run(op, CALIBRATION_ITERS / 5)?;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            best = best.min(workers.host.run(op, CALIBRATION_ITERS)?.as_nanos() as f64);
        }
        let ns = best / CALIBRATION_ITERS as f64;
        let iters = ((ctx.opts.batch_ms as f64 * 1e6 / ns) as u64).clamp(50, 5_000_000);
        eprintln!(
            "bench: {NAME}: {} ≈ {ns:.0} ns/op → {iters} iterations per batch",
            op.name()
        );
        for c in cases.iter_mut().filter(|c| c.op == op) {
            c.iters = iters;
        }
    }

    let policy_file = layout.policy_file();
    let mut daemon: Option<Daemon> = None;
    let mut starts = 0;
    // Both closures use the workers.
    let workers = std::cell::RefCell::new(workers);
    let blocks = schedule::run(
        ctx.opts.schedule,
        &cases,
        |c| format!("{}/{}", c.op.name(), c.who.name()),
        |on| {
            if on {
                starts += 1;
                let t = Instant::now();
                let log = ctx.scratch.join(format!("daemon-{starts}.log"));
                let d = Daemon::start(&ctx.governor, &policy_file, &log, 0)?;
                check_enforcing(ctx, &d)?;
                let up = t.elapsed();
                eprintln!(
                    "bench: {NAME}: daemon up in {:.1}s, {}",
                    up.as_secs_f64(),
                    settled(&d)?
                );
                daemon = Some(d);
            } else if let Some(d) = daemon.take() {
                d.stop()?;
            }
            check_canary(&mut workers.borrow_mut().agent, canary, on)
        },
        |c| {
            let took = workers.borrow_mut().of(c.who).run(c.op, c.iters)?;
            Ok(took.as_nanos() as f64 / c.iters as f64)
        },
    )?;
    let workers = workers.into_inner();
    ctx.breakdown
        .extend(breakdown(ctx, workers, &cases, canary, &policy_file)?);
    Ok(cases
        .iter()
        .zip(blocks)
        .map(|(c, (without_ns, with_ns))| Row {
            group: NAME.into(),
            op: c.op.name().into(),
            who: c.who.name().into(),
            iters: c.iters,
            target_pct: c.who.target_pct(),
            without_ns,
            with_ns,
        })
        .collect())
}

/// One more daemon start, with the kernel's BPF statistics on: one batch of each case, and
/// the run time of each of governor's programs during it.
fn breakdown(
    ctx: &Ctx,
    workers: &mut Workers,
    cases: &[Case],
    canary: &Path,
    policy_file: &Path,
) -> Result<Vec<Breakdown>> {
    let log = ctx.scratch.join("daemon-stats.log");
    let daemon = Daemon::start(&ctx.governor, policy_file, &log, 0)?;
    check_enforcing(ctx, &daemon)?;
    eprintln!("bench: {NAME}: daemon up, {}", settled(&daemon)?);
    check_canary(&mut workers.agent, canary, true)?;
    let stats = StatsOn::enable()?;
    eprintln!("bench: {NAME}: BPF statistics on: one batch of each case");
    let mut out = Vec::new();
    for c in cases {
        // Agents may not use bpf(2): the driver reads the statistics, around the worker's
        // batch. The request and reply on the pipes add a few program runs to thousands.
        let before = bpfstats::snapshot()?;
        let took = workers.of(c.who).run(c.op, c.iters)?;
        let after = bpfstats::snapshot()?;
        let n = c.iters as f64;
        out.push(Breakdown {
            op: c.op.name().into(),
            who: c.who.name().into(),
            ns_per_op: took.as_nanos() as f64 / n,
            programs: bpfstats::delta(&before, &after)
                .into_iter()
                // The `bpf` hook ran for our own statistics reads, not for the operation.
                .filter(|(name, _)| name != "bpf")
                .map(|(name, d)| (name, d.runs as f64 / n, d.run_ns as f64 / d.runs as f64))
                .collect(),
        });
    }
    drop(stats);
    daemon.stop()?;
    check_canary(&mut workers.agent, canary, false)?;
    Ok(out)
}

/// Creates `n` protected files, [`policy::FILES_PER_DIR`] per directory.
fn create_protected(layout: &Layout, n: usize) -> Result<Vec<PathBuf>> {
    let mut files = Vec::with_capacity(n);
    for i in 0..n {
        if i % policy::FILES_PER_DIR == 0 {
            let dir = layout.protected_dir(i);
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let f = layout.protected_file(i);
        fs::write(&f, b"protected\n").with_context(|| format!("creating {}", f.display()))?;
        files.push(f);
    }
    if files.is_empty() {
        bail!("the enforcement benchmark needs at least one protected path (--paths)");
    }
    Ok(files)
}

/// `governor policy check` on the generated policy, for a clear error before any daemon.
fn check_policy(ctx: &Ctx, layout: &Layout) -> Result<()> {
    let out = Command::new(&ctx.governor)
        .args(["policy", "check"])
        .arg(layout.policy_file())
        .output()
        .with_context(|| format!("running {} policy check", ctx.governor.display()))?;
    if !out.status.success() {
        bail!(
            "governor rejects the generated policy {}:\n{}{}",
            layout.policy_file().display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The daemon loaded every protected path and network rule, with every program family.
fn check_enforcing(ctx: &Ctx, d: &Daemon) -> Result<()> {
    let e = d.enforcing()?;
    // The daemon's count includes governor's own directories (state, config, runtime,
    // bpffs, ...), which it always protects.
    let want = (
        (ctx.opts.paths + d.own_dirs()?) as u64,
        ctx.opts.rules as u64,
    );
    let got = (e["protected"].as_u64(), e["network_rules"].as_u64());
    if got != (Some(want.0), Some(want.1)) || e["mode"] != "full" {
        bail!(
            "the daemon enforces {got:?} protected paths / network rules in mode {}, \
             expected {want:?} (governor's own directories included) in full mode: {e}",
            e["mode"]
        );
    }
    Ok(())
}

/// Waits for the daemon to go quiet (see [`Daemon::settle`]); says how that went.
fn settled(d: &Daemon) -> Result<String> {
    Ok(match d.settle()? {
        Some(t) => format!("quiet {:.1}s later", t.as_secs_f64()),
        None => "never quiet for long (measuring anyway)".to_owned(),
    })
}

/// The agent worker unlinks the protected `canary`: refused with governor, allowed (and the
/// canary put back, by the driver) without it.
fn check_canary(agent: &mut Worker, canary: &Path, on: bool) -> Result<()> {
    match (on, agent.unlink(canary)?) {
        (true, Err(libc::EPERM)) => Ok(()),
        (true, other) => bail!(
            "with the daemon running, the agent's unlink of protected {} gave {}, not \
             EPERM: governor is not enforcing, the measurement would be meaningless",
            canary.display(),
            errno_text(other)
        ),
        (false, Ok(())) => fs::write(canary, b"protected\n")
            .with_context(|| format!("recreating {}", canary.display())),
        (false, Err(e)) => bail!(
            "without the daemon, the agent's unlink of {} failed ({}): governor's programs are \
             still attached (pinned?) or another daemon runs, so a block \"without governor\" \
             would not be",
            canary.display(),
            std::io::Error::from_raw_os_error(e)
        ),
    }
}

fn errno_text(r: std::result::Result<(), i32>) -> String {
    match r {
        Ok(()) => "success".to_owned(),
        Err(e) => std::io::Error::from_raw_os_error(e).to_string(),
    }
}
