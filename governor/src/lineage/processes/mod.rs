//! The process tracker: turns the kernel's process records (`ProcEvent`: fork, exec, exit
//! of agent processes) into `processes` rows, and fills in from `/proc` what the kernel did
//! not see: the agent processes already running when the daemon started ([`Tracker::snapshot`])
//! and the process that launched an agent (the parent of an agent's root process, outside the
//! agent, e.g. `governor run`'s caller), recorded once.
//!
//! A process is named by (boot, pid, start time). The kernel knows a task's start time to the
//! nanosecond, `/proc/PID/stat` only in clock ticks (1/`CLK_TCK` s, 10 ms); so that both name
//! the same process, `start_ns` is stored at tick resolution: the kernel's value rounded down
//! to a whole tick. (A pid cannot be reused within one tick: that would take a whole pid-space
//! wrap-around in 10 ms.)
//!
//! [`proc`] reads one process from `/proc` (and where the host keeps it); this file turns
//! what it and the kernel say into rows.
//!
//! May import the rest of `lineage/` and what `lineage/` may (its `mod.rs`).

mod proc;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use governor_common::process::{ProcEvent, ProcKind};

pub use self::proc::{read_proc, Host, ProcInfo};
use super::{
    record::{ProcessRow, Record},
    recorder::Recorder,
};

/// Beyond this many remembered processes (live agent processes plus launchers recorded) the
/// memory is cleared; at worst a process's start row is written again (an idempotent upsert).
const KNOWN_MAX: usize = 1 << 16;

/// Builds `processes` rows and hands them to the recorder (never waiting).
pub struct Tracker {
    recorder: Recorder,
    boot_id: String,
    host: Host,
    /// Agent names by agent id, with each agent's cgroup (relative to the mount).
    agents: Vec<(String, PathBuf)>,
    /// Processes whose start row was written: agent processes, and launchers (recorded or
    /// found gone), so that each is looked up in `/proc` at most once.
    known: HashSet<(u32, u64)>,
}

impl Tracker {
    pub fn new(
        recorder: Recorder,
        boot_id: String,
        host: Host,
        agents: Vec<(String, PathBuf)>,
    ) -> Tracker {
        Tracker {
            recorder,
            boot_id,
            host,
            agents,
            known: HashSet::new(),
        }
    }

    /// The agents of a reloaded policy (agent ids may name other agents now).
    pub fn set_agents(&mut self, agents: Vec<(String, PathBuf)>) {
        self.agents = agents;
    }

    fn tick(&self, ns: u64) -> u64 {
        ns - ns % self.host.tick_ns.max(1)
    }

    fn agent_name(&self, agent_id: u32) -> Option<String> {
        self.agents.get(agent_id as usize).map(|(n, _)| n.clone())
    }

    /// The agent whose cgroup is `cgroup` or its nearest ancestor, if any.
    fn agent_of(&self, cgroup: &Path) -> Option<String> {
        self.agents
            .iter()
            .filter(|(_, c)| cgroup.starts_with(c))
            .max_by_key(|(_, c)| c.components().count())
            .map(|(n, _)| n.clone())
    }

    fn record(&self, row: ProcessRow) {
        // A full queue is counted by the recorder (and becomes a gap).
        self.recorder.record(Record::Process(row));
    }

    fn remember(&mut self, key: (u32, u64)) -> bool {
        if self.known.len() >= KNOWN_MAX {
            self.known.clear();
        }
        self.known.insert(key)
    }

    /// The rows one kernel record stands for. An exec record also starts the process when
    /// its fork was not seen (`fork_seen` false): a process that entered the agent's cgroup
    /// from outside and then executed (`governor run`), or whose fork record was lost.
    pub fn rows(&self, ev: &ProcEvent, fork_seen: bool) -> Vec<ProcessRow> {
        let boot_id = self.boot_id.clone();
        let start_ns = self.tick(ev.start_ns);
        let started = || ProcessRow::Started {
            boot_id: boot_id.clone(),
            pid: ev.pid,
            start_ns,
            ppid: ev.ppid,
            parent_start_ns: self.tick(ev.parent_start_ns),
            uid: ev.uid,
            cgroup_id: ev.cgroup_id,
            agent: self.agent_name(ev.agent_id),
        };
        match ev.proc_kind() {
            Some(ProcKind::Fork) => vec![started()],
            Some(ProcKind::Exec) => {
                let (args, argv_truncated) = ev.args();
                let exec = ProcessRow::Exec {
                    boot_id: boot_id.clone(),
                    pid: ev.pid,
                    start_ns,
                    exec_ns: Some(ev.boot_ns),
                    exe: ev.exe_path().to_string(),
                    argv: args
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect(),
                    argv_truncated,
                    cwd: ev
                        .cwd_path()
                        .is_present()
                        .then(|| ev.cwd_path().to_string()),
                    uid: ev.uid,
                };
                if fork_seen {
                    vec![exec]
                } else {
                    vec![started(), exec]
                }
            }
            Some(ProcKind::Exit) => vec![ProcessRow::Exited {
                boot_id,
                pid: ev.pid,
                start_ns,
                exit_ns: ev.boot_ns,
                exit_code: exit_code(ev.exit_code),
            }],
            None => Vec::new(),
        }
    }

