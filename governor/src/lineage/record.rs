//! What the daemon records in the lineage: one [`Record`] per row, in the terms of the
//! schema ([`super::schema`]), and [`insert`], the only code that writes them. Producers
//! (the event sink, the process tracker, the lease authority, halts, policy loads) build
//! records; the writer batches them into transactions.

use rusqlite::{params, Transaction};

/// A kernel decision, resolved to names (`events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub boot_id: String,
    pub boot_ns: u64,
    pub ts_ns: i64,
    pub agent: Option<String>,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub class: String,
    pub decision: String,
    pub target: String,
    pub path: Option<String>,
    /// (dev, inode) of a file target.
    pub inode: Option<(u64, u64)>,
    pub detail: u64,
    pub rule: Option<String>,
    pub lease_id: Option<String>,
    pub policy_version: String,
}

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

/// A lease the daemon accepted, with the signatures that counted (`leases`,
/// `lease_signatures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub id: String,
    pub agent: String,
    pub host: String,
    /// JSON array of `{class, target, object, resource}`.
    pub scopes: String,
    pub not_before: u64,
    pub not_after: u64,
    pub reason: String,
    pub ticket: Option<String>,
    pub request_id: Option<String>,
    pub document: String,
    pub policy_version: String,
    pub signers: Vec<SignerRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerRow {
    pub key_id: String,
    pub operator: String,
    /// `issuer` or `approver`.
    pub role: String,
    pub signed_at: u64,
}

/// A step in a lease's (or request's) life (`lease_lifecycle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRow {
    pub ts_ns: i64,
    pub lease_id: Option<String>,
    pub request_id: Option<String>,
    /// One of the states the schema's CHECK lists.
    pub state: &'static str,
    pub actor: Option<String>,
    /// JSON object.
    pub detail: Option<String>,
}

/// A halt or resume (`halts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltRow {
    pub ts_ns: i64,
    /// `freeze`, `kill` or `resume`.
    pub action: &'static str,
    pub agents: Vec<String>,
    pub by_uid: u32,
    pub leases_revoked: u32,
    pub enforce_ns: Option<u64>,
}

/// Events lost between two times (`gaps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRow {
    /// `kernel-ring`, `queue`, `disk`, `malformed` or `downtime`.
    pub source: &'static str,
    pub lost: u64,
    pub from_ns: i64,
    pub until_ns: i64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    pub version: String,
    pub name: String,
    pub owner: String,
    pub source: String,
    pub loaded_ns: i64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key_id: String,
    pub operator: String,
    pub public_key: String,
    pub first_seen_ns: i64,
}

/// One row (or row update) for the lineage database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Event(Box<EventRow>),
    Process(ProcessRow),
    Lease(Box<LeaseRow>),
    Lifecycle(LifecycleRow),
    Halt(HaltRow),
    Gap(GapRow),
    Policy(Box<PolicyRow>),
    Key(KeyRow),
}

fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// SQLite integers are signed 64-bit; kernel ids and times fit, a wrapped value would be a
/// kernel bug, kept as its bit pattern rather than refused.
fn i(v: u64) -> i64 {
    v as i64
}

/// The events table's columns, in the order [`bind_event`] binds them.
const EVENT_COLUMNS: &str = "boot_id, boot_ns, ts_ns, agent, cgroup_id, pid, tgid, uid, gid, \
    comm, exe, class, decision, target, path, inode, dev, detail, rule, lease_id, policy_version";
const EVENT_PARAMS: usize = 21;
/// Events per multi-row `INSERT` ([`insert_events`]): SQLite sets up a statement's cursors
/// once per execution, so at flood rates a row costs less in a group.
pub const EVENTS_PER_INSERT: usize = 16;

/// `INSERT OR IGNORE` of `rows` events, `?` numbered from 1.
fn events_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; EVENT_PARAMS].join(", "));
    format!(
        "INSERT OR IGNORE INTO events ({EVENT_COLUMNS}) VALUES {}",
        vec![one; rows].join(", ")
    )
}

/// The SQL of a full group and of one event, built once.
fn event_statements() -> &'static (String, String) {
    static SQL: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    SQL.get_or_init(|| (events_sql(EVENTS_PER_INSERT), events_sql(1)))
}

/// Binds `e`'s columns at parameters `first..first + EVENT_PARAMS` (1-based).
fn bind_event(
    st: &mut rusqlite::CachedStatement<'_>,
    first: usize,
    e: &EventRow,
) -> rusqlite::Result<()> {
    let values: [&dyn rusqlite::ToSql; EVENT_PARAMS] = [
        &e.boot_id,
        &i(e.boot_ns),
        &e.ts_ns,
        &e.agent,
        &i(e.cgroup_id),
        &e.pid,
        &e.tgid,
        &e.uid,
        &e.gid,
        &e.comm,
        &e.exe,
        &e.class,
        &e.decision,
        &e.target,
        &e.path,
        &e.inode.map(|(_, ino)| i(ino)),
        &e.inode.map(|(dev, _)| i(dev)),
        &i(e.detail),
        &e.rule,
        &e.lease_id,
        &e.policy_version,
    ];
    for (k, v) in values.into_iter().enumerate() {
        st.raw_bind_parameter(first + k, v)?;
    }
    Ok(())
}

