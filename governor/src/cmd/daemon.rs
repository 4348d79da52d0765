//! `governor daemon`: preflight, compile the policy (governor's own directories first), build
//! the kernel generation and take over from the generations before it (`crate::takeover`:
//! attach and pin, their rings drained into the lineage, then retired), answer the admin
//! socket and stream decisions to the log until SIGINT/SIGTERM. SIGHUP, like `governor policy
//! reload`, reloads the policy (`crate::reload`). Stopping leaves enforcement pinned;
//! `governor unload` ends it.

use std::{
    process::ExitCode,
    sync::{atomic::Ordering, Arc, Mutex},
};

use anyhow::Context;
use governor_common::{detail, Decision, Event, EventKind};
use tokio::{signal::unix::SignalKind, sync::mpsc};

use crate::{
    admin::{self, reload::Reload},
    cli::DaemonArgs,
    control,
    host::cgroup::CgroupFs,
    host::dirs::OwnDir,
    host::freeze,
    host::oom,
    kernel::{
        coverage,
        events::{self, ReaderStats},
        generation::{self, Live},
        loader::{PinnedCounts, OBJECT},
        pin::{self, PinDir, Previous},
        procs,
    },
    leases,
    lineage::{
        self,
        boot::BootClock,
        decision, losses,
        processes::Tracker,
        record::Record,
        recorder::Recorder,
        writer::{self, Writer},
    },
    logging::{
        self,
        throttle::{self, Throttle},
    },
    policy::{self, Compiled, Policy},
    reload::{self, Reloader},
    requests, secrets,
    signing::lease,
    takeover,
};

