//! Live policy reload (`governor policy reload`, SIGHUP): replace the policy a running daemon
//! enforces, atomically. A policy that fails any check changes nothing; one that passes
//! replaces the old one with no enforcement gap.
//!
//! The steps, in order, each of which can refuse the reload while the old policy still
//! enforces, untouched:
//! 1. read, parse and validate the file (`Policy::load`: errors name file:line:col and field);
//! 2. compile it against the live cgroups and governor's own directories;
//! 3. build a complete new kernel generation (`kernel::generation`: load and verify every
//!    program, fill fresh maps), the way start-up does;
//! 4. under the lease manager's lock (no lease changes meanwhile): re-check every live
//!    lease against the new policy and write the entries of those it still allows into the
//!    new maps (`leases::carry`);
//! 5. attach and pin the new generation: from here both generations run, and an operation
//!    is refused if either refuses. Then point the pin manifest at the new one.
//!
//! Past step 5 the reload is committed: the shared enforcer becomes the new generation, the
//! lease manager takes the new policy and its lease entries (dropping, with the reason, the
//! leases it no longer allows) and its lock is released (the "swap" the reply times). Then
//! the old generation is retired: its pins are removed and, with the old `Enforcer` closed,
//! its links and programs leave the kernel. Only then does the event reader drain the old
//! ring buffer (nothing can write to it any more) and move to the new one, and the admin and
//! request sockets, `status` and the decision log see the new policy.
//!
//! One reload runs at a time. It runs on a blocking thread: the daemon keeps logging
//! decisions and answering its sockets while the new programs are verified.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use governor_common::{maps::Counter, Class};
use tokio::sync::mpsc;

use crate::{
    admin::{
        peer::Access,
        reload::{Outcome, Refusal, Reload},
        Shared,
    },
    api::{
        protocol::ErrorCode,
        reply::{CarriedLeases, DroppedLease, PolicyRef, Reloaded, RetiredGeneration},
        status::{AgentInfo, Counters, DaemonInfo, KernelInfo, PolicyInfo, Status},
    },
    host::cgroup::CgroupFs,
    host::dirs::OwnDir,
    kernel::{
        coverage::Plan,
        events,
        generation::{self, GenerationError, Live},
        loader::Enforcer,
        pin::PinDir,
        preflight::Capabilities,
        procs,
    },
    leases::{clock, LeaseError, LeaseManager},
    policy::{self, Compiled, Policy, PolicyError},
    secrets, time,
};

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("{file}: {source}")]
    Compile {
        file: PathBuf,
        source: policy::CompileError,
    },
    #[error("building the new kernel generation: {0}")]
    Kernel(#[from] GenerationError),
    #[error("carrying the live leases into the new generation: {0}")]
    Leases(#[from] LeaseError),
    #[error("the {0} lock is poisoned (a thread panicked holding it)")]
    Poisoned(&'static str),
}

impl ReloadError {
    /// The reply's code: the policy's fault, or the daemon's.
    fn code(&self) -> ErrorCode {
        match self {
            ReloadError::Policy(_) | ReloadError::Compile { .. } => ErrorCode::Rejected,
            ReloadError::Kernel(GenerationError::Coverage(_)) => ErrorCode::Rejected,
            _ => ErrorCode::Internal,
        }
    }

    /// What the operator does about it.
    fn advice(&self, file: &std::path::Path) -> String {
        match self {
            ReloadError::Policy(_) | ReloadError::Compile { .. } => format!(
                "fix the policy and reload again (`governor policy check {}` lists every \
                 problem)",
                file.display()
            ),
            ReloadError::Kernel(GenerationError::Coverage(_)) => {
                "this kernel cannot enforce what the new policy asks; change the policy or the \
                 kernel"
                    .to_owned()
            }
            _ => "the daemon's log has the details; the reload can be retried, or the daemon \
                  restarted on the new policy"
                .to_owned(),
        }
    }
}

/// What a reload needs from the daemon, fixed for its life.
pub struct Parts {
    pub setup: generation::Setup,
    pub own: Vec<OwnDir>,
    /// Registered secret key files, protected beside `own` (`crate::secrets`).
    pub secrets: Arc<Mutex<secrets::Registry>>,
    pub cgroups: CgroupFs,
    pub admin_uids: Vec<u32>,
    pub leases: Arc<Mutex<LeaseManager>>,
    /// The enforcing generation's `Enforcer`, shared with the lease manager and the counters.
    pub enforcer: Arc<Mutex<Enforcer>>,
    /// The event reader's next ring buffer.
    pub rings: mpsc::UnboundedSender<events::Source<Arc<Compiled>>>,
    /// The process reader's successor channel, if the daemon records agent processes.
    pub proc_rings: Option<mpsc::UnboundedSender<procs::Successor>>,
    pub access: Shared<Access>,
    pub agent_cgroups: Shared<Vec<(String, PathBuf)>>,
    pub status: Shared<Status>,
    /// The counters of retired generations (their maps are gone; `status` adds them).
    pub retired_counters: Arc<Mutex<Counters>>,
}

/// The policy enforced now.
pub struct Current {
    pub file: PathBuf,
    pub policy: Arc<Policy>,
    pub compiled: Arc<Compiled>,
    pub generation: u64,
    pub pins: PinDir,
    pub reloads: u64,
}

/// Reloads the daemon's policy; cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    parts: Parts,
    current: Mutex<Current>,
}

impl Reloader {
    pub fn new(parts: Parts, current: Current) -> Reloader {
        Reloader {
            inner: Arc::new(Inner {
                parts,
                current: Mutex::new(current),
            }),
        }
    }

    /// Compiles the enforced policy again, with governor's own directories and the registered
    /// secret key files, and writes its entries into the enforcing generation's maps: the
    /// same entries again, and those of a file registered since, which is protected from now
    /// on without a new generation. Runs between reloads, never during one.
    pub fn protect_own(&self) -> Result<(), ReloadError> {
        let current = self
            .inner
            .current
            .lock()
            .map_err(|_| ReloadError::Poisoned("reload"))?;
        let p = &self.inner.parts;
        let own = secrets::own_with(&p.own, &p.secrets);
        let compiled = policy::compile(&current.policy, &p.cgroups, &own).map_err(|source| {
            ReloadError::Compile {
                file: current.file.clone(),
                source,
            }
        })?;
        p.enforcer
            .lock()
            .map_err(|_| ReloadError::Poisoned("enforcer"))?
            .install(&compiled)
            .map_err(|e| ReloadError::Kernel(e.into()))
    }

    /// The pin directory and the generation enforcing now (for the daemon's last words).
    pub fn pinned(&self) -> (PathBuf, u64) {
        let c = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (c.pins.path().to_path_buf(), c.generation)
    }
}

impl Reload for Reloader {
    fn reload(&self, file: Option<PathBuf>, uid: u32) -> Outcome {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || inner.reload(file, uid)).await {
                Ok(outcome) => outcome,
                Err(e) => Err(Refusal {
                    code: ErrorCode::Internal,
                    message: format!("the reload stopped ({e}); the daemon's log has the details"),
                }),
            }
        })
    }
}

