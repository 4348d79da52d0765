//! Process rows (`processes`): a process is named by (boot, pid, start time), and each
//! record merges into its row, whatever order they arrive in.

use rusqlite::{params, Transaction};

use super::{i, json_list};

/// What a process tracker learnt about one process (`processes`). A process is named by
/// (boot, pid, start time); fields left `None` keep what an earlier record set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessRow {
    /// Forked (or found running at start, with its parent and what it runs).
    Started {
        boot_id: String,
        pid: u32,
        start_ns: u64,
        ppid: u32,
        parent_start_ns: u64,
        uid: u32,
        cgroup_id: u64,
        agent: Option<String>,
    },
    /// Executed a program (or found running it at start: `exec_ns` unknown). `None` fields
    /// keep what an earlier record set.
    Exec {
        boot_id: String,
        pid: u32,
        start_ns: u64,
        exec_ns: Option<u64>,
        exe: String,
        argv: Vec<String>,
        /// The kernel could not record every argument (the last one may be cut short).
        argv_truncated: bool,
        cwd: Option<String>,
        uid: u32,
    },
    Exited {
        boot_id: String,
        pid: u32,
        start_ns: u64,
        exit_ns: u64,
        exit_code: i32,
    },
}

/// Merges what `p` says into its process's row.
pub(super) fn insert(tx: &Transaction<'_>, p: &ProcessRow) -> rusqlite::Result<()> {
    match p {
        ProcessRow::Started {
            boot_id,
            pid,
            start_ns,
            ppid,
            parent_start_ns,
            uid,
            cgroup_id,
            agent,
        } => {
            tx.prepare_cached(
                "INSERT INTO processes (boot_id, pid, start_ns, ppid, parent_start_ns, uid, \
                 cgroup_id, agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (boot_id, pid, start_ns) DO UPDATE SET \
                 ppid = excluded.ppid, parent_start_ns = excluded.parent_start_ns, \
                 uid = excluded.uid, cgroup_id = excluded.cgroup_id, agent = excluded.agent",
            )?
            .execute(params![
                boot_id,
                pid,
                i(*start_ns),
                ppid,
                i(*parent_start_ns),
                uid,
                i(*cgroup_id),
                agent
            ])?;
        }
        ProcessRow::Exec {
            boot_id,
            pid,
            start_ns,
            exec_ns,
            exe,
            argv,
            argv_truncated,
            cwd,
            uid,
        } => {
            tx.prepare_cached(
                "INSERT INTO processes (boot_id, pid, start_ns, exe, argv, argv_truncated, cwd, \
                 exec_ns, uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (boot_id, pid, start_ns) DO UPDATE SET exe = excluded.exe, \
                 argv = excluded.argv, argv_truncated = excluded.argv_truncated, \
                 cwd = coalesce(excluded.cwd, cwd), \
                 exec_ns = coalesce(excluded.exec_ns, exec_ns), uid = excluded.uid",
            )?
            .execute(params![
                boot_id,
                pid,
                i(*start_ns),
                exe,
                json_list(argv),
                argv_truncated,
                cwd,
                exec_ns.map(i),
                uid
            ])?;
        }
        ProcessRow::Exited {
            boot_id,
            pid,
            start_ns,
            exit_ns,
            exit_code,
        } => {
            tx.prepare_cached(
                "INSERT INTO processes (boot_id, pid, start_ns, exit_ns, exit_code) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (boot_id, pid, start_ns) DO UPDATE SET exit_ns = excluded.exit_ns, \
                 exit_code = excluded.exit_code",
            )?
            .execute(params![boot_id, pid, i(*start_ns), i(*exit_ns), exit_code])?;
        }
    }
    Ok(())
}
