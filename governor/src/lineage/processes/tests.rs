//! The tracker's tests, on fake `/proc` trees and the real one.

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
        let dir =
            std::env::temp_dir().join(format!("governor-proc-test-{name}-{}", std::process::id()));
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
    assert!(rows
        .iter()
        .any(|r| matches!(r, ProcessRow::Exec { pid: 72, argv, .. } if argv == &["sleep", "100"])));
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