impl Inner {
    /// Runs one reload and logs its outcome; the reply's result, or the refusal.
    fn reload(&self, file: Option<PathBuf>, uid: u32) -> Result<Reloaded, Refusal> {
        let received = Instant::now();
        let mut current = self
            .current
            .lock()
            .map_err(|_| refusal(&ReloadError::Poisoned("reload"), None))?;
        let file = file.unwrap_or_else(|| current.file.clone());
        tracing::info!(file = %file.display(), uid, "policy reload: checking the new policy");
        match self.swap(&mut current, &file, uid, received) {
            Ok(v) => Ok(v),
            Err(e) => {
                let message = format!(
                    "policy reload refused, nothing changed: policy `{}` version {} \
                     (generation {}) keeps enforcing.\n{e}\n{}",
                    current.policy.name,
                    current.policy.version,
                    current.generation,
                    e.advice(&file)
                );
                tracing::warn!(file = %file.display(), uid, error = %e,
                    running_version = %current.policy.version,
                    "{message}");
                Err(refusal(&e, Some(message)))
            }
        }
    }

    /// Steps 1 to 5 and the commit (module doc).
    fn swap(
        &self,
        current: &mut Current,
        file: &std::path::Path,
        uid: u32,
        received: Instant,
    ) -> Result<Reloaded, ReloadError> {
        let p = &self.parts;
        let policy = Arc::new(Policy::load(file)?);
        let own = secrets::own_with(&p.own, &p.secrets);
        let compiled = Arc::new(
            policy::compile(&policy, &p.cgroups, &own).map_err(|source| ReloadError::Compile {
                file: file.to_path_buf(),
                source,
            })?,
        );
        let mut filled = generation::load(&p.setup, &policy)?.fill(&compiled, &p.cgroups)?;
        let prepared = received.elapsed();

        // From here until the commit, no lease is submitted, revoked or expired.
        let swap_started = Instant::now();
        let mut leases = p
            .leases
            .lock()
            .map_err(|_| ReloadError::Poisoned("lease manager"))?;
        let carried = leases.carry(
            Arc::clone(&policy),
            Arc::clone(&compiled),
            &mut filled.enforcer,
        )?;
        let Live {
            enforcer,
            plan,
            ring,
            procs,
            generation,
            counts,
        } = filled.go_live(&mut current.pins, &compiled, &p.cgroups)?;

        // Committed: the new generation enforces and the manifest names it.
        let old_enforcer = {
            let mut shared = p.enforcer.lock().unwrap_or_else(PoisonError::into_inner);
            match kernel_counters(&mut shared) {
                Ok(c) => {
                    let mut sum = p
                        .retired_counters
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    *sum = sum.plus(c);
                }
                Err(e) => tracing::warn!(error = %e,
                    "the retired generation's counters could not be read; status loses them"),
            }
            std::mem::replace(&mut *shared, enforcer)
        };
        let (kept, dropped) = (carried.kept.clone(), carried.dropped.clone());
        leases.commit(
            carried,
            &format!(
                "policy reload to `{}` version {}",
                policy.name, policy.version
            ),
        );
        drop(leases);
        let swap = swap_started.elapsed();
        // Our handles on the old generation go first: its programs stay in the kernel for as
        // long as any fd holds them.
        drop(old_enforcer);
        let retire_started = Instant::now();
        let retired = current.pins.retire_others();
        let retire = retire_started.elapsed();
        // The old generation's programs have left the kernel (or are reported below): the
        // reader drains its ring and moves on.
        if p.rings.send((ring, Arc::clone(&compiled))).is_err() {
            tracing::error!("the event reader is gone: decisions are no longer logged");
        }
        match (procs, &p.proc_rings) {
            (Some(ring), Some(tx)) => {
                if tx.send((ring, process_agents(&compiled))).is_err() {
                    tracing::error!(
                        "the process reader is gone: agent processes are no \
                        longer recorded"
                    );
                }
            }
            (Some(_), None) => tracing::warn!(
                "lineage: the new generation records agent \
                processes, but this daemon started without process records; restart it to \
                record them"
            ),
            (None, Some(_)) => tracing::warn!(
                "lineage: the new generation does not record \
                agent processes"
            ),
            (None, None) => {}
        }
        let old_policy = std::mem::replace(&mut current.policy, Arc::clone(&policy));
        let old_generation = std::mem::replace(&mut current.generation, generation);
        current.compiled = Arc::clone(&compiled);
        current.file = file.to_path_buf();
        current.reloads += 1;
        self.publish(current, &plan);
        let retired = match retired {
            Ok(r) => RetiredGeneration::Gone {
                links: r.links,
                entries: r.entries,
            },
            Err(e) => {
                tracing::error!(error = %e, "policy reload: the previous generation did not \
                    fully leave the kernel; it still enforces alongside the new one");
                RetiredGeneration::Failed {
                    error: e.to_string(),
                }
            }
        };
        let dropped_leases: Vec<DroppedLease> = dropped
            .iter()
            .map(|(id, why)| DroppedLease {
                id: id.clone(),
                reason: why.clone(),
            })
            .collect();
        tracing::info!(
            file = %file.display(),
            uid,
            old_policy = %old_policy.name,
            old_version = %old_policy.version,
            old_generation,
            policy = %policy.name,
            version = %policy.version,
            generation,
            lsm_links = counts.lsm,
            net_links = counts.net,
            leases_kept = kept.len(),
            leases_dropped = dropped.len(),
            prepare_ms = prepared.as_millis() as u64,
            swap_us = swap.as_micros() as u64,
            retire_ms = retire.as_millis() as u64,
            "policy reloaded: version {} (generation {old_generation}) replaced by version {} \
             (generation {generation}) without a gap; swap took {} µs",
            old_policy.version,
            policy.version,
            swap.as_micros()
        );
        for a in &compiled.agents {
            tracing::info!(agent = %a.name, cgroup = %a.cgroup.display(), cgroup_id = a.cgroup_id,
                mode = policy.agent(&a.name).map_or("?", |x| x.mode.name()), "agent registered");
        }
        Ok(Reloaded {
            file: file.display().to_string(),
            old: PolicyRef {
                name: old_policy.name.clone(),
                version: old_policy.version.clone(),
                generation: old_generation,
            },
            new: PolicyRef {
                name: policy.name.clone(),
                version: policy.version.clone(),
                generation,
            },
            prepare_ms: prepared.as_millis() as u64,
            swap_us: swap.as_micros() as u64,
            retire_ms: retire.as_millis() as u64,
            total_ms: received.elapsed().as_millis() as u64,
            leases: CarriedLeases {
                kept,
                dropped: dropped_leases,
            },
            retired,
        })
    }

