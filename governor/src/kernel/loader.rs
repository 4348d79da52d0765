//! Loads governor's eBPF object, fills its maps from a compiled policy and attaches the
//! BPF-LSM programs. One [`Enforcer`] owns the `Ebpf` object and every link attached from it
//! (BPF-LSM here, network in `kernel::net`). Dropping it detaches whatever was not pinned;
//! [`Enforcer::pin`] pins the links, programs and maps so that enforcement outlives the
//! process (`kernel::pin`).

use std::{collections::HashSet, path::PathBuf};

use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{links::FdLink, Lsm, RawTracePoint},
    Ebpf, EbpfLoader,
};
use governor_common::{
    maps::{self, Counter},
    net::NetOffsets,
    AgentInfo, AgentRuleKey, InodeKey, KernelOffsets, LeaseEntry, LeaseKey, Masks, ProtectedRule,
    TreeSeqs,
};

use super::pin::{self, Generation, PinError};
use crate::policy::{linked::Why, Compiled};

/// The eBPF object built by build.rs from governor-ebpf.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/governor"));

/// BPF-LSM programs; each program is named after the hook it attaches to.
pub const LSM_PROGRAMS: &[&str] = governor_common::programs::LSM_HOOKS;

/// The tracepoint programs, listed with the hooks (`governor_common::programs`).
pub use governor_common::programs::{CGROUP_TRACEPOINTS, PROC_TRACEPOINTS};

/// Hooks that older kernels lack, and what covers the same operations there; a subset of
/// [`LSM_PROGRAMS`] (`loader_tests`).
const OPTIONAL_HOOKS: &[(&str, &str)] = governor_common::programs::OPTIONAL_LSM_HOOKS;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading kernel BTF for program load: {0}")]
    Btf(#[from] aya::BtfError),
    #[error("loading the eBPF object: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("eBPF object has no {what} `{name}` (build mismatch; rebuild governor)")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("the kernel refused BPF-LSM program `{program}`: {cause}{hint}")]
    Program {
        program: &'static str,
        cause: String,
        hint: &'static str,
    },
    #[error(
        "the kernel refused tracepoint program `{program}`: {cause}; without it, cgroups an \
         agent creates below its own would not count as the agent's"
    )]
    Tracepoint {
        program: &'static str,
        cause: String,
    },
    #[error(
        "the kernel refused tracepoint program `{program}`: {cause}; without it the lineage \
         does not record agent processes"
    )]
    ProcTracepoint {
        program: &'static str,
        cause: String,
    },
    #[error("kernel map `{map}`: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
}

/// `BPF_NOEXIST`: a map update that fails with EEXIST instead of replacing an entry.
const BPF_NOEXIST: u64 = 1;

const EPERM_HINT: &str = ". The kernel lists `bpf` among its LSMs but does not let this \
process load or attach LSM programs (a sandboxed or locked-down kernel, or missing \
CAP_BPF/CAP_MAC_ADMIN); governor cannot enforce the classes that need BPF-LSM here";

/// The loaded, attached kernel side.
pub struct Enforcer {
    ebpf: Ebpf,
    /// Programs loaded and verified on this kernel.
    loaded: Vec<&'static str>,
    /// Optional hooks this kernel lacks, with what covers them instead.
    pub absent: Vec<(&'static str, &'static str)>,
    btf: aya::Btf,
    /// Attached links not pinned yet, each with its pin name (`lsm-<hook>`, `net-…`).
    links: Vec<(String, FdLink)>,
    /// The installed policy's protected paths (canonical) with their rules, and the inodes
    /// registered in `GOV_LINKED`: for mounts made later (`kernel::mounts`).
    linked_roots: Vec<(PathBuf, ProtectedRule)>,
    linked_keys: HashSet<InodeKey>,
}

/// How many links of each family [`Enforcer::pin`] pinned.
#[derive(Clone, Copy, Debug, Default)]
pub struct PinnedCounts {
    pub lsm: usize,
    pub net: usize,
}