/// Decoded events waiting for the logger; beyond this the reader counts overflow.
const EVENT_QUEUE: usize = 65_536;
/// Records waiting for the lineage writer; beyond this the recorders count refusals.
const LINEAGE_QUEUE: usize = 65_536;
/// Events the decision sink handles in a row before it lets other tasks run.
const SINK_BATCH: u32 = 256;
/// How long a stopping daemon gives the sink to record the decisions already queued.
const SINK_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

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
    runtime.block_on(serve(
        args,
        Started {
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
        Channels { admin, requests },
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

/// What start-up made: the policy, compiled against this host, and its live generation.
struct Started {
    policy: Policy,
    own: Vec<OwnDir>,
    /// Registered secret key files (`crate::secrets`).
    secrets: Arc<Mutex<secrets::Registry>>,
    cgroups: CgroupFs,
    compiled: Arc<Compiled>,
    setup: generation::Setup,
    live: Live,
    /// Locked while the daemon runs.
    pins: PinDir,
    /// The lineage database, opened and migrated, and this daemon's run in it.
    lineage: rusqlite::Connection,
    run: i64,
    clock: BootClock,
}

/// The sockets the daemon answers.
struct Channels {
    admin: admin::Listener,
    /// Agents' lease requests.
    requests: admin::Listener,
}

async fn serve(args: DaemonArgs, started: Started, channels: Channels) -> anyhow::Result<ExitCode> {
    let since = std::time::Instant::now();
    let Started {
        policy,
        own,
        secrets,
        cgroups,
        compiled,
        setup,
        live,
        pins,
        lineage,
        run,
        clock,
    } = started;
    let Live {
        enforcer,
        plan,
        ring,
        procs,
        generation,
        ..
    } = live;
    let Channels {
        admin: listener,
        requests: request_listener,
    } = channels;
    let stats = Arc::new(ReaderStats::default());
    let policy = Arc::new(policy);
    // Each event comes with the compiled policy of the generation that emitted it.
    let (tx, mut rx) = mpsc::channel::<events::Item<Arc<Compiled>>>(EVENT_QUEUE);
    let (next_ring, rings) = mpsc::unbounded_channel();
    let mut reader = tokio::spawn(events::read(
        (ring, Arc::clone(&compiled)),
        rings,
        tx,
        Arc::clone(&stats),
    ));
    for (hook, covered) in &enforcer.absent {
        tracing::info!(hook = %hook, "LSM hook absent on this kernel; {covered}");
    }
    let enforcer = Arc::new(Mutex::new(enforcer));
    // Filesystems mounted inside protected paths from now on (the policy's scan registered
    // the ones mounted before).
    crate::kernel::mounts::watch(Arc::clone(&enforcer));
    // Counters of generations a reload retired, so that totals never go back.
    let retired_counters = Arc::new(Mutex::new(admin::status::Counters::default()));
    let proc_stats = Arc::new(procs::ProcStats::default());
    let (recorder, lineage_writer) = start_lineage(
        &args,
        lineage,
        &clock,
        run,
        reload::counter_reader(Arc::clone(&enforcer), Arc::clone(&retired_counters)),
        Arc::clone(&stats),
        Arc::clone(&proc_stats),
    )?;
    let proc_rings = match procs {
        Some(ring) => Some(track_processes(
            ring,
            recorder.clone(),
            &clock,
            &cgroups,
            &compiled,
            proc_stats,
        )?),
        None => None,
    };
    let host =
        lease::host_id().context("reading this host's identity (lease files are bound to it)")?;
    let leases = Arc::new(Mutex::new(leases::LeaseManager::open(leases::Setup {
        state_dir: args.state_dir.clone(),
        trusted_dir: args.trusted_dir(),
        host,
        policy: Arc::clone(&policy),
        compiled: Arc::clone(&compiled),
        enforcer: Arc::clone(&enforcer) as Arc<Mutex<dyn leases::LeaseMap>>,
        recorder: recorder.clone(),
    })?));
    let agent_cgroups = admin::shared(reload::agent_cgroups(&compiled, &cgroups));
    refreeze_halted(&leases, &admin::current(&agent_cgroups));
    let sink_leases = Arc::clone(&leases);
    let sink_recorder = recorder.clone();
    let mut sink = tokio::spawn(async move {
        let mut throttle = Throttle::default();
        let mut in_a_row = 0u32;
        loop {
            // Under a flood the next event is already queued (no timer per event); an idle
            // sink wakes at least once a window, to report lines a throttled agent left out.
            // It lets the runtime's other tasks (the readers, the request socket) run every
            // SINK_BATCH events: `try_recv` never yields by itself.
            in_a_row += 1;
            if in_a_row >= SINK_BATCH {
                in_a_row = 0;
                tokio::task::yield_now().await;
            }
            let next = match rx.try_recv() {
                Ok(item) => Ok(Some(item)),
                Err(mpsc::error::TryRecvError::Disconnected) => Ok(None),
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::time::timeout(throttle::WINDOW, rx.recv()).await
                }
            };
            let now = std::time::Instant::now();
            for s in throttle.expired(now) {
                log_suppressed(&s);
            }
            let (ev, compiled, ring) = match next {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => continue,
            };
            let lease = (ev.lease_id != 0)
                .then(|| {
                    sink_leases
                        .lock()
                        .ok()
                        .and_then(|a| a.by_kernel_id(ev.lease_id).map(|r| r.id.clone()))
                })
                .flatten();
            let d = decision::describe(&ev, &compiled);
            if throttle.allow(d.agent, now) {
                log_decision(&ev, &d, &compiled, lease.as_deref());
            }
            sink_recorder.record(Record::Event(Box::new(decision::event_row(
                &ev,
                &d,
                &clock,
                lease,
                &compiled.policy_version,
                ring,
            ))));
        }
        for s in throttle.finish(std::time::Instant::now()) {
            log_suppressed(&s);
        }
    });

    tracing::info!(
        policy = %policy.name,
        owner = %policy.owner,
        version = %policy.version,
        file = %policy.source.display(),
        cgroup2 = %cgroups.root().display(),
        kernel = %setup.caps.kernel_release,
        agents = compiled.agents.len(),
        protected = compiled.protected.len(),
        network_rules = compiled.network_rules.len(),
        mode = if plan.missing.is_empty() { "full" } else { "degraded" },
        enforced = %coverage::class_list(&plan.enforced()),
        not_enforced = %coverage::class_list(&plan.not_enforced()),
        binaries = compiled.binaries.len(),
        "enforcing"
    );
    for a in &compiled.agents {
        tracing::info!(agent = %a.name, cgroup = %a.cgroup.display(), cgroup_id = a.cgroup_id,
            mode = policy.agent(&a.name).map_or("?", |x| x.mode.name()), "agent registered");
    }
    tracing::info!(dirs = %decision::own_dirs_text(&compiled),
        "governor's own directories are protected from agents (every file class, unix-connect)");
    if !plan.lsm {
        tracing::warn!(
            "degraded mode: governor's own directories and admin socket are NOT \
            protected from agents by the kernel (no BPF-LSM programs)"
        );
    }
    tracing::info!(socket = %listener.path().display(), admin_uids = ?args.admin_uids,
        "admin socket listening");
    tracing::info!(socket = %request_listener.path().display(),
        trusted_keys = %args.trusted_dir().display(),
        "request socket listening (agents ask for leases here; only signed leases grant)");
    let access = admin::shared(reload::access(&args.admin_uids, &compiled));
    let mut fixed = reload::status(&policy, &compiled, &setup.caps, &plan);
    fixed.policy.generation = generation;
    let fixed = admin::shared(fixed);
    let counter_source =
        reload::counter_reader(Arc::clone(&enforcer), Arc::clone(&retired_counters));
    let reloader = Reloader::new(
        reload::Parts {
            setup,
            own,
            secrets: Arc::clone(&secrets),
            cgroups,
            admin_uids: args.admin_uids.clone(),
            leases: Arc::clone(&leases),
            enforcer: Arc::clone(&enforcer),
            rings: next_ring,
            proc_rings,
            access: Arc::clone(&access),
            agent_cgroups: Arc::clone(&agent_cgroups),
            status: Arc::clone(&fixed),
            retired_counters: Arc::clone(&retired_counters),
        },
        reload::Current {
            file: args.policy.clone(),
            policy,
            compiled,
            generation,
            pins,
            reloads: 0,
        },
    );
    let request_task = tokio::spawn(admin::serve(
        request_listener,
        Arc::new(requests::Requests {
            access: Arc::clone(&access),
            leases: Arc::clone(&leases),
        }),
    ));
    let admin_ctx = admin::Context {
        access,
        leases: Some(Arc::clone(&leases)),
        agent_cgroups,
        status: admin::status::Source {
            fixed,
            started: since,
            counters: Box::new(counter_source),
            reader: Arc::clone(&stats),
            leases: Some(Arc::clone(&leases)),
        },
        reload: Some(Arc::new(reloader.clone())),
        secrets: Some(Arc::new(secrets::Guard {
            registry: secrets,
            reloader: reloader.clone(),
        })),
    };
    // The admin socket and the lease tick on their own thread: no load on this runtime's
    // event pipeline delays the kill switch (`control`).
    let mut control = control::start(listener, admin_ctx, Arc::clone(&leases))
        .context("starting the control thread (admin socket, lease tick)")?;
    if let Some(path) = &args.ready_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing ready file {}", path.display()))?;
    }

    let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(SignalKind::interrupt())?;
    let mut hup = tokio::signal::unix::signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the policy file");
                // The reloader logs its outcome (refusals at WARN).
                tokio::spawn(reloader.reload(None, 0));
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                break;
            }
            res = &mut reader => {
                tracing::error!(result = ?res, "event reader stopped");
                break;
            }
            why = control.failed() => {
                tracing::error!(reason = %why, "admin socket stopped");
                break;
            }
        }
    }
    // Stop answering (the socket files go with the listeners).
    control.stop();
    request_task.abort();
    let _ = request_task.await;
    // The reader stops (what is left in the kernel ring stays there, pinned, for the next
    // daemon); the sink records what the reader already queued, then ends.
    if !reader.is_finished() {
        reader.abort();
        let _ = (&mut reader).await;
    }
    if tokio::time::timeout(SINK_DRAIN, &mut sink).await.is_err() {
        tracing::error!(
            "decisions still queued for the lineage after {}s are left unrecorded",
            SINK_DRAIN.as_secs()
        );
        sink.abort();
        let _ = sink.await;
    }
    // Writes what is still queued (and the last loss counts), marks the run stopped.
    drop(recorder);
    let written = Arc::clone(&lineage_writer.stats);
    lineage_writer.finish();
    let (pin_dir, generation) = reloader.pinned();
    let counters = reload::counter_reader(Arc::clone(&enforcer), retired_counters)()
        .map_err(anyhow::Error::msg)?;
    tracing::info!(
        denied = counters.denied,
        observed = counters.observed,
        unresolved = counters.unresolved,
        kernel_events_dropped = counters.kernel_events_dropped,
        lease_allowed = counters.lease_allowed,
        lease_expired = counters.lease_expired,
        cgroups_untracked = counters.cgroups_untracked,
        procs_dropped = counters.procs_dropped,
        events_received = stats.received.load(Ordering::Relaxed),
        events_malformed = stats.malformed.load(Ordering::Relaxed),
        events_overflowed = stats.overflowed.load(Ordering::Relaxed),
        lineage_committed = written.committed.load(Ordering::Relaxed),
        lineage_dropped = written.dropped.load(Ordering::Relaxed),
        pin_dir = %pin_dir.display(),
        generation,
        "stopped; enforcement stays pinned in {} (generation {generation}): the next daemon \
         replaces it without a gap; `governor unload --pin-dir {}` removes it",
        pin_dir.display(),
        pin_dir.display()
    );
    // Closes our fds only: the pins keep every link attached. The pin lock goes with the
    // reloader, last.
    drop(enforcer);
    drop(leases);
    drop(reloader);
    Ok(ExitCode::SUCCESS)
}