    /// Shows the new policy to the sockets and `status`.
    fn publish(&self, current: &Current, plan: &Plan) {
        let p = &self.parts;
        let (policy, compiled) = (&current.policy, &current.compiled);
        *p.access.write().unwrap_or_else(PoisonError::into_inner) = access(&p.admin_uids, compiled);
        *p.agent_cgroups
            .write()
            .unwrap_or_else(PoisonError::into_inner) = agent_cgroups(compiled, &p.cgroups);
        let mut status = status(policy, compiled, &p.setup.caps, plan);
        status.policy.generation = current.generation;
        status.policy.reloads = current.reloads;
        *p.status.write().unwrap_or_else(PoisonError::into_inner) = status;
    }
}

fn refusal(e: &ReloadError, message: Option<String>) -> Refusal {
    Refusal {
        code: e.code(),
        message: message.unwrap_or_else(|| e.to_string()),
    }
}

/// Who may use the admin socket, and who is an agent, under `compiled`.
pub fn access(admin_uids: &[u32], compiled: &Compiled) -> Access {
    Access {
        admin_uids: admin_uids.to_vec(),
        agent_cgroups: compiled
            .agents
            .iter()
            .map(|a| (a.name.clone(), a.cgroup.clone()))
            .collect(),
    }
}

/// Each agent's cgroup as an absolute path (for halts).
pub fn agent_cgroups(compiled: &Compiled, cgroups: &CgroupFs) -> Vec<(String, PathBuf)> {
    compiled
        .agents
        .iter()
        .map(|a| (a.name.clone(), cgroups.path(&a.cgroup)))
        .collect()
}

