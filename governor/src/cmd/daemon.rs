//! `governor daemon`: preflight, compile the policy, load and attach the kernel programs,
//! stream decisions to the log until SIGINT/SIGTERM.

use std::{
    process::ExitCode,
    sync::{atomic::Ordering, Arc},
};

use anyhow::Context;
use governor_common::{
    detail,
    maps::{Counter, RULE_BUILTIN, RULE_FILELESS, RULE_UNRESOLVED},
    Class, Decision, Event, EventKind,
};
use tokio::{signal::unix::SignalKind, sync::mpsc};

use crate::{
    cgroup::CgroupFs,
    cli::DaemonArgs,
    kernel::{
        btf::Btf,
        events::{self, ReaderStats},
        loader::Enforcer,
        offsets,
        preflight::Capabilities,
    },
    logging,
    policy::{self, Compiled, Policy},
};

/// Decoded events waiting for the logger; beyond this the reader counts overflow.
const EVENT_QUEUE: usize = 65_536;

pub fn run(args: DaemonArgs) -> anyhow::Result<ExitCode> {
    logging::init(args.log_format);
    let policy = Policy::load(&args.policy)?;
    let caps = Capabilities::probe();
    caps.require_bpf_lsm()?;
    let btf = Btf::from_sys_fs()?;
    let offsets = offsets::resolve(&btf)?;
    // Load (and so verify) the programs before touching the host: a kernel that refuses them
    // gets a clear error and no side effects.
    let mut enforcer = Enforcer::load(&offsets)?;
    let cgroups = CgroupFs::discover()?;
    let compiled = policy::compile(&policy, &cgroups)?;
    enforcer.install(&compiled)?;
    let ring = enforcer.take_events()?;
    enforcer.attach()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, policy, cgroups, compiled, enforcer, ring, caps))
}

async fn serve(
    args: DaemonArgs,
    policy: Policy,
    cgroups: CgroupFs,
    compiled: Compiled,
    mut enforcer: Enforcer,
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    caps: Capabilities,
) -> anyhow::Result<ExitCode> {
    let stats = Arc::new(ReaderStats::default());
    let (tx, mut rx) = mpsc::channel::<Event>(EVENT_QUEUE);
    let reader = tokio::spawn(events::read(ring, tx, Arc::clone(&stats)));
    let compiled = Arc::new(compiled);
    let sink_policy = Arc::clone(&compiled);
    let sink = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            log_decision(&ev, &sink_policy);
        }
    });

    tracing::info!(
        policy = %policy.name,
        owner = %policy.owner,
        file = %policy.source.display(),
        cgroup2 = %cgroups.root().display(),
        kernel = %caps.kernel_release,
        agents = compiled.agents.len(),
        protected = compiled.protected.len(),
        binaries = compiled.binaries.len(),
        "enforcing"
    );
    for a in &compiled.agents {
        tracing::info!(agent = %a.name, cgroup = %a.cgroup.display(), cgroup_id = a.cgroup_id,
            mode = policy.agent(&a.name).map_or("?", |x| x.mode.name()), "agent registered");
    }
    if let Some(path) = &args.ready_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing ready file {}", path.display()))?;
    }

    let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
        res = reader => {
            tracing::error!(result = ?res, "event reader stopped");
        }
    }
    // Let the logger catch up with what the reader already queued.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    sink.abort();
    tracing::info!(
        denied = enforcer.counter(Counter::Denied)?,
        observed = enforcer.counter(Counter::Observed)?,
        unresolved = enforcer.counter(Counter::Unresolved)?,
        kernel_events_dropped = enforcer.counter(Counter::EventsDropped)?,
        events_received = stats.received.load(Ordering::Relaxed),
        events_malformed = stats.malformed.load(Ordering::Relaxed),
        events_overflowed = stats.overflowed.load(Ordering::Relaxed),
        "stopped; kernel programs detached"
    );
    drop(enforcer);
    Ok(ExitCode::SUCCESS)
}

/// What a decision's `rule_id` stands for, in words.
fn rule_text(ev: &Event, class: Option<Class>, compiled: &Compiled) -> String {
    let path = |p: Option<&std::path::Path>| {
        p.map_or_else(
            || format!("rule {}", ev.rule_id),
            |p| p.display().to_string(),
        )
    };
    match ev.rule_id {
        RULE_UNRESOLVED => "(unresolved: failed closed)".to_owned(),
        RULE_BUILTIN => "(built-in: agents may never do this)".to_owned(),
        RULE_FILELESS => "(fileless: the file has no name on any filesystem)".to_owned(),
        id if class == Some(Class::Exec) => path(compiled.binary_path(id)),
        id => path(compiled.protected_path(id)),
    }
}

/// Logs one kernel decision with everything the kernel and the policy know about it. Every
/// kind carries `name`, `protected` (the rule), `detail` and its reading `what`; file
/// decisions add the target inode and depth, task decisions the target's pid.
fn log_decision(ev: &Event, compiled: &Compiled) {
    let agent = compiled.agent_name(ev.agent_id).unwrap_or("?");
    let class = Class::from_u32(ev.class);
    let class_name = class.map_or("unknown", Class::name);
    let decision = Decision::from_u32(ev.decision).map_or("unknown", Decision::name);
    let protected = rule_text(ev, class, compiled);
    let what = class.map_or_else(
        || ev.target.detail.to_string(),
        |c| detail::describe(c, ev.target.detail),
    );
    let comm = String::from_utf8_lossy(Event::trim_nul(&ev.comm));
    let name = String::from_utf8_lossy(Event::trim_nul(&ev.name));
    let exe = std::fs::read_link(format!("/proc/{}/exe", ev.tgid))
        .map_or_else(|_| "(exited)".to_owned(), |p| p.display().to_string());
    let dev = ev.target.inode.dev;
    let message = if ev.decision == Decision::Deny as u32 {
        "denied"
    } else {
        "would deny (observe mode)"
    };
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
                cgroup_id = ev.cgroup_id,
                name = %name,
                protected = %protected,
                detail = ev.target.detail,
                what = %what,
                boot_ns = ev.boot_ns,
                $($extra)*
                "{}",
                message
            )
        };
    }
    match EventKind::from_u16(ev.kind) {
        Some(EventKind::TaskDecision) => decision!(target_pid = ev.target.pid,),
        Some(EventKind::HostDecision) => decision!(),
        _ => decision!(
            depth = ev.depth,
            target_dev = %format!("{}:{}", dev >> 20, dev & 0xf_ffff),
            target_ino = ev.target.inode.ino,
        ),
    }
}