/// Starts the process-lineage reader on `ring`: it first records the processes already in
/// every agent cgroup (and the cgroups below it), then every fork, exec and exit. Returns
/// where a policy reload sends the next generation's ring.
fn track_processes(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    recorder: Recorder,
    clock: &BootClock,
    cgroups: &CgroupFs,
    compiled: &Compiled,
    stats: Arc<procs::ProcStats>,
) -> anyhow::Result<mpsc::UnboundedSender<procs::Successor>> {
    let is_agent_cgroup = |id: u64| compiled.agents.iter().any(|a| a.cgroup_id == id);
    let mut dirs = Vec::new();
    for a in &compiled.agents {
        dirs.push(cgroups.path(&a.cgroup));
        dirs.extend(
            cgroups
                .descendants(&a.cgroup, is_agent_cgroup)?
                .into_iter()
                .map(|(path, _)| path),
        );
    }
    let tracker = Tracker::new(
        recorder,
        clock.boot_id.clone(),
        lineage::processes::Host::real(cgroups.root()),
        reload::process_agents(compiled),
    );
    let (tx, next) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        if let Err(e) = procs::read(ring, next, tracker, dirs, stats).await {
            tracing::error!(error = %e, "lineage: process record reader stopped");
        }
    });
    Ok(tx)
}