/// The parts of `status` that change only with the policy (loaded now).
pub fn status(policy: &Policy, compiled: &Compiled, caps: &Capabilities, plan: &Plan) -> Status {
    let names = |cs: Vec<Class>| cs.iter().map(|c| c.name().to_owned()).collect();
    Status {
        daemon: DaemonInfo {
            pid: std::process::id(),
            uptime_secs: 0,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        policy: PolicyInfo {
            name: policy.name.clone(),
            owner: policy.owner.clone(),
            file: policy.source.display().to_string(),
            version: policy.version.clone(),
            loaded_at: time::rfc3339(clock::wall_secs()),
            generation: 0,
            reloads: 0,
        },
        agents: compiled
            .agents
            .iter()
            .map(|a| AgentInfo {
                name: a.name.clone(),
                cgroup: a.cgroup.display().to_string(),
                mode: policy
                    .agent(&a.name)
                    .map_or("?", |x| x.mode.name())
                    .to_owned(),
            })
            .collect(),
        kernel: KernelInfo {
            release: caps.kernel_release.clone(),
            mode: if plan.missing.is_empty() {
                "full"
            } else {
                "degraded"
            }
            .to_owned(),
            enforced: names(plan.enforced()),
            not_enforced: names(plan.not_enforced()),
        },
        own_dirs: compiled
            .own
            .iter()
            .map(|d| d.path.display().to_string())
            .collect(),
        counters: Counters::default(),
        events: crate::api::status::ReaderCounters::default(),
        host: String::new(),
        leases: Vec::new(),
        halts: Vec::new(),
        requests_pending: 0,
        safety: None,
        safety_error: None,
    }
}

/// Agent names by agent id, with their cgroups (what the process tracker needs).
pub fn process_agents(compiled: &Compiled) -> Vec<(String, PathBuf)> {
    compiled
        .agents
        .iter()
        .map(|a| (a.name.clone(), a.cgroup.clone()))
        .collect()
}

/// The kernel counters of one generation.
pub fn kernel_counters(e: &mut Enforcer) -> Result<Counters, String> {
    let mut read = |c: Counter| e.counter(c).map_err(|err| err.to_string());
    Ok(Counters {
        denied: read(Counter::Denied)?,
        observed: read(Counter::Observed)?,
        unresolved: read(Counter::Unresolved)?,
        kernel_events_dropped: read(Counter::EventsDropped)?,
        lease_allowed: read(Counter::LeaseAllowed)?,
        lease_expired: read(Counter::LeaseExpired)?,
        cgroups_untracked: read(Counter::CgroupUntracked)?,
        procs_dropped: read(Counter::ProcsDropped)?,
    })
}

/// Reads the counters since the daemon started: the enforcing generation's, plus those of
/// the generations reloads retired.
pub fn counter_reader(
    enforcer: Arc<Mutex<Enforcer>>,
    retired: Arc<Mutex<Counters>>,
) -> impl Fn() -> Result<Counters, String> + Send + Sync {
    move || {
        let mut e = enforcer
            .lock()
            .map_err(|_| "the enforcer lock is poisoned".to_owned())?;
        let now = kernel_counters(&mut e)?;
        let before = *retired.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(now.plus(before))
    }
}
