//! One kernel generation: the programs, maps and links built for one compiled policy, and
//! the steps that make it the one enforcing. Daemon start-up and a live policy reload
//! (`crate::daemon::reload`) build a generation the same way, in three stages:
//!
//! 1. [`load`]: open the eBPF object with this kernel's offsets, load (and so verify) each
//!    program family, and decide what this kernel lets the daemon enforce (`coverage`).
//!    Nothing is attached: the host is untouched.
//! 2. [`Loaded::fill`]: write the compiled policy into the generation's fresh maps and start
//!    tracking the cgroups below agent cgroups (into this generation's agent map only).
//! 3. [`Filled::go_live`]: a new generation in the pin directory; attach the BPF-LSM and
//!    network programs (from here both the previous generation and this one run: an operation
//!    is refused if either refuses, so there is no gap), pin, and point the manifest at it.
//!    The caller then retires every other generation (`PinDir::retire_others`), once it has
//!    closed its own handles on the previous one (a reload's old `Enforcer` holds its
//!    programs in the kernel until it is dropped).
//!
//! A failure before the manifest is written leaves the previous generation enforcing alone:
//! this generation's unpinned links are detached when its `Enforcer` is dropped, and its
//! half-made pin directory is removed.

use aya::maps::{Map, MapData, MapInfo, PerCpuArray, RingBuf};
use governor_common::{maps, net::NetOffsets, Class, KernelOffsets, TreeSeqs};

use super::{
    btf::Btf,
    coverage::{self, Plan},
    events::Ring,
    loader::{Enforcer, LoadError, PinnedCounts, OBJECT},
    net::{self, NetError},
    offsets,
    pin::{self, Manifest, PinDir, PinError},
    preflight::Capabilities,
    tree_seqs,
};
use crate::{
    host::cgroup::{CgroupError, CgroupFs},
    policy::{Compiled, Policy},
};

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error("registering the cgroups below agent cgroups: {0}")]
    Cgroup(#[from] CgroupError),
    /// This kernel cannot enforce what the policy asks (see `kernel::coverage`), or the
    /// cgroup tracking it needs did not load.
    #[error("{0}")]
    Coverage(String),
    /// Reading the kernel's BTF and the field offsets the programs need.
    #[error("{0}")]
    Setup(String),
}

/// What the running kernel offered, read once per daemon: its capabilities and the field
/// offsets every generation's programs are loaded with.
pub struct Setup {
    pub caps: Capabilities,
    offsets: KernelOffsets,
    net: NetOffsets,
    seqs: TreeSeqs,
    /// Refuse a generation unless every program family loads (`--require-full`).
    pub require_full: bool,
}

impl Setup {
    /// Probes the kernel and resolves the offsets from its BTF.
    pub fn probe(require_full: bool) -> Result<Setup, GenerationError> {
        let setup = |e: &dyn std::fmt::Display| GenerationError::Setup(e.to_string());
        let caps = Capabilities::probe();
        caps.require_btf().map_err(|e| setup(&e))?;
        let btf = Btf::from_sys_fs().map_err(|e| setup(&e))?;
        let offsets = offsets::resolve(&btf).map_err(|e| setup(&e))?;
        let seqs = match tree_seqs::resolve(&btf) {
            Ok(seqs) => {
                tracing::info!(
                    "write cache on: writes through a descriptor are decided once per file"
                );
                seqs
            }
            Err(e) => {
                tracing::warn!(reason = %e, "write cache off: agents' writes through descriptors \
                    are decided by a walk on every write (slower, equally strict)");
                Default::default()
            }
        };
        Ok(Setup {
            caps,
            offsets,
            net: net::offsets(&btf),
            seqs,
            require_full,
        })
    }
}

/// A generation whose programs are loaded and verified; nothing attached, maps empty.
pub struct Loaded {
    pub enforcer: Enforcer,
    pub plan: Plan,
    tracking: Result<(), LoadError>,
    /// The lineage's process tracepoints; enforcement does not depend on them.
    procs: Result<(), LoadError>,
}

/// A generation whose maps hold the compiled policy; only its cgroup tracepoints run.
pub struct Filled {
    pub enforcer: Enforcer,
    pub plan: Plan,
    /// Whether the process tracepoints run (and so fill a process ring buffer).
    procs: bool,
}

/// A generation that enforces: attached, pinned, named by the manifest.
pub struct Live {
    pub enforcer: Enforcer,
    pub plan: Plan,
    /// Its event ring buffer, taken out of the enforcer for the reader, with its id and a
    /// handle on its counters.
    pub ring: Ring,
    /// Its process ring buffer (the lineage's fork, exec and exit records), if the process
    /// tracepoints run.
    pub procs: Option<RingBuf<MapData>>,
    pub generation: u64,
    pub counts: PinnedCounts,
}