    /// Records one kernel record (and, the first time a process's parent is not a known
    /// process, that parent from `/proc`).
    pub fn ingest(&mut self, ev: &ProcEvent) {
        let key = (ev.pid, self.tick(ev.start_ns));
        if ev.proc_kind() == Some(ProcKind::Exit) {
            self.known.remove(&key);
            for row in self.rows(ev, true) {
                self.record(row);
            }
            return;
        }
        let new = self.remember(key);
        for row in self.rows(ev, !new) {
            self.record(row);
        }
        if new {
            self.launcher(ev.ppid, self.tick(ev.parent_start_ns));
        }
    }

    /// Records the parent `(ppid, start_ns)` of a process just started, once, if it is not a
    /// known process: an agent's launcher (outside the agent) or an agent process whose
    /// records were lost. Read from `/proc`, if it is still the same process there.
    fn launcher(&mut self, ppid: u32, start_ns: u64) {
        if ppid == 0 || !self.remember((ppid, start_ns)) {
            return;
        }
        match read_proc(&self.host, ppid) {
            Ok(info) if info.start_ns == start_ns => self.record_info(&info),
            Ok(_) => tracing::debug!(pid = ppid, "process's parent exited, its pid reused"),
            Err(e) => tracing::debug!(pid = ppid, error = %e, "process's parent is gone"),
        }
    }

    /// Rows for a process found in `/proc`.
    fn record_info(&mut self, info: &ProcInfo) {
        let parent_start_ns = read_proc(&self.host, info.ppid).map_or(0, |p| p.start_ns);
        let cgroup_id = std::fs::metadata(self.host.cgroup2.join(&info.cgroup))
            .map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m));
        self.record(ProcessRow::Started {
            boot_id: self.boot_id.clone(),
            pid: info.pid,
            start_ns: info.start_ns,
            ppid: info.ppid,
            parent_start_ns,
            uid: info.uid,
            cgroup_id,
            agent: self.agent_of(&info.cgroup),
        });
        if let Some(exe) = &info.exe {
            self.record(ProcessRow::Exec {
                boot_id: self.boot_id.clone(),
                pid: info.pid,
                start_ns: info.start_ns,
                exec_ns: None,
                exe: exe.clone(),
                argv: info.argv.clone(),
                argv_truncated: false,
                cwd: info.cwd.clone(),
                uid: info.uid,
            });
        }
    }

    /// Records every process in the cgroups `dirs` (absolute paths: each agent cgroup and the
    /// cgroups below it), read from `/proc`, and the launchers of the agents' root processes.
    /// Call after the process tracepoints are attached, so that none falls in between. Returns
    /// how many processes it recorded.
    pub fn snapshot(&mut self, dirs: &[PathBuf]) -> usize {
        let mut found = Vec::new();
        for dir in dirs {
            let procs = dir.join("cgroup.procs");
            let Ok(text) = std::fs::read_to_string(&procs) else {
                continue; // removed meanwhile
            };
            for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                match read_proc(&self.host, pid) {
                    Ok(info) => found.push(info),
                    Err(e) => tracing::debug!(pid, error = %e, "agent process gone"),
                }
            }
        }
        for info in &found {
            if self.remember((info.pid, info.start_ns)) {
                self.record_info(info);
            }
        }
        for info in &found {
            let parent_start = read_proc(&self.host, info.ppid).map_or(0, |p| p.start_ns);
            self.launcher(info.ppid, parent_start);
        }
        found.len()
    }
}

/// The exit status, or `-N` for a process killed by signal N, from a kernel wait status.
pub fn exit_code(wait_status: i32) -> i32 {
    let signal = wait_status & 0x7f;
    if signal == 0 {
        (wait_status >> 8) & 0xff
    } else {
        -signal
    }
}

#[cfg(test)]
mod tests;
