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

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use governor_common::process::{ProcEvent, ProcKind};

use super::{
    record::{ProcessRow, Record},
    recorder::Recorder,
};

/// Beyond this many remembered processes (live agent processes plus launchers recorded) the
/// memory is cleared; at worst a process's start row is written again (an idempotent upsert).
const KNOWN_MAX: usize = 1 << 16;

/// Where the tracker reads the host's processes and cgroups (the real ones, or a test's
/// fake tree).
#[derive(Debug, Clone)]
pub struct Host {
    /// `/proc`.
    pub proc: PathBuf,
    /// The cgroup v2 mount.
    pub cgroup2: PathBuf,
    /// Nanoseconds per clock tick of `/proc/PID/stat` times.
    pub tick_ns: u64,
}

impl Host {
    /// This host: `/proc`, the cgroup v2 mount at `cgroup2`, `sysconf(_SC_CLK_TCK)`.
    pub fn real(cgroup2: &Path) -> Host {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Host {
            proc: PathBuf::from("/proc"),
            cgroup2: cgroup2.to_owned(),
            tick_ns: 1_000_000_000 / u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100),
        }
    }
}

/// A process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Start time, boot ns at tick resolution.
    pub start_ns: u64,
    pub uid: u32,
    /// Its cgroup v2 path, relative to the mount (no leading `/`).
    pub cgroup: PathBuf,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
}

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

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unexpected format ({what})")]
    Format { path: PathBuf, what: &'static str },
}