/// Loads (and so verifies) every program family for `policy`. Each family loads on its own,
/// so that a kernel refusing BPF-LSM can still enforce the network classes.
pub fn load(setup: &Setup, policy: &Policy) -> Result<Loaded, GenerationError> {
    let mut enforcer = Enforcer::open(&setup.offsets, &setup.net, &setup.seqs)?;
    let lsm = setup
        .caps
        .require_bpf_lsm()
        .map_err(anyhow::Error::from)
        .and_then(|()| enforcer.load_lsm().map_err(anyhow::Error::from));
    let net_loaded = net::load(&mut enforcer).map_err(anyhow::Error::from);
    let plan = coverage::decide(lsm, net_loaded, &policy.classes(), setup.require_full)
        .map_err(|e| GenerationError::Coverage(format!("{e:#}")))?;
    warn_degraded(&plan, policy);
    let tracking = enforcer.load_cgroup_tracking();
    if plan.lsm {
        // Without it an agent could leave every BPF-LSM class behind with a sub-cgroup.
        if let Err(e) = &tracking {
            return Err(GenerationError::Coverage(e.to_string()));
        }
    }
    let procs = enforcer.load_proc_tracking();
    Ok(Loaded {
        enforcer,
        plan,
        tracking,
        procs,
    })
}

impl Loaded {
    /// Writes `compiled` into the maps, and registers the cgroups below agent cgroups.
    pub fn fill(self, compiled: &Compiled, cgroups: &CgroupFs) -> Result<Filled, GenerationError> {
        let Loaded {
            mut enforcer,
            plan,
            tracking,
            procs,
        } = self;
        enforcer.install(compiled)?;
        if plan.net {
            net::install(&mut enforcer, &compiled.network)?;
        }
        match tracking {
            Ok(()) => track_subtrees(&mut enforcer, cgroups, compiled)?,
            Err(e) => tracing::warn!(
                error = %e,
                "cgroups below agent cgroups are not tracked: the network programs treat their \
                 tasks as agents of unknown id (denied by every rule)"
            ),
        }
        // After the agent map is filled, before the caller snapshots the agent processes
        // already running, so that no process falls in between. Both generations record
        // during a reload's overlap; process rows are keyed, so that adds nothing twice.
        let procs = match procs.and_then(|()| enforcer.attach_proc_tracking()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "lineage: agent processes are NOT recorded (no \
                    fork, exec, exit records; decisions are recorded without their ancestry)");
                false
            }
        };
        Ok(Filled {
            enforcer,
            plan,
            procs,
        })
    }
}

impl Filled {
    /// Attaches, pins and names this generation in `pins` (the other generations still
    /// enforce too until the caller retires them). On an error before the manifest names it, nothing of this generation stays in the
    /// kernel or the pin directory, and the previous generation still enforces.
    pub fn go_live(
        self,
        pins: &mut PinDir,
        compiled: &Compiled,
        cgroups: &CgroupFs,
    ) -> Result<Live, GenerationError> {
        let Filled {
            mut enforcer,
            plan,
            procs,
        } = self;
        let before = pins.current().map(std::path::Path::to_path_buf);
        let generation = pins.new_generation()?;
        let attached = attach_and_pin(&mut enforcer, &plan, &generation, pins, compiled, cgroups);
        let attached = attached.and_then(|(counts, buf)| {
            let ring = ring(buf, &generation, compiled)?;
            Ok((counts, ring))
        });
        let attached = attached.and_then(|(counts, ring)| {
            let procs = if procs {
                Some(enforcer.take_procs()?)
            } else {
                None
            };
            Ok((counts, ring, procs))
        });
        let (counts, ring, procs) = match attached {
            Ok(done) => done,
            Err(e) => {
                // Our links detach with the enforcer; our pins go with the directory.
                drop(enforcer);
                if let Err(cleanup) = pins.discard(&generation, before) {
                    tracing::error!(error = %cleanup, generation = generation.number,
                        "could not remove a generation that failed to go live");
                }
                return Err(e);
            }
        };
        Ok(Live {
            enforcer,
            plan,
            ring,
            procs,
            generation: generation.number,
            counts,
        })
    }
}

