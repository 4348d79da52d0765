//! Start-up: preflight, compile the policy (governor's own directories first), load and
//! fill the kernel generation, bind both sockets (a second daemon stops there), open the
//! lineage and take over from the generations before it ([`super::takeover`]), then hand
//! everything to the serve loop ([`super::serve`]).

use std::{
    process::ExitCode,
    sync::{Arc, Mutex},
};

use anyhow::Context;

use super::{serve, takeover};
use crate::{
    admin,
    cli::DaemonArgs,
    host::{cgroup::CgroupFs, oom},
    kernel::{
        generation,
        loader::{PinnedCounts, OBJECT},
        pin::{self, PinDir, Previous},
    },
    lineage::{boot::BootClock, writer},
    logging,
    policy::{self, Policy},
    secrets,
};

pub fn run(args: DaemonArgs) -> anyhow::Result<ExitCode> {
    logging::init(args.log_format);
    if let Err(e) = oom::exempt_self() {
        tracing::warn!(error = %e, "the OOM killer may pick the daemon when an agent exhausts memory");
    }
    let policy = Policy::load(&args.policy)?;
    let setup = generation::Setup::probe(args.require_full)?;
    // Load (and so verify) the programs before touching the host: a kernel that refuses them
    // gets a clear error and no side effects.
    let loaded = generation::load(&setup, &policy)?;
    let (own, own_absent) = args.own_dirs().ensure()?;
    for (d, why) in &own_absent {
        tracing::warn!(dir = %d.path.display(), reason = %why,
            "governor's {} directory {} does not exist and cannot be created, so it is not \
             protected", d.what, d.path.display());
    }
    // Before the programs attach: a second daemon stops here.
    let admin = admin::listen(&args.own_dirs().socket())?;
    let requests = admin::listen(&args.own_dirs().request_socket())?;
    // After the admin socket (so a second daemon never writes to it), before the pins.
    let lineage_db = args.lineage_db();
    let mut lineage = writer::open(&lineage_db)?;
    let clock = BootClock::now().context("reading this boot's id (lineage rows carry it)")?;
    let cgroups = CgroupFs::discover()?;
    // Operators' secret key files registered with an earlier daemon: protected beside
    // governor's own directories.
    let secrets = Arc::new(Mutex::new(secrets::Registry::open(&args.state_dir)?));
    let compiled = Arc::new(policy::compile(
        &policy,
        &cgroups,
        &secrets::own_with(&own, &secrets),
    )?);
    let filled = loaded.fill(&compiled, &cgroups)?;
    // Everything is loaded, verified and filled: only now touch the pin directory. A previous
    // generation found there keeps enforcing until ours is attached and pinned, and what its
    // rings hold goes into the lineage before it is retired.
    let mut pins = PinDir::open(&args.pin_dir)?;
    if let Some(holder) = pins.lock_bypassed() {
        tracing::warn!(pin_dir = %args.pin_dir.display(), holder = %holder,
            "the pin directory's lock was held by {holder}, not by a governor daemon: it did \
             not stop this daemon");
    }
    let took = takeover::take_over(filled, &mut pins, &compiled, &cgroups, &mut lineage, &clock)?;
    log_adoption(&pins, took.live.generation, took.live.counts, &took.retired);
    log_takeover(&took);
    let (live, run) = (took.live, took.run);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve::serve(
        args,
        serve::Started {
            policy,
            own,
            secrets,
            cgroups,
            compiled,
            setup,
            live,
            lineage,
            run,
            clock,
            pins,
        },
        serve::Channels { admin, requests },
    ))
}

