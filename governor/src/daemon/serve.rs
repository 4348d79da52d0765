//! The serve loop: starts the event reader, the decision sink ([`super::sink`]), the process
//! tracker, the lineage writer and the lease manager, answers the request socket here and the
//! admin socket on the control thread ([`super::control`]), reloads the policy on SIGHUP
//! ([`super::reload`]) and stops on SIGINT/SIGTERM, leaving enforcement pinned.

use std::{
    process::ExitCode,
    sync::{atomic::Ordering, Arc, Mutex},
};

use anyhow::Context;
use tokio::{signal::unix::SignalKind, sync::mpsc};

use super::{
    control, guard,
    reload::{self, Reloader},
    sink,
};
use crate::{
    admin::{self, reload::Reload},
    cli::DaemonArgs,
    host::{cgroup::CgroupFs, dirs::OwnDir, freeze},
    kernel::{
        coverage,
        events::{self, ReaderStats},
        generation::{self, Live},
        pin::PinDir,
        procs,
    },
    leases,
    lineage::{
        self,
        boot::BootClock,
        decision, losses,
        processes::Tracker,
        recorder::Recorder,
        writer::{self, Writer},
    },
    policy::{Compiled, Policy},
    secrets,
    signing::lease,
};

/// Decoded events waiting for the logger; beyond this the reader counts overflow.
const EVENT_QUEUE: usize = 65_536;
/// Records waiting for the lineage writer; beyond this the recorders count refusals.
const LINEAGE_QUEUE: usize = 65_536;
/// How long a stopping daemon gives the sink to record the decisions already queued.
const SINK_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// What start-up made: the policy, compiled against this host, and its live generation.
pub struct Started {
    pub(super) policy: Policy,
    pub(super) own: Vec<OwnDir>,
    /// Registered secret key files (`crate::secrets`).
    pub(super) secrets: Arc<Mutex<secrets::Registry>>,
    pub(super) cgroups: CgroupFs,
    pub(super) compiled: Arc<Compiled>,
    pub(super) setup: generation::Setup,
    pub(super) live: Live,
    /// Locked while the daemon runs.
    pub(super) pins: PinDir,
    /// The lineage database, opened and migrated, and this daemon's run in it.
    pub(super) lineage: rusqlite::Connection,
    pub(super) run: i64,
    pub(super) clock: BootClock,
}

/// The sockets the daemon answers.
pub struct Channels {
    pub(super) admin: admin::Listener,
    /// Agents' lease requests.
    pub(super) requests: admin::Listener,
}

pub async fn serve(
    args: DaemonArgs,
    started: Started,
    channels: Channels,
) -> anyhow::Result<ExitCode> {
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
    let (tx, rx) = mpsc::channel::<events::Item<Arc<Compiled>>>(EVENT_QUEUE);
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
    let retired_counters = Arc::new(Mutex::new(crate::api::status::Counters::default()));
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
    let mut sink = tokio::spawn(sink::run(rx, Arc::clone(&leases), recorder.clone(), clock));

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
        Arc::new(admin::requests::Requests {
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
            lineage_db: Some(args.lineage_db()),
        },
        reload: Some(Arc::new(reloader.clone())),
        secrets: Some(Arc::new(guard::Guard {
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

/// The process records' sink is the lineage's process tracker.
impl procs::ProcSink for Tracker {
    fn snapshot(&mut self, cgroups: &[std::path::PathBuf]) -> usize {
        Tracker::snapshot(self, cgroups)
    }

    fn ingest(&mut self, ev: &governor_common::process::ProcEvent) {
        Tracker::ingest(self, ev);
    }

    fn set_agents(&mut self, agents: Vec<(String, std::path::PathBuf)>) {
        Tracker::set_agents(self, agents);
    }
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
    kernel: impl Fn() -> Result<crate::api::status::Counters, String> + Send + 'static,
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
