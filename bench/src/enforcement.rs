//! Benchmark group `enforcement`: what governor's enforcement costs operations it allows.
//!
//! With 10k protected paths and 1k network rules loaded, it times create+unlink, open+read,
//! open+write and TCP connect loops in an unprotected directory on the same filesystem as the
//! protected tree (and to a loopback address no rule matches), as a non-agent process and as
//! an agent, without governor and with the daemon running. Non-agent processes pay the
//! BPF-LSM programs' one cgroup lookup per hook (target ≤1%); agents also pay the walk of the
//! target's ancestors through the protected map and the network programs' trie lookups
//! (target ≤3%).
//!
//! Every block checks that it measures what it claims: with governor, the agent is refused
//! the unlink of a protected canary file; without it, the same unlink succeeds (and the canary
//! is put back), so programs left attached after the daemon stops would fail the run.

use std::{fs, path::PathBuf, process::Command, time::Instant};

use anyhow::{bail, Context, Result};
use governor_bench::{
    policy::{self, Layout},
    report::{Breakdown, Row},
};

use crate::{
    bpfstats::{self, StatsOn},
    daemon::Daemon,
    ops::{Fixture, Op},
    schedule,
    sys::Cgroup,
    Ctx,
};

pub const NAME: &str = "enforcement";
const AGENT: &str = "bench-agent";
const CGROUP_PARENT: &str = "governor-bench";
const TARGET_NON_AGENT_PCT: f64 = 1.0;
const TARGET_AGENT_PCT: f64 = 3.0;
/// Iterations of each calibration batch.
const CALIBRATION_ITERS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    NonAgent,
    Agent,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::NonAgent => "non-agent",
            Who::Agent => "agent",
        }
    }

    fn target_pct(self) -> f64 {
        match self {
            Who::NonAgent => TARGET_NON_AGENT_PCT,
            Who::Agent => TARGET_AGENT_PCT,
        }
    }
}

struct Case {
    op: Op,
    who: Who,
    iters: u64,
}

/// The cgroups the loops run in: a plain one and the agent's, siblings, so both callers sit
/// at the same depth of the hierarchy.
struct Cgroups {
    host: Cgroup,
    agent: Cgroup,
    current: Option<Who>,
}

impl Cgroups {
    fn enter(&mut self, who: Who) -> Result<()> {
        if self.current != Some(who) {
            match who {
                Who::NonAgent => self.host.enter()?,
                Who::Agent => self.agent.enter()?,
            }
            self.current = Some(who);
        }
        Ok(())
    }
}