impl Enforcer {
    /// Loads the object and creates its maps, with `offsets`, `net` and `seqs` set as its
    /// read-only globals. No program is in the kernel yet: each hook family loads its own, so
    /// that one the kernel refuses (BPF-LSM) does not take the others (network) down with it.
    pub fn open(
        offsets: &KernelOffsets,
        net: &NetOffsets,
        seqs: &TreeSeqs,
    ) -> Result<Enforcer, LoadError> {
        let btf = aya::Btf::from_sys_fs()?;
        let ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global(maps::OFFSETS_GLOBAL, offsets, true)
            .override_global(governor_common::net::NET_OFFSETS_GLOBAL, net, true)
            .override_global(maps::TREE_SEQS_GLOBAL, seqs, true)
            .load(OBJECT)?;
        Ok(Enforcer {
            ebpf,
            btf,
            loaded: Vec::new(),
            absent: Vec::new(),
            links: Vec::new(),
            linked_roots: Vec::new(),
            linked_keys: HashSet::new(),
        })
    }

    /// Loads (and so verifies) every BPF-LSM program whose hook this kernel has; none is
    /// attached yet. Optional hooks the kernel lacks are recorded in `absent`.
    pub fn load_lsm(&mut self) -> Result<(), LoadError> {
        for &name in LSM_PROGRAMS {
            let hook_exists = self
                .btf
                .id_by_type_name_kind(&format!("bpf_lsm_{name}"), aya_obj::btf::BtfKind::Func)
                .is_ok();
            if !hook_exists {
                if let Some(&(_, covered)) = OPTIONAL_HOOKS.iter().find(|(h, _)| *h == name) {
                    self.absent.push((name, covered));
                    continue;
                }
            }
            let prog: &mut Lsm = program(&mut self.ebpf, name)?;
            prog.load(name, &self.btf)
                .map_err(|source| program_error(name, source))?;
            if let Ok(info) = prog.info() {
                tracing::debug!(
                    program = name,
                    verified_insns = info.verified_instruction_count(),
                    "BPF-LSM program verified"
                );
            }
            self.loaded.push(name);
        }
        Ok(())
    }

    /// Attaches every LSM program; enforcement starts here. The links stay with the
    /// `Enforcer` until [`Enforcer::pin`] pins them (or it is dropped, which detaches them).
    pub fn attach(&mut self) -> Result<(), LoadError> {
        for &name in &self.loaded {
            let prog: &mut Lsm = program(&mut self.ebpf, name)?;
            let id = prog
                .attach()
                .map_err(|source| program_error(name, source))?;
            let link = prog
                .take_link(id)
                .map_err(|source| program_error(name, source))?;
            self.links.push((format!("lsm-{name}"), FdLink::from(link)));
        }
        Ok(())
    }

    /// Keeps an attached link (from another hook family) under `name` until it is pinned.
    pub fn keep_link(&mut self, name: String, link: FdLink) {
        self.links.push((name, link));
    }

    /// Pins every map, every loaded program and every attached link into `generation`. Maps
    /// must be pinned before [`Enforcer::take_events`] takes the ring buffer out.
    pub fn pin(&mut self, generation: &Generation) -> Result<PinnedCounts, PinError> {
        let maps = generation.maps();
        for (name, map) in self.ebpf.maps() {
            // `.rodata`, `.bss`: the object's globals, not state worth a pin.
            if name.starts_with('.') {
                continue;
            }
            let path = maps.join(name);
            map.pin(&path).map_err(|error| PinError::Pin {
                what: format!("map {name}"),
                path,
                error,
            })?;
        }
        let progs = generation.progs();
        for (name, prog) in self.ebpf.programs_mut() {
            if prog.fd().is_err() {
                continue; // not loaded on this kernel (absent hook, degraded family)
            }
            let path = progs.join(name);
            prog.pin(&path).map_err(|error| PinError::Pin {
                what: format!("program {name}"),
                path,
                error,
            })?;
        }
        let mut counts = PinnedCounts::default();
        let links = generation.links();
        for (name, link) in std::mem::take(&mut self.links) {
            if name.starts_with("net-") {
                counts.net += 1;
            } else {
                counts.lsm += 1;
            }
            // The pin holds the link now; the returned handle only closes our fd when dropped.
            pin::pin_link(&links, &name, link)?;
        }
        Ok(counts)
    }