/// Says what this daemon did with the pin directory it found: started it, or replaced the
/// generation a previous daemon left (same build or not), or replaced a pin set it cannot read.
fn log_adoption(pins: &PinDir, generation: u64, counts: PinnedCounts, retired: &pin::Retired) {
    let dir = pins.path().display().to_string();
    let build = pin::build_id(OBJECT);
    match &pins.previous {
        Previous::Empty => tracing::info!(
            pin_dir = %dir,
            generation,
            lsm_links = counts.lsm,
            net_links = counts.net,
            "pinned enforcement: generation {generation} (nothing was pinned before)"
        ),
        Previous::Governor(m) => {
            let same = m.build == build;
            tracing::info!(
                pin_dir = %dir,
                generation,
                lsm_links = counts.lsm,
                net_links = counts.net,
                previous_generation = m.generation,
                previous_pid = m.pid,
                previous_build = %m.build,
                previous_version = %m.version,
                build = %build,
                same_build = same,
                retired_links = retired.links,
                retired = %retired.entries.join(", "),
                "adopted pinned enforcement: generation {} (pid {}{}) kept enforcing until \
                 generation {generation} was attached, then its {} links were removed",
                m.generation,
                m.pid,
                if same {
                    ", same build"
                } else {
                    ", a different governor build: replaced whole, nothing of it reused"
                },
                retired.links
            );
        }
        Previous::Unknown { reason, entries } => tracing::warn!(
            pin_dir = %dir,
            generation,
            lsm_links = counts.lsm,
            net_links = counts.net,
            reason = %reason,
            retired_links = retired.links,
            retired = %retired.entries.join(", "),
            "replaced a pin set this governor cannot read ({entries} entries: {reason}): it \
             kept enforcing until generation {generation} was attached, then all of it was \
             removed; nothing of it was reused"
        ),
    }
}

/// Says what the take-over found and did: decisions of earlier generations taken into the
/// lineage, what is counted lost, orphaned generations and how they were retired.
fn log_takeover(took: &takeover::TakenOver) {
    let c = &took.carried;
    if c.found > 0 {
        tracing::info!(target: "governor::lineage", generations = c.found, drained = c.drained,
            lost = c.lost, exact = c.exact,
            "lineage: took over {} decisions from the rings of {} earlier generation(s); {}{} \
             lost", c.drained, c.found, if c.exact { "" } else { "at least " }, c.lost);
    }
    if let Some(g) = &took.gap {
        tracing::warn!(target: "governor::lineage", from_ns = g.from_ns, until_ns = g.until_ns,
            lost = g.lost, "lineage gap recorded: {}", g.detail);
    }
    for o in &took.orphans {
        let links: Vec<String> = o
            .links
            .iter()
            .map(|(id, p)| format!("{id} ({p})"))
            .collect();
        tracing::warn!(agents_map = o.agents, links = %links.join(", "),
            "found an orphaned generation: governor programs attached in the kernel that no \
             pin in a mounted bpf filesystem holds (its bpf filesystem was unmounted while \
             something held it)");
    }
    if !took.orphans.is_empty() {
        let r = &took.orphans_retired;
        let unpinned: Vec<String> = r.unpinned.iter().map(|p| p.display().to_string()).collect();
        let remaining: Vec<String> = r.remaining.iter().map(u32::to_string).collect();
        let line = format!(
            "orphaned generations retired: {} links detached, {} pins removed through {}; {}",
            r.detached.len(),
            unpinned.len(),
            if r.holders.is_empty() {
                "no holder".to_owned()
            } else {
                r.holders.join(", ")
            },
            if remaining.is_empty() {
                "none left attached".to_owned()
            } else {
                format!(
                    "links {} are still attached (their agent maps emptied: they decide nothing)",
                    remaining.join(", ")
                )
            }
        );
        if remaining.is_empty() {
            tracing::info!(detached = r.detached.len(), unpinned = %unpinned.join(", "),
                holders = %r.holders.join("; "), "{line}");
        } else {
            tracing::error!(detached = r.detached.len(), unpinned = %unpinned.join(", "),
                holders = %r.holders.join("; "), remaining = %remaining.join(", "), "{line}");
        }
    }
}