/// Starts the lineage writer on `conn` for run `run` (noted by the take-over) with the loss
/// counters it turns into gaps, and returns the recorder producers use.
fn start_lineage(
    args: &DaemonArgs,
    conn: rusqlite::Connection,
    clock: &BootClock,
    run: i64,
    kernel: impl Fn() -> Result<admin::status::Counters, String> + Send + 'static,
    reader: Arc<ReaderStats>,
    procs: Arc<procs::ProcStats>,
) -> anyhow::Result<(Recorder, Writer)> {
    let path = args.lineage_db();
    let (recorder, records, refused) = Recorder::channel(LINEAGE_QUEUE);
    let options = writer::Options {
        retain: args.retain.map(std::time::Duration::from_secs),
        ..writer::Options::default()
    };
    let writer = Writer::spawn(
        conn,
        records,
        options,
        losses::counts(clock.boot_id.clone(), kernel, reader, procs, refused),
        Some(run),
    )
    .context("starting the lineage writer thread")?;
    tracing::info!(target: "governor::lineage", db = %path.display(), run,
        retain_secs = args.retain, "lineage recording to {}", path.display());
    Ok((recorder, writer))
}

/// Freezes again the agents a previous daemon halted (their halt outlives daemon restarts
/// and reboots until `governor resume`).
fn refreeze_halted(
    leases: &Arc<Mutex<leases::LeaseManager>>,
    agent_cgroups: &[(String, std::path::PathBuf)],
) {
    let Ok(a) = leases.lock() else {
        return;
    };
    for h in a.halts() {
        match agent_cgroups.iter().find(|(n, _)| *n == h.agent) {
            Some((_, path)) => match freeze::start(path, freeze::Action::Freeze) {
                Ok(()) => tracing::warn!(target: "governor::halt", agent = %h.agent,
                    "agent stays halted (since a previous daemon's halt): cgroup frozen; \
                     `governor resume --agent {}` ends it", h.agent),
                Err(e) => tracing::error!(target: "governor::halt", agent = %h.agent,
                    error = %e, "agent is recorded halted but its cgroup cannot be frozen"),
            },
            None => tracing::warn!(target: "governor::halt", agent = %h.agent,
                "a halted agent is no longer in the policy"),
        }
    }
}

