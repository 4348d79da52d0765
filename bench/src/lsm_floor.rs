//! The BPF-LSM floor: what the enforcement group's loops cost a non-agent when programs
//! that do nothing are attached (`empty_lsm.rs`), against nothing attached. governor's
//! non-agent overhead can only be compared with this: no BPF-LSM design that hooks the same
//! operations can cost less.
//!
//! Three layouts, each timed on the same interleaved schedule as governor
//! (`schedule.rs`), without the daemon:
//! - `all hooks`: one empty program on every hook governor attaches (that the kernel has);
//! - `file_open`: one empty program on `file_open` alone, the least an open-deciding design
//!   needs (it runs once per open);
//! - `lsm-cgroup`: one empty `BPF_LSM_CGROUP` program on `file_open`, attached to the agent's
//!   cgroup only. The non-agent never runs the program, only the kernel's shim that looks
//!   for programs of its cgroup.
//!
//! Before each layout is timed, the kernel's BPF statistics show that its programs run for
//! whom they should ([`check_runs`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use governor_bench::report::Row;
use governor_common::programs::LSM_HOOKS;

use crate::{
    bpfstats::{self, StatsOn},
    empty_lsm::{Attach, Attached, Kernel},
    ops::Op,
    schedule,
    worker::Worker,
    Ctx,
};

/// The report's group name for the floor rows.
pub const GROUP: &str = "lsm-floor";

/// One way of attaching empty programs.
struct Layout<'a> {
    /// The rows' `who`.
    name: &'static str,
    hooks: Vec<&'a str>,
    how: Attach<'a>,
}

/// Times every `(op, iters)` in `cases` as the non-agent `worker`, for each layout; one row
/// per layout and operation, held to the non-agent target `target_pct`.
pub fn run(
    ctx: &Ctx,
    worker: &mut Worker,
    agent: &mut Worker,
    agent_cgroup: &Path,
    cases: &[(Op, u64)],
    target_pct: f64,
) -> Result<Vec<Row>> {
    let kernel = Kernel::load()?;
    let all: Vec<&str> = LSM_HOOKS
        .iter()
        .copied()
        .filter(|h| kernel.has_hook(h))
        .collect();
    let layouts = [
        Layout {
            name: "all hooks",
            hooks: all,
            how: Attach::Global,
        },
        Layout {
            name: "file_open",
            hooks: vec!["file_open"],
            how: Attach::Global,
        },
        Layout {
            name: "lsm-cgroup",
            hooks: vec!["file_open"],
            how: Attach::Cgroup(agent_cgroup),
        },
    ];
    let mut rows = Vec::new();
    for layout in &layouts {
        eprintln!(
            "bench: {GROUP}: empty programs on {} hook(s), {:?}",
            layout.hooks.len(),
            layout.how
        );
        check_runs(&kernel, layout, worker, agent)?;
        let mut attached: Option<Attached> = None;
        let blocks = schedule::run(
            ctx.opts.schedule,
            cases,
            |(op, _)| format!("{}/{}", op.name(), layout.name),
            |on| {
                attached = None;
                if on {
                    attached = Some(kernel.attach(&layout.hooks, layout.how)?);
                }
                Ok(())
            },
            |(op, iters)| {
                let took = worker.run(*op, *iters)?;
                Ok(took.as_nanos() as f64 / *iters as f64)
            },
        )
        .with_context(|| format!("{GROUP} layout {}", layout.name))?;
        rows.extend(
            cases
                .iter()
                .zip(blocks)
                .map(|((op, iters), (without_ns, with_ns))| Row {
                    group: GROUP.into(),
                    op: op.name().into(),
                    who: layout.name.into(),
                    iters: *iters,
                    target_pct,
                    without_ns,
                    with_ns,
                }),
        );
    }
    Ok(rows)
}

/// Opens per batch of the check.
const CHECK_OPENS: u64 = 50;

/// Checks that `layout` measures what it claims, with the kernel's BPF statistics on for
/// one batch of open+read by each worker: attached globally, the empty `file_open` program
/// runs at least once per open of the non-agent; attached to the agent's cgroup, it runs for
/// the agent's opens and never for the non-agent's.
fn check_runs(
    kernel: &Kernel,
    layout: &Layout,
    host: &mut Worker,
    agent: &mut Worker,
) -> Result<()> {
    let _attached = kernel.attach(&layout.hooks, layout.how)?;
    let _stats = StatsOn::enable()?;
    let runs = |w: &mut Worker| -> Result<u64> {
        let before = bpfstats::snapshot()?;
        w.run(Op::OpenRead, CHECK_OPENS)?;
        let after = bpfstats::snapshot()?;
        Ok(bpfstats::delta(&before, &after)
            .get("empty_file_open")
            .map_or(0, |c| c.runs))
    };
    let (host_runs, agent_runs) = (runs(host)?, runs(agent)?);
    let ok = match layout.how {
        Attach::Global => host_runs >= CHECK_OPENS,
        Attach::Cgroup(_) => host_runs == 0 && agent_runs >= CHECK_OPENS,
    };
    if !ok {
        bail!(
            "{GROUP} layout {}: the empty file_open program ran {host_runs} times for the \
             non-agent's and {agent_runs} for the agent's {CHECK_OPENS} opens, which does not \
             fit {:?}: the layout would not measure what it claims",
            layout.name,
            layout.how
        );
    }
    Ok(())
}