    /// Loads (and so verifies) the cgroup tracepoint programs ([`CGROUP_TRACEPOINTS`]).
    pub fn load_cgroup_tracking(&mut self) -> Result<(), LoadError> {
        for &name in CGROUP_TRACEPOINTS {
            tracepoint(&mut self.ebpf, name)?
                .load()
                .map_err(|source| tracepoint_error(name, source))?;
        }
        Ok(())
    }

    /// Attaches the cgroup tracepoint programs: from here on every cgroup created below a
    /// registered cgroup is registered by the kernel. Call before
    /// [`Enforcer::register_inherited`] walks the existing ones, so none falls in between.
    pub fn attach_cgroup_tracking(&mut self) -> Result<(), LoadError> {
        for &name in CGROUP_TRACEPOINTS {
            let tp = tracepoint(&mut self.ebpf, name)?;
            let id = tp
                .attach(name)
                .map_err(|source| tracepoint_error(name, source))?;
            let link = tp
                .take_link(id)
                .map_err(|source| tracepoint_error(name, source))?;
            // Pinned with the BPF-LSM links (it serves their classes), counted with them.
            self.links.push((format!("tp-{name}"), FdLink::from(link)));
        }
        Ok(())
    }

    /// Loads (and so verifies) the process-lineage tracepoint programs ([`PROC_TRACEPOINTS`]).
    pub fn load_proc_tracking(&mut self) -> Result<(), LoadError> {
        for &name in PROC_TRACEPOINTS {
            let tp = tracepoint(&mut self.ebpf, name)?;
            tp.load().map_err(|source| proc_error(name, source))?;
            if let Ok(info) = tp.info() {
                tracing::debug!(
                    program = name,
                    verified_insns = info.verified_instruction_count(),
                    "process tracepoint program verified"
                );
            }
        }
        Ok(())
    }

    /// Attaches the process-lineage tracepoints: from here on agent processes' fork, exec and
    /// exit go into the [`maps::PROCS`] ring buffer. Call before snapshotting the processes
    /// already running, so none falls in between.
    pub fn attach_proc_tracking(&mut self) -> Result<(), LoadError> {
        for &name in PROC_TRACEPOINTS {
            let tp = tracepoint(&mut self.ebpf, name)?;
            let id = tp.attach(name).map_err(|source| proc_error(name, source))?;
            let link = tp
                .take_link(id)
                .map_err(|source| proc_error(name, source))?;
            self.links.push((format!("tp-{name}"), FdLink::from(link)));
        }
        Ok(())
    }