/// Reads process `pid` from `host.proc`: stat (ppid, start time), status (real uid), cgroup
/// (v2 path), and, if readable, exe, cmdline and cwd.
pub fn read_proc(host: &Host, pid: u32) -> Result<ProcInfo, ProcError> {
    let dir = host.proc.join(pid.to_string());
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| ProcError::Io { path, source })
    };
    let bad = |name: &str, what| ProcError::Format {
        path: dir.join(name),
        what,
    };
    let stat = read("stat")?;
    let stat = String::from_utf8_lossy(&stat);
    // "PID (COMM) STATE PPID ..."; COMM may hold spaces and parentheses.
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| bad("stat", "no `)` after comm"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields
        .get(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| bad("stat", "field 4 (ppid)"))?;
    let ticks: u64 = fields
        .get(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| bad("stat", "field 22 (starttime)"))?;
    let status = read("status")?;
    let uid = String::from_utf8_lossy(&status)
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| bad("status", "Uid line"))?;
    let cgroup = read("cgroup")?;
    let cgroup = String::from_utf8_lossy(&cgroup)
        .lines()
        .find_map(|l| {
            l.strip_prefix("0::")
                .map(|p| PathBuf::from(p.trim_start_matches('/')))
        })
        .ok_or_else(|| bad("cgroup", "no cgroup v2 (`0::`) line"))?;
    let link = |name: &str| {
        std::fs::read_link(dir.join(name))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    };
    let argv = read("cmdline")
        .map(|b| {
            let b = b.strip_suffix(&[0]).unwrap_or(&b);
            if b.is_empty() {
                Vec::new()
            } else {
                b.split(|&c| c == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            }
        })
        .unwrap_or_default();
    Ok(ProcInfo {
        pid,
        ppid,
        start_ns: ticks.saturating_mul(host.tick_ns),
        uid,
        cgroup,
        exe: link("exe"),
        argv,
        cwd: link("cwd"),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::Receiver;

    use governor_common::{event::PATH_PRESENT, process::ARGV_PRESENT};

    use super::*;

    const TICK: u64 = 10_000_000;

    fn ev(kind: ProcKind, pid: u32, start_ns: u64, ppid: u32, parent_start_ns: u64) -> ProcEvent {
        ProcEvent {
            boot_ns: start_ns + 1000,
            start_ns,
            parent_start_ns,
            cgroup_id: 77,
            pid,
            ppid,
            uid: 1000,
            ..ProcEvent::new(kind)
        }
    }

    fn exec_ev(pid: u32, start_ns: u64, ppid: u32, parent_start_ns: u64) -> ProcEvent {
        let mut e = ev(ProcKind::Exec, pid, start_ns, ppid, parent_start_ns);
        e.exe[..7].copy_from_slice(b"rm\0bin\0");
        e.exe_len = 7;
        e.exe_flags = PATH_PRESENT;
        e.cwd[..4].copy_from_slice(b"tmp\0");
        e.cwd_len = 4;
        e.cwd_flags = PATH_PRESENT;
        let a = b"rm\0/protected/file\0";
        e.argv[..a.len()].copy_from_slice(a);
        e.argv_len = a.len() as u16;
        e.argv_flags = ARGV_PRESENT;
        e
    }

    /// A fake `/proc` with processes (pid, ppid, start ticks, cgroup, argv).
    struct Fake {
        dir: PathBuf,
    }

    impl Fake {
        fn new(name: &str) -> Fake {
            let dir = std::env::temp_dir()
                .join(format!("governor-proc-test-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("proc")).expect("mkdir");
            std::fs::create_dir_all(dir.join("cg/agents/a/sub")).expect("mkdir");
            Fake { dir }
        }

        fn host(&self) -> Host {
            Host {
                proc: self.dir.join("proc"),
                cgroup2: self.dir.join("cg"),
                tick_ns: TICK,
            }
        }

        fn process(&self, pid: u32, ppid: u32, ticks: u64, cgroup: &str, argv: &[&str]) {
            let d = self.dir.join("proc").join(pid.to_string());
            std::fs::create_dir_all(&d).expect("mkdir");
            let mut stat = format!("{pid} (we (ird)) S {ppid}");
            for i in 5..22 {
                stat.push_str(&format!(" {i}"));
            }
            stat.push_str(&format!(" {ticks} 0 0\n"));
            std::fs::write(d.join("stat"), stat).expect("stat");
            std::fs::write(d.join("status"), "Name:\tx\nUid:\t1000\t0\t0\t0\n").expect("status");
            std::fs::write(d.join("cgroup"), format!("0::/{cgroup}\n")).expect("cgroup");
            let mut cmd = argv.join("\0");
            cmd.push('\0');
            std::fs::write(d.join("cmdline"), cmd).expect("cmdline");
            std::os::unix::fs::symlink("/usr/bin/sh", d.join("exe")).expect("exe");
            std::os::unix::fs::symlink("/work", d.join("cwd")).expect("cwd");
            let cg = self.dir.join("cg").join(cgroup);
            std::fs::create_dir_all(&cg).expect("mkdir");
            let procs = cg.join("cgroup.procs");
            let mut text = std::fs::read_to_string(&procs).unwrap_or_default();
            text.push_str(&format!("{pid}\n"));
            std::fs::write(procs, text).expect("cgroup.procs");
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn tracker(host: Host) -> (Tracker, Receiver<Record>) {
        let (rec, rx, _) = Recorder::channel(64);
        let agents = vec![("a".to_owned(), PathBuf::from("agents/a"))];
        (Tracker::new(rec, "boot".into(), host, agents), rx)
    }

    fn drain(rx: &Receiver<Record>) -> Vec<ProcessRow> {
        rx.try_iter()
            .map(|r| match r {
                Record::Process(p) => p,
                other => panic!("not a process row: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn reads_this_process_from_the_real_proc() {
        let host = Host::real(Path::new("/sys/fs/cgroup"));
        assert_eq!(host.tick_ns, TICK, "CLK_TCK is 100 on x86_64 Linux");
        let me = read_proc(&host, std::process::id()).expect("own /proc entry");
        // SAFETY: no preconditions.
        assert_eq!(me.ppid, unsafe { libc::getppid() } as u32);
        assert!(me.start_ns > 0 && me.start_ns.is_multiple_of(TICK));
        assert_eq!(
            me.exe,
            std::env::current_exe()
                .ok()
                .map(|p| p.display().to_string())
        );
        assert_eq!(me.argv.len(), std::env::args().count());
        assert!(read_proc(&host, u32::MAX).is_err());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(1 << 8), 1);
        assert_eq!(exit_code(255 << 8), 255);
        assert_eq!(exit_code(9), -9);
        assert_eq!(exit_code(0x80 | 11), -11); // core dumped
    }

    #[test]
    fn fork_exec_exit_become_rows_at_tick_resolution() {
        let fake = Fake::new("rows");
        let (mut t, rx) = tracker(fake.host());
        // The parent is known (as if recorded before): no /proc lookup.
        t.remember((10, 5 * TICK));
        t.ingest(&ev(ProcKind::Fork, 11, 7 * TICK + 123, 10, 5 * TICK + 9));
        t.ingest(&exec_ev(11, 7 * TICK + 123, 10, 5 * TICK + 9));
        let mut exit = ev(ProcKind::Exit, 11, 7 * TICK + 123, 10, 5 * TICK + 9);
        exit.exit_code = 1 << 8;
        t.ingest(&exit);
        let rows = drain(&rx);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(
            rows[0],
            ProcessRow::Started {
                boot_id: "boot".into(),
                pid: 11,
                start_ns: 7 * TICK,
                ppid: 10,
                parent_start_ns: 5 * TICK,
                uid: 1000,
                cgroup_id: 77,
                agent: Some("a".into()),
            }
        );
        assert_eq!(
            rows[1],
            ProcessRow::Exec {
                boot_id: "boot".into(),
                pid: 11,
                start_ns: 7 * TICK,
                exec_ns: Some(7 * TICK + 1123),
                exe: "/bin/rm".into(),
                argv: vec!["rm".into(), "/protected/file".into()],
                argv_truncated: false,
                cwd: Some("/tmp".into()),
                uid: 1000,
            }
        );
        assert!(matches!(
            rows[2],
            ProcessRow::Exited {
                pid: 11,
                start_ns,
                exit_code: 1,
                ..
            } if start_ns == 7 * TICK
        ));
        assert!(!t.known.contains(&(11, 7 * TICK)), "forgotten at exit");
    }

    #[test]
    fn an_exec_without_its_fork_starts_the_process_and_records_its_launcher_once() {
        let fake = Fake::new("launcher");
        fake.process(50, 1, 3, "user.slice", &["bash", "-l"]);
        let (mut t, rx) = tracker(fake.host());
        t.ingest(&exec_ev(60, 9 * TICK + 5, 50, 3 * TICK + 7));
        let rows = drain(&rx);
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert!(
            matches!(&rows[0], ProcessRow::Started { pid: 60, ppid: 50, agent: Some(a), .. } if a == "a")
        );
        assert!(matches!(&rows[1], ProcessRow::Exec { pid: 60, .. }));
        assert!(
            matches!(&rows[2], ProcessRow::Started { pid: 50, ppid: 1, agent: None, start_ns, .. } if *start_ns == 3 * TICK)
        );
        assert!(
            matches!(&rows[3], ProcessRow::Exec { pid: 50, argv, exec_ns: None, cwd: Some(c), .. }
            if argv == &["bash", "-l"] && c == "/work")
        );
        // A second exec of the same process: one row, no lookups.
        t.ingest(&exec_ev(60, 9 * TICK + 5, 50, 3 * TICK + 7));
        assert_eq!(drain(&rx).len(), 1);
        // A launcher whose pid was reused (other start time) is not recorded.
        t.ingest(&exec_ev(61, 9 * TICK + 5, 50, 4 * TICK));
        assert_eq!(drain(&rx).len(), 2);
    }

    #[test]
    fn snapshot_reads_agent_cgroups() {
        let fake = Fake::new("snapshot");
        fake.process(70, 1, 2, "init.scope", &["init"]);
        fake.process(71, 70, 4, "agents/a", &["agent", "--run"]);
        fake.process(72, 71, 6, "agents/a/sub", &["sleep", "100"]);
        let (mut t, rx) = tracker(fake.host());
        let cg = fake.dir.join("cg");
        let n = t.snapshot(&[
            cg.join("agents/a"),
            cg.join("agents/a/sub"),
            cg.join("gone"),
        ]);
        assert_eq!(n, 2);
        let rows = drain(&rx);
        let started: Vec<(u32, u32, u64, Option<String>)> = rows
            .iter()
            .filter_map(|r| match r {
                ProcessRow::Started {
                    pid,
                    ppid,
                    parent_start_ns,
                    agent,
                    ..
                } => Some((*pid, *ppid, *parent_start_ns, agent.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            started,
            vec![
                (71, 70, 2 * TICK, Some("a".into())),
                (72, 71, 4 * TICK, Some("a".into())),
                (70, 1, 0, None),
            ]
        );
        assert!(rows.iter().any(
            |r| matches!(r, ProcessRow::Exec { pid: 72, argv, .. } if argv == &["sleep", "100"])
        ));
    }

    #[test]
    fn rows_reach_the_database() {
        use rusqlite::Connection;
        let fake = Fake::new("db");
        let (mut t, rx) = tracker(fake.host());
        t.remember((10, 0));
        t.ingest(&ev(ProcKind::Fork, 11, 7 * TICK, 10, 0));
        t.ingest(&exec_ev(11, 7 * TICK, 10, 0));
        let mut conn = Connection::open_in_memory().expect("db");
        crate::lineage::schema::migrate(&mut conn).expect("schema");
        let tx = conn.transaction().expect("tx");
        for r in rx.try_iter() {
            crate::lineage::record::insert(&tx, &r).expect("insert");
        }
        tx.commit().expect("commit");
        let (ppid, exe, argv, cwd, agent): (u32, String, String, String, String) = conn
            .query_row(
                "SELECT ppid, exe, argv, cwd, agent FROM processes WHERE pid = 11",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .expect("row");
        assert_eq!(
            (
                ppid,
                exe.as_str(),
                argv.as_str(),
                cwd.as_str(),
                agent.as_str()
            ),
            (10, "/bin/rm", r#"["rm","/protected/file"]"#, "/tmp", "a")
        );
    }
}