pub fn run(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let layout = Layout::new(ctx.scratch.join(NAME));
    let _ = fs::remove_dir_all(&layout.root);
    let started = Instant::now();
    let protected = create_protected(&layout, ctx.opts.paths)?;
    fs::write(
        layout.policy_file(),
        policy::policy_text(
            AGENT,
            &format!("{CGROUP_PARENT}/agent"),
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

    let home = Cgroup::current()?;
    let mut cgroups = Cgroups {
        host: Cgroup::create(&format!("{CGROUP_PARENT}/host"))?,
        agent: Cgroup::create(&format!("{CGROUP_PARENT}/agent"))?,
        current: None,
    };
    let result = measure(ctx, &layout, &protected[0], &mut cgroups);
    // Clean up even after a failure, but report the failure rather than the clean-up's.
    let cleanup = home.enter().and_then(|()| {
        cgroups.agent.remove()?;
        cgroups.host.remove()?;
        Cgroup {
            rel: CGROUP_PARENT.into(),
        }
        .remove()
    });
    let _ = fs::remove_dir_all(&layout.root);
    let rows = result?;
    cleanup?;
    Ok(rows)
}

fn measure(
    ctx: &mut Ctx,
    layout: &Layout,
    canary: &std::path::Path,
    cgroups: &mut Cgroups,
) -> Result<Vec<Row>> {
    let fx = Fixture::new(&layout.work_dir())?;
    cgroups.enter(Who::NonAgent)?;
    let mut cases = Vec::new();
    for who in [Who::NonAgent, Who::Agent] {
        for op in Op::ALL {
            cases.push(Case { op, who, iters: 0 });
        }
    }
    // Iterations per batch, from the operation's cost without governor.
    for op in Op::ALL {
        fx.run(op, CALIBRATION_ITERS / 5)?;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            best = best.min(fx.run(op, CALIBRATION_ITERS)?.as_nanos() as f64);
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
    // Both closures move the benchmark between cgroups.
    let cgroups = std::cell::RefCell::new(cgroups);
    let blocks = schedule::run(
        ctx.opts.schedule,
        &cases,
        |c| format!("{}/{}", c.op.name(), c.who.name()),
        |on| {
            let mut cgroups = cgroups.borrow_mut();
            cgroups.enter(Who::NonAgent)?;
            if on {
                starts += 1;
                let t = Instant::now();
                let log = ctx.scratch.join(format!("daemon-{starts}.log"));
                let d = Daemon::start(&ctx.governor, &policy_file, &log, 0)?;
                check_enforcing(ctx, &d)?;
                eprintln!(
                    "bench: {NAME}: daemon up in {:.1}s",
                    t.elapsed().as_secs_f64()
                );
                daemon = Some(d);
            } else if let Some(d) = daemon.take() {
                d.stop()?;
            }
            check_canary(&mut cgroups, canary, on)?;
            cgroups.enter(Who::NonAgent)
        },
        |c| {
            cgroups.borrow_mut().enter(c.who)?;
            let took = fx.run(c.op, c.iters)?;
            Ok(took.as_nanos() as f64 / c.iters as f64)
        },
    )?;
    let mut cgroups = cgroups.borrow_mut();
    ctx.breakdown.extend(breakdown(
        ctx,
        &fx,
        &cases,
        &mut cgroups,
        canary,
        &policy_file,
    )?);
    drop(fx);
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
    fx: &Fixture,
    cases: &[Case],
    cgroups: &mut Cgroups,
    canary: &std::path::Path,
    policy_file: &std::path::Path,
) -> Result<Vec<Breakdown>> {
    cgroups.enter(Who::NonAgent)?;
    let log = ctx.scratch.join("daemon-stats.log");
    let daemon = Daemon::start(&ctx.governor, policy_file, &log, 0)?;
    check_enforcing(ctx, &daemon)?;
    check_canary(cgroups, canary, true)?;
    let stats = StatsOn::enable()?;
    eprintln!("bench: {NAME}: daemon up, BPF statistics on: one batch of each case");
    let mut out = Vec::new();
    for c in cases {
        // Agents may not use bpf(2): read the statistics from outside. The two cgroup moves
        // add a couple of program runs to thousands.
        cgroups.enter(Who::NonAgent)?;
        let before = bpfstats::snapshot()?;
        cgroups.enter(c.who)?;
        let took = fx.run(c.op, c.iters)?;
        cgroups.enter(Who::NonAgent)?;
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
    cgroups.enter(Who::NonAgent)?;
    daemon.stop()?;
    check_canary(cgroups, canary, false)?;
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

/// How many of governor's own directories the daemon adds to the protected paths, at most.
const OWN_DIRS: u64 = 4;

/// The daemon loaded every protected path and network rule, with every program family.
fn check_enforcing(ctx: &Ctx, d: &Daemon) -> Result<()> {
    let e = d.enforcing()?;
    let want = (ctx.opts.paths as u64, ctx.opts.rules as u64);
    let got = (e["protected"].as_u64(), e["network_rules"].as_u64());
    // The daemon's count includes governor's own directories (state, config, runtime,
    // bpffs), which it always protects.
    let paths_ok = got
        .0
        .is_some_and(|n| (want.0..=want.0 + OWN_DIRS).contains(&n));
    if !paths_ok || got.1 != Some(want.1) || e["mode"] != "full" {
        bail!(
            "the daemon enforces {got:?} protected paths / network rules in mode {}, \
             expected {want:?} in full mode: {e}",
            e["mode"]
        );
    }
    Ok(())
}

/// As the agent, unlinks the protected `canary`: refused with governor, allowed (and the
/// canary put back) without it.
fn check_canary(cgroups: &mut Cgroups, canary: &std::path::Path, on: bool) -> Result<()> {
    cgroups.enter(Who::Agent)?;
    let res = fs::remove_file(canary);
    cgroups.enter(Who::NonAgent)?;
    match (on, res) {
        (true, Err(e)) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        (true, other) => bail!(
            "with the daemon running, the agent's unlink of protected {} gave {other:?}, not \
             EPERM: governor is not enforcing, the measurement would be meaningless",
            canary.display()
        ),
        (false, Ok(())) => fs::write(canary, b"protected\n")
            .with_context(|| format!("recreating {}", canary.display())),
        (false, Err(e)) => bail!(
            "without the daemon, the agent's unlink of {} failed ({e}): governor's programs are \
             still attached (pinned?) or another daemon runs, so a block \"without governor\" \
             would not be",
            canary.display()
        ),
    }
}