/// Attaches every program family the plan enforces, pins the generation and writes the
/// manifest: the steps between "nothing of ours runs" and "ours is the generation of record".
fn attach_and_pin(
    enforcer: &mut Enforcer,
    plan: &Plan,
    generation: &pin::Generation,
    pins: &PinDir,
    compiled: &Compiled,
    cgroups: &CgroupFs,
) -> Result<(PinnedCounts, RingBuf<MapData>), GenerationError> {
    if plan.lsm {
        enforcer.attach()?;
    }
    if plan.net {
        let agent_cgroups: Vec<&std::path::Path> =
            compiled.agents.iter().map(|a| a.cgroup.as_path()).collect();
        let points: Vec<_> = net::attach_points(&agent_cgroups)
            .iter()
            .map(|rel| cgroups.path(rel))
            .collect();
        net::attach(enforcer, &points)?;
        let points: Vec<String> = points.iter().map(|p| p.display().to_string()).collect();
        tracing::info!(
            cgroups = %points.join(", "),
            "network programs attached (they run only for sockets created in these subtrees)"
        );
    }
    let counts = enforcer.pin(generation)?;
    let ring = enforcer.take_events()?;
    pins.write_manifest(&Manifest {
        format: pin::FORMAT,
        generation: generation.number,
        build: pin::build_id(OBJECT),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        lsm: counts.lsm,
        net: counts.net,
        policy: Some(compiled.policy_version.clone()),
    })?;
    Ok((counts, ring))
}

/// The reader's view of a generation's ring: its id and its own handle on the counters
/// (both from the pins just made).
fn ring(
    buf: RingBuf<MapData>,
    generation: &pin::Generation,
    compiled: &Compiled,
) -> Result<Ring, GenerationError> {
    let pinned = |name: &str| generation.maps().join(name);
    let map_err = |e: aya::maps::MapError| {
        GenerationError::Setup(format!("reading the pinned event ring's identity: {e}"))
    };
    let id = MapInfo::from_pin(pinned(maps::EVENTS))
        .map_err(map_err)?
        .id();
    let counters = MapData::from_pin(pinned(maps::COUNTERS))
        .map(Map::PerCpuArray)
        .and_then(PerCpuArray::try_from)
        .map_err(map_err)?;
    Ok(Ring {
        buf,
        id,
        generation: generation.number,
        policy_version: compiled.policy_version.clone(),
        counters: Some(counters),
    })
}

/// Makes every cgroup below an agent cgroup count as the agent's: attaches the tracepoints
/// that register new ones, then registers those that already exist (in that order, so that
/// none created meanwhile is missed).
fn track_subtrees(
    enforcer: &mut Enforcer,
    cgroups: &CgroupFs,
    compiled: &Compiled,
) -> Result<(), GenerationError> {
    enforcer.attach_cgroup_tracking()?;
    let is_agent_cgroup = |id: u64| compiled.agents.iter().any(|a| a.cgroup_id == id);
    for a in &compiled.agents {
        let below = cgroups.descendants(&a.cgroup, is_agent_cgroup)?;
        let mut registered = 0;
        for (path, id) in &below {
            if enforcer.register_inherited(*id, a.info)? {
                registered += 1;
                // Removed between the walk and the insert: the tracepoint found no entry
                // to drop, so drop it here (ids are never reused; this only saves space).
                if !path.exists() {
                    enforcer.unregister_inherited(*id)?;
                }
            }
        }
        tracing::info!(agent = %a.name, cgroup = %a.cgroup.display(), existing = below.len(),
            registered, "cgroups below the agent cgroup count as the agent's");
    }
    Ok(())
}

/// Says plainly, at WARN, which classes this generation does not enforce and which policy
/// rules are therefore inert.
fn warn_degraded(plan: &Plan, policy: &Policy) {
    for m in &plan.missing {
        let classes = coverage::class_list(m.classes);
        tracing::warn!(
            not_enforced = %classes,
            programs = m.family,
            reason = %format!("{:#}", m.reason),
            "degraded mode: NOT enforcing {classes}: this kernel does not run governor's {} \
             programs (use --require-full to refuse to start instead)",
            m.family
        );
        for p in &policy.protected {
            let inert: Vec<Class> = p
                .decisions
                .guarded()
                .into_iter()
                .filter(|c| m.classes.contains(c))
                .collect();
            if !inert.is_empty() {
                tracing::warn!(
                    path = %p.path.display(),
                    classes = %coverage::class_list(&inert),
                    "degraded mode: [[protect]] {} is NOT enforced for {}",
                    p.path.display(),
                    coverage::class_list(&inert)
                );
            }
        }
        for (i, n) in policy.network.iter().enumerate() {
            let inert: Vec<Class> = n
                .decisions
                .guarded()
                .into_iter()
                .filter(|c| m.classes.contains(c))
                .collect();
            if !inert.is_empty() {
                tracing::warn!(
                    rule = %n,
                    classes = %coverage::class_list(&inert),
                    "degraded mode: [[network]] rule {i} ({n}) is NOT enforced for {}",
                    coverage::class_list(&inert)
                );
            }
        }
    }
}