    /// Registers cgroup `id` (below an agent cgroup) for the agent `info` names, marked
    /// inherited. An existing entry (the policy's own, or one the kernel just added) is kept:
    /// returns false then.
    pub fn register_inherited(&mut self, id: u64, info: AgentInfo) -> Result<bool, LoadError> {
        let mut agents: HashMap<_, u64, AgentInfo> = self.map(maps::AGENTS)?;
        let info = AgentInfo {
            agent_id: info.agent_id,
            flags: info.flags | maps::AGENT_FLAG_INHERITED,
        };
        match agents.insert(id, info, BPF_NOEXIST) {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(false)
            }
            Err(source) => Err(map_error(maps::AGENTS, source)),
        }
    }

    /// Removes the inherited entry of cgroup `id` (one removed while it was being registered).
    pub fn unregister_inherited(&mut self, id: u64) -> Result<(), LoadError> {
        let mut agents: HashMap<_, u64, AgentInfo> = self.map(maps::AGENTS)?;
        match agents.get(&id, 0) {
            Ok(info) if info.flags & maps::AGENT_FLAG_INHERITED != 0 => agents
                .remove(&id)
                .map_err(|source| map_error(maps::AGENTS, source)),
            _ => Ok(()),
        }
    }

    /// The object, for the network hook family (`kernel::net`), which loads, fills and
    /// attaches its own programs and maps in it.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Registers in `GOV_LINKED` the roots of the mounts at `points` below a protected path
    /// of the installed policy that are not registered yet (`kernel::mounts`); returns where
    /// those mounts are. A map that refuses an entry is logged, not fatal: the mount's files
    /// are still decided through every hook that is given its mount.
    pub fn register_mounts(&mut self, points: &[PathBuf]) -> Vec<PathBuf> {
        let mut regs = super::mounts::registrations(&self.linked_roots, points);
        regs.retain(|(_, key, _)| self.linked_keys.insert(*key));
        let Ok(mut map) = self.map::<HashMap<_, InodeKey, ProtectedRule>>(maps::LINKED) else {
            return Vec::new();
        };
        let mut done = Vec::new();
        for (path, key, rule) in regs {
            match map.insert(key, rule, 0) {
                Ok(()) => done.push(path),
                Err(e) => tracing::warn!(mount = %path.display(), error = %e,
                    "cannot register a mount inside a protected path"),
            }
        }
        done
    }

    /// Writes the compiled policy into the kernel maps.
    pub fn install(&mut self, compiled: &Compiled) -> Result<(), LoadError> {
        self.linked_roots = compiled
            .protected
            .iter()
            .filter_map(|p| Some((std::fs::canonicalize(&p.path).ok()?, p.rule)))
            .collect();
        self.linked_keys = compiled.linked.linked.iter().map(|l| l.key).collect();
        {
            let mut agents: HashMap<_, u64, AgentInfo> = self.map(maps::AGENTS)?;
            for a in &compiled.agents {
                agents
                    .insert(a.cgroup_id, a.info, 0)
                    .map_err(|source| map_error(maps::AGENTS, source))?;
            }
        }
        {
            let mut protected: HashMap<_, InodeKey, ProtectedRule> = self.map(maps::PROTECTED)?;
            for p in &compiled.protected {
                protected
                    .insert(p.key, p.rule, 0)
                    .map_err(|source| map_error(maps::PROTECTED, source))?;
            }
        }
        {
            let mut ancestors: HashMap<_, InodeKey, u32> = self.map(maps::ANCESTORS)?;
            for (key, rule_id) in &compiled.ancestors {
                ancestors
                    .insert(key, rule_id, 0)
                    .map_err(|source| map_error(maps::ANCESTORS, source))?;
            }
        }
        {
            let mut linked: HashMap<_, InodeKey, ProtectedRule> = self.map(maps::LINKED)?;
            let scan = &compiled.linked;
            for l in &scan.linked {
                linked
                    .insert(l.key, l.rule, 0)
                    .map_err(|source| map_error(maps::LINKED, source))?;
                tracing::debug!(path = %l.path.display(), why = ?l.why,
                    "protected by inode wherever it is reached from");
            }
            let links = scan.linked.iter().filter(|l| l.why == Why::Link).count();
            tracing::info!(
                links,
                mounts = scan.linked.len() - links,
                entries = scan.entries,
                took_ms = scan.took.as_millis() as u64,
                "protection follows the inode: {links} files with another name and {} mounts \
                 below protected paths registered",
                scan.linked.len() - links
            );
            for path in &compiled.absent {
                tracing::info!(path = %path.display(),
                    "optional protected path absent on this host: protected from the first \
                     policy load that finds it (`governor policy reload`)");
            }
            for (dir, why) in &scan.unreadable {
                tracing::warn!(dir = %dir.display(), %why,
                    "could not scan a directory below a protected path: a file in it with \
                     another name outside is protected only through its names inside");
            }
        }
        {
            let mut binaries: HashMap<_, InodeKey, ProtectedRule> = self.map(maps::BINARIES)?;
            for b in &compiled.binaries {
                binaries
                    .insert(b.key, b.rule, 0)
                    .map_err(|source| map_error(maps::BINARIES, source))?;
            }
        }
        let mut own: HashMap<_, AgentRuleKey, Masks> = self.map(maps::AGENT_RULES)?;
        for (key, masks) in &compiled.agent_rules {
            own.insert(key, masks, 0)
                .map_err(|source| map_error(maps::AGENT_RULES, source))?;
        }
        Ok(())
    }

    /// Installs (or replaces) one lease entry: from now until its boot-time expiry the
    /// kernel lets the agent do the class to the object.
    pub fn set_lease(&mut self, key: LeaseKey, entry: LeaseEntry) -> Result<(), LoadError> {
        let mut leases: HashMap<_, LeaseKey, LeaseEntry> = self.map(maps::LEASES)?;
        leases
            .insert(key, entry, 0)
            .map_err(|source| map_error(maps::LEASES, source))
    }

    /// Removes one lease entry; an entry that is already gone is not an error.
    pub fn remove_lease(&mut self, key: &LeaseKey) -> Result<(), LoadError> {
        let mut leases: HashMap<_, LeaseKey, LeaseEntry> = self.map(maps::LEASES)?;
        match leases.remove(key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(map_error(maps::LEASES, source)),
        }
    }

    /// Takes the event ring buffer out, for the reader task to own.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self.ebpf.take_map(maps::EVENTS).ok_or(LoadError::Missing {
            what: "map",
            name: maps::EVENTS,
        })?;
        RingBuf::try_from(map).map_err(|source| map_error(maps::EVENTS, source))
    }

    /// Takes the process-lineage ring buffer out, for its reader task to own.
    pub fn take_procs(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self.ebpf.take_map(maps::PROCS).ok_or(LoadError::Missing {
            what: "map",
            name: maps::PROCS,
        })?;
        RingBuf::try_from(map).map_err(|source| map_error(maps::PROCS, source))
    }

    /// Sum over CPUs of one kernel counter.
    pub fn counter(&mut self, counter: Counter) -> Result<u64, LoadError> {
        let counters: PerCpuArray<_, u64> = self.map(maps::COUNTERS)?;
        let values = counters
            .get(&(counter as u32), 0)
            .map_err(|source| map_error(maps::COUNTERS, source))?;
        Ok(values.iter().sum())
    }

    fn map<'a, M>(&'a mut self, name: &'static str) -> Result<M, LoadError>
    where
        M: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(LoadError::Missing { what: "map", name })?;
        M::try_from(map).map_err(|source| map_error(name, source))
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Lsm, LoadError> {
    let prog = ebpf.program_mut(name).ok_or(LoadError::Missing {
        what: "program",
        name,
    })?;
    prog.try_into()
        .map_err(|source| program_error(name, source))
}

