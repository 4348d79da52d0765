//! Processes as typed rows, and the lookups trace and graph walk with: the process a pid
//! named at a boot time ([`at`], pid-reuse safe: the latest start at or before that time,
//! still running then), a parent ([`parent`]) and the children ([`children`]).

use rusqlite::{Connection, OptionalExtension, Row};
use serde::Serialize;

use super::{json_list, sql, QueryError};

/// One `processes` row. `*_ns` here are boot times of boot `boot_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub boot_id: String,
    pub pid: i64,
    pub start_ns: i64,
    pub ppid: Option<i64>,
    pub parent_start_ns: Option<i64>,
    pub uid: Option<i64>,
    pub cgroup_id: Option<i64>,
    pub agent: Option<String>,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub exec_ns: Option<i64>,
    pub exit_ns: Option<i64>,
    pub exit_code: Option<i64>,
}

const COLUMNS: &str = "boot_id, pid, start_ns, ppid, parent_start_ns, uid, cgroup_id, agent, \
    exe, argv, cwd, exec_ns, exit_ns, exit_code";

impl Process {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Process> {
        Ok(Process {
            boot_id: r.get(0)?,
            pid: r.get(1)?,
            start_ns: r.get(2)?,
            ppid: r.get(3)?,
            parent_start_ns: r.get(4)?,
            uid: r.get(5)?,
            cgroup_id: r.get(6)?,
            agent: r.get(7)?,
            exe: r.get(8)?,
            argv: json_list(r.get(9)?),
            cwd: r.get(10)?,
            exec_ns: r.get(11)?,
            exit_ns: r.get(12)?,
            exit_code: r.get(13)?,
        })
    }

    /// What it ran: its argv, else its exe, else `?`.
    pub fn command(&self) -> String {
        if !self.argv.is_empty() {
            self.argv.join(" ")
        } else {
            self.exe.clone().unwrap_or_else(|| "?".to_owned())
        }
    }

    /// (boot, pid, start): the key naming it.
    pub fn key(&self) -> (&str, i64, i64) {
        (&self.boot_id, self.pid, self.start_ns)
    }
}

/// The process `pid` was at boot time `boot_ns`: the one with the latest start at or before
/// it, if it had not exited before it.
pub fn at(
    conn: &Connection,
    boot_id: &str,
    pid: i64,
    boot_ns: i64,
) -> Result<Option<Process>, QueryError> {
    let p = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM processes WHERE boot_id = ?1 AND pid = ?2 \
             AND start_ns <= ?3 ORDER BY start_ns DESC LIMIT 1"
        ))
        .and_then(|mut st| {
            st.query_row(rusqlite::params![boot_id, pid, boot_ns], Process::from_row)
                .optional()
        })
        .map_err(sql("the event's process"))?;
    Ok(p.filter(|p| p.exit_ns.is_none_or(|x| x >= boot_ns)))
}

/// The parent of `child`: by its recorded (ppid, parent start); without the parent's start
/// (only its exec was seen), the process `ppid` was when `child` started.
pub fn parent(conn: &Connection, child: &Process) -> Result<Option<Process>, QueryError> {
    let Some(ppid) = child.ppid.filter(|p| *p > 0) else {
        return Ok(None);
    };
    match child.parent_start_ns {
        Some(start) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM processes WHERE boot_id = ?1 AND pid = ?2 \
                 AND start_ns = ?3"
            ))
            .and_then(|mut st| {
                st.query_row(
                    rusqlite::params![child.boot_id, ppid, start],
                    Process::from_row,
                )
                .optional()
            })
            .map_err(sql("a parent process")),
        None => at(conn, &child.boot_id, ppid, child.start_ns),
    }
}

/// The processes `parent` started (as far as recorded), oldest first, at most `limit`.
pub fn children(
    conn: &Connection,
    parent: &Process,
    limit: u32,
) -> Result<Vec<Process>, QueryError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM processes WHERE boot_id = ?1 AND ppid = ?2 \
         AND parent_start_ns = ?3 ORDER BY start_ns LIMIT ?4"
    ))
    .and_then(|mut st| {
        st.query_map(
            rusqlite::params![parent.boot_id, parent.pid, parent.start_ns, limit],
            Process::from_row,
        )?
        .collect()
    })
    .map_err(sql("child processes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture::{self, boot, BOOT};

    #[test]
    fn a_reused_pid_names_the_process_running_then() {
        let conn = fixture::db();
        let ns = |s| boot(s) as i64;
        let early = at(&conn, BOOT, 400, ns(50)).expect("q").expect("sleep");
        assert_eq!(early.exe.as_deref(), Some("/usr/bin/sleep"));
        assert_eq!(
            at(&conn, BOOT, 400, ns(200)).expect("q"),
            None,
            "exited at 100"
        );
        let late = at(&conn, BOOT, 400, ns(1040)).expect("q").expect("rm");
        assert_eq!(late.exe.as_deref(), Some("/usr/bin/rm"));
        let sh = parent(&conn, &late).expect("q").expect("parent");
        assert_eq!((sh.pid, sh.exe.as_deref()), (300, Some("/bin/sh")));
        let kids = children(&conn, &sh, 10).expect("children");
        let pids: Vec<i64> = kids.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [400, 401]);
        assert_eq!(at(&conn, "other-boot", 400, ns(1040)).expect("q"), None);
    }
}