/// Writes events in the order given, [`EVENTS_PER_INSERT`] rows per statement (the rest one
/// by one, so that only two statements are ever cached); an event already there changes
/// nothing.
pub fn insert_events(tx: &Transaction<'_>, events: &[&EventRow]) -> rusqlite::Result<()> {
    let (group_sql, one_sql) = event_statements();
    let mut groups = events.chunks_exact(EVENTS_PER_INSERT);
    for group in groups.by_ref() {
        let mut st = tx.prepare_cached(group_sql)?;
        for (n, e) in group.iter().enumerate() {
            bind_event(&mut st, 1 + n * EVENT_PARAMS, e)?;
        }
        st.raw_execute()?;
    }
    for e in groups.remainder() {
        let mut st = tx.prepare_cached(one_sql)?;
        bind_event(&mut st, 1, e)?;
        st.raw_execute()?;
    }
    Ok(())
}

/// Writes one record. Re-inserting an event, lease, key or policy row that is already there
/// changes nothing (a restarted daemon may see the same thing again), so ingest is
/// idempotent.
pub fn insert(tx: &Transaction<'_>, record: &Record) -> rusqlite::Result<()> {
    match record {
        Record::Event(e) => insert_events(tx, &[e])?,
        Record::Process(p) => insert_process(tx, p)?,
        Record::Lease(l) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO leases (id, agent, host, scopes, not_before, not_after, \
                 reason, ticket, request_id, document, policy_version) VALUES (?1, ?2, ?3, ?4, \
                 ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                l.id,
                l.agent,
                l.host,
                l.scopes,
                i(l.not_before),
                i(l.not_after),
                l.reason,
                l.ticket,
                l.request_id,
                l.document,
                l.policy_version,
            ])?;
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO lease_signatures (lease_id, key_id, operator, role, \
                 signed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for s in &l.signers {
                st.execute(params![l.id, s.key_id, s.operator, s.role, i(s.signed_at)])?;
            }
        }
        Record::Lifecycle(c) => {
            tx.prepare_cached(
                "INSERT INTO lease_lifecycle (ts_ns, lease_id, request_id, state, actor, \
                 detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                c.ts_ns,
                c.lease_id,
                c.request_id,
                c.state,
                c.actor,
                c.detail
            ])?;
        }
        Record::Halt(h) => {
            tx.prepare_cached(
                "INSERT INTO halts (ts_ns, action, agents, by_uid, leases_revoked, enforce_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                h.ts_ns,
                h.action,
                json_list(&h.agents),
                h.by_uid,
                h.leases_revoked,
                h.enforce_ns.map(i),
            ])?;
        }
        Record::Gap(g) => {
            tx.prepare_cached(
                "INSERT INTO gaps (source, lost, from_ns, until_ns, detail) VALUES (?1, ?2, \
                 ?3, ?4, ?5)",
            )?
            .execute(params![
                g.source,
                i(g.lost),
                g.from_ns,
                g.until_ns,
                g.detail
            ])?;
        }
        Record::Policy(p) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO policies (version, name, owner, source, loaded_ns, text) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                p.version,
                p.name,
                p.owner,
                p.source,
                p.loaded_ns,
                p.text
            ])?;
        }
        Record::Key(k) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO keys (key_id, operator, public_key, first_seen_ns) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![k.key_id, k.operator, k.public_key, k.first_seen_ns])?;
        }
    }
    Ok(())
}

fn insert_process(tx: &Transaction<'_>, p: &ProcessRow) -> rusqlite::Result<()> {
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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::lineage::schema::migrate;

    fn event(boot_ns: u64) -> Record {
        Record::Event(Box::new(EventRow {
            boot_id: "b".into(),
            boot_ns,
            ts_ns: 1_700_000_000_000_000_000,
            agent: Some("a".into()),
            cgroup_id: 9,
            pid: 10,
            tgid: 10,
            uid: 0,
            gid: 0,
            comm: "rm".into(),
            exe: Some("/usr/bin/rm".into()),
            class: "unlink".into(),
            decision: "deny".into(),
            target: "/etc/x".into(),
            path: Some("/etc/x".into()),
            inode: Some((1, 2)),
            detail: 0,
            rule: Some("/etc".into()),
            lease_id: None,
            policy_version: "v".into(),
        }))
    }

    #[test]
    fn events_are_idempotent_and_processes_merge() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        migrate(&mut conn).expect("schema");
        let tx = conn.transaction().expect("tx");
        for r in [event(1), event(1), event(2)] {
            insert(&tx, &r).expect("insert");
        }
        let started = ProcessRow::Started {
            boot_id: "b".into(),
            pid: 10,
            start_ns: 5,
            ppid: 1,
            parent_start_ns: 0,
            uid: 0,
            cgroup_id: 9,
            agent: Some("a".into()),
        };
        let exec = ProcessRow::Exec {
            boot_id: "b".into(),
            pid: 10,
            start_ns: 5,
            exec_ns: Some(6),
            exe: "/usr/bin/rm".into(),
            argv: vec!["rm".into(), "/etc/x".into()],
            argv_truncated: false,
            cwd: Some("/".into()),
            uid: 0,
        };
        // Exec before fork (records from two sources can arrive in either order).
        insert(&tx, &Record::Process(exec)).expect("exec");
        insert(&tx, &Record::Process(started)).expect("start");
        tx.commit().expect("commit");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 2);
        let (ppid, argv): (i64, String) = conn
            .query_row("SELECT ppid, argv FROM processes WHERE pid = 10", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("process");
        assert_eq!((ppid, argv.as_str()), (1, r#"["rm","/etc/x"]"#));
    }
}