fn tracepoint<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut RawTracePoint, LoadError> {
    let prog = ebpf.program_mut(name).ok_or(LoadError::Missing {
        what: "program",
        name,
    })?;
    prog.try_into()
        .map_err(|source| tracepoint_error(name, source))
}

fn tracepoint_error(program: &'static str, err: aya::programs::ProgramError) -> LoadError {
    LoadError::Tracepoint {
        program,
        cause: innermost_cause(&err).0,
    }
}

fn proc_error(program: &'static str, err: aya::programs::ProgramError) -> LoadError {
    LoadError::ProcTracepoint {
        program,
        cause: innermost_cause(&err).0,
    }
}

/// Describes a program load/attach failure by its innermost cause (aya repeats the outer
/// message in the chain), with a hint for EPERM.
fn program_error(program: &'static str, err: aya::programs::ProgramError) -> LoadError {
    let (cause, eperm) = innermost_cause(&err);
    LoadError::Program {
        program,
        cause,
        hint: if eperm { EPERM_HINT } else { "" },
    }
}

/// The innermost cause of a program error (aya repeats the outer message in the chain), and
/// whether it is EPERM.
pub fn innermost_cause(err: &aya::programs::ProgramError) -> (String, bool) {
    let mut eperm = false;
    let mut cause = err.to_string();
    let mut next: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = next {
        if let Some(sys) = e.downcast_ref::<aya::sys::SyscallError>() {
            eperm = sys.io_error.raw_os_error() == Some(libc::EPERM);
            cause = format!("{}() failed: {}", sys.call, sys.io_error);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            eperm |= io.raw_os_error() == Some(libc::EPERM);
            let io = io.to_string();
            if !cause.contains(&io) {
                cause = format!("{cause}: {io}");
            }
        }
        next = e.source();
    }
    (cause, eperm)
}

fn map_error(map: &'static str, source: aya::maps::MapError) -> LoadError {
    LoadError::Map { map, source }
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