/// Logs one kernel decision with everything the kernel and the policy know about it. Every
/// kind carries the agent, process identity (with `exe`, the executable's path as the kernel
/// resolved it) and class, and `path`, the target's resolved path (empty when the target is
/// not a file); network decisions add the address, port and rule; the others add `name`,
/// `protected` (the rule), `detail` and its reading `what`, file decisions the target inode
/// and depth, task decisions the target's pid.
/// One line for the decision lines an agent's flood left out of the log.
/// Its target is not `governor::decision` (those lines are one per decision, with the
/// decision's fields), but `RUST_LOG` directives for `governor::decision` cover it.
fn log_suppressed(s: &throttle::Suppressed) {
    tracing::warn!(
        target: "governor::decision::suppressed",
        agent = %s.agent,
        suppressed = s.lines,
        window_ms = s.over.as_millis() as u64,
        "{} more decisions of agent {} in {:.1}s not logged (over {} lines a second); every \
         one is in the lineage: governor lineage events --agent {}",
        s.lines,
        s.agent,
        s.over.as_secs_f64(),
        throttle::LINES_PER_WINDOW,
        s.agent
    );
}

fn log_decision(ev: &Event, d: &decision::Described<'_>, compiled: &Compiled, lease: Option<&str>) {
    let (agent, class, class_name, decision) = (d.agent, d.class, d.class_name, d.decision);
    let (comm, exe, target_path) = (&d.comm, &d.exe, &d.target_path);
    let message = match Decision::from_u32(ev.decision) {
        Some(Decision::Deny) => "denied",
        Some(Decision::ObserveDeny) => "would deny (observe mode)",
        Some(Decision::LeaseAllow) => "allowed under lease",
        None => "unknown decision",
    };
    // The fields every decision carries; each kind adds its own before the message.
    macro_rules! decision {
        ($($extra:tt)*) => {
            tracing::warn!(
                target: "governor::decision",
                decision,
                agent,
                class = class_name,
                pid = ev.pid,
                tgid = ev.tgid,
                uid = ev.uid,
                gid = ev.gid,
                comm = %comm,
                exe = %exe,
                exe_ino = ev.exe_inode.ino,
                path = %target_path,
                cgroup_id = ev.cgroup_id,
                boot_ns = ev.boot_ns,
                lease_id = ev.lease_id,
                lease = lease.unwrap_or(""),
                $($extra)*
                "{}",
                message
            )
        };
    }
    if EventKind::from_u16(ev.kind) == Some(EventKind::NetDecision) {
        let (addr, family) = decision::net_addr(ev);
        let (sock_type, protocol) = ((ev.target.detail >> 32) as u32, ev.target.detail as u32);
        let rule = &d.rule;
        let lease_required = ev.decision != Decision::LeaseAllow as u32
            && class.is_some_and(|c| compiled.needs_lease(ev.agent_id, ev.rule_id, c));
        decision!(
            lease_required,
            addr = %addr,
            port = ev.target.port,
            family,
            proto = %proto_name(sock_type, protocol),
            rule = %rule,
            rule_id = ev.rule_id,
        );
        return;
    }
    let protected = &d.rule;
    let what = class.map_or_else(
        || ev.target.detail.to_string(),
        |c| detail::describe(c, ev.target.detail),
    );
    let name = String::from_utf8_lossy(Event::trim_nul(&ev.name));
    let dev = ev.target.inode.dev;
    let lease_required = ev.decision != Decision::LeaseAllow as u32
        && class.is_some_and(|c| compiled.needs_lease(ev.agent_id, ev.rule_id, c));
    // The exact command that would allow this operation, for the operator.
    let lease_hint = if lease_required {
        format!(
            "governor lease issue --key KEY --agent {agent} --scope {class_name}:{target_path} \
             --ttl 15m --reason '...'"
        )
    } else {
        String::new()
    };
    macro_rules! object_decision {
        ($($extra:tt)*) => {
            decision!(
                lease_required,
                lease_hint = %lease_hint,
                name = %name,
                protected = %protected,
                detail = ev.target.detail,
                what = %what,
                $($extra)*
            )
        };
    }
    match EventKind::from_u16(ev.kind) {
        Some(EventKind::TaskDecision) => object_decision!(target_pid = ev.target.pid,),
        Some(EventKind::HostDecision) => object_decision!(),
        _ => object_decision!(
            depth = ev.depth,
            target_dev = %format!("{}:{}", dev >> 20, dev & 0xf_ffff),
            target_ino = ev.target.inode.ino,
        ),
    }
}

/// `tcp`, `udp`, or the raw socket type and protocol numbers.
fn proto_name(sock_type: u32, protocol: u32) -> String {
    match (sock_type, protocol) {
        (_, 6) => "tcp".to_owned(),
        (_, 17) => "udp".to_owned(),
        (_, 1) | (_, 58) => "icmp".to_owned(),
        (_, 262) => "mptcp".to_owned(),
        (t, p) => format!("type {t} protocol {p}"),
    }
}
