//! What the daemon records in the lineage: one [`Record`] per row, in the terms of the
//! schema ([`super::schema`]), and [`insert`], the only code that writes them. Producers
//! (the event sink, the process tracker, the lease authority, halts, policy loads) build
//! records; the writer batches them into transactions.

use std::{ffi::c_int, ptr::NonNull};

use rusqlite::{ffi, params, Connection, Transaction};

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
    /// The kernel ring the decision came from (its map id, see [`RingKey`]); 0: none known.
    /// Not a column: the ring's `rings.committed` counts it.
    pub ring: u32,
}

/// One kernel generation's decision ring: the kernel map id of its `GOV_EVENTS`, unique
/// within a boot (`rings` row).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingKey {
    pub boot_id: String,
    pub ring_id: u32,
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
    /// The ring whose decisions it counts (its `rings.lost`, or `rings.dropped` for a
    /// `kernel-ring` gap, grows by `lost`); `None`: not one ring's decisions.
    pub ring: Option<RingKey>,
}

/// What is known about one kernel generation's decision ring (`rings`); `None` fields keep
/// what an earlier row set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingRow {
    pub key: RingKey,
    pub generation: Option<u64>,
    pub policy_version: Option<String>,
    /// The run of the daemon that loaded it.
    pub run: Option<i64>,
    /// The kernel's EventsEmitted and EventsDropped, as read now.
    pub emitted: Option<u64>,
    pub kernel_dropped: Option<u64>,
    /// The counts were read after the generation's programs left the kernel: they are final.
    pub emitted_final: bool,
    /// A daemon counted in gaps whatever of it the lineage lacks.
    pub reconciled_ns: Option<i64>,
}

impl RingRow {
    pub fn new(key: RingKey) -> RingRow {
        RingRow {
            key,
            generation: None,
            policy_version: None,
            run: None,
            emitted: None,
            kernel_dropped: None,
            emitted_final: false,
            reconciled_ns: None,
        }
    }
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
    Ring(Box<RingRow>),
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
/// once per execution, so at flood rates a row costs less in a group (64: 2.4% fewer
/// instructions per row than 16; a batch of 4,096 is 64 whole groups; 1,344 parameters, far
/// below SQLite's 32,766).
pub const EVENTS_PER_INSERT: usize = 64;

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

/// The group `INSERT` ([`EVENTS_PER_INSERT`] events), prepared once on the writer's
/// connection and bound through SQLite's C API with `SQLITE_STATIC`: SQLite reads each text
/// in place during the step instead of copying it at bind time (rusqlite binds every text as
/// `SQLITE_TRANSIENT`, a copy and a free per column: a fifth of a row's cost at flood rates).
///
/// It belongs to the connection it was prepared on: its owner must drop it before that
/// connection closes (the writer keeps it in a local of its thread's loop, which ends before
/// the connection is dropped), and [`EventGroup::insert`] refuses any other connection.
pub struct EventGroup {
    db: *mut ffi::sqlite3,
    stmt: NonNull<ffi::sqlite3_stmt>,
}

/// The error SQLite reports for `rc` on `db` (the same shape rusqlite gives, so that the
/// writer tells a refused record from a failing database by its code).
///
/// # Safety
/// `db` is an open connection.
unsafe fn sqlite_error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: the caller's: `db` is open; sqlite3_errmsg returns a NUL-terminated string
    // that lives until the next call on `db`, copied here at once.
    let message = unsafe { std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned();
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(message))
}

impl EventGroup {
    /// Prepares the group statement on `conn`.
    pub fn prepare(conn: &Connection) -> rusqlite::Result<EventGroup> {
        let sql = &event_statements().0;
        let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        // SAFETY: the handle is `conn`'s, open while `conn` lives; the statement prepared on
        // it is finalized by `Drop`, which its owner runs before `conn` closes (see above).
        let db = unsafe { conn.handle() };
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `sql` is valid for `len` bytes; `stmt` receives the statement or NULL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: `db` is open.
            return Err(unsafe { sqlite_error(db, rc) });
        }
        let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        Ok(EventGroup { db, stmt })
    }

    /// Writes `group` ([`EVENTS_PER_INSERT`] events, in order) in `tx`, which must be on the
    /// connection the statement was prepared on; an event already there changes nothing.
    pub fn insert(&mut self, tx: &Transaction<'_>, group: &[&EventRow]) -> rusqlite::Result<()> {
        // SAFETY: only compared, never used through.
        if group.len() != EVENTS_PER_INSERT || unsafe { tx.handle() } != self.db {
            return Err(rusqlite::Error::InvalidQuery);
        }
        let mut col: c_int = 1;
        let mut rc = ffi::SQLITE_OK;
        for e in group {
            rc = self.bind_event(&mut col, e);
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        if rc != ffi::SQLITE_OK {
            // SAFETY: `self.db` is open (the statement is live on it).
            return Err(unsafe { sqlite_error(self.db, rc) });
        }
        // SAFETY: the statement is live and every parameter is bound to data that `group`
        // keeps alive until this call returns; the step reads it, the reset ends the
        // statement's use of it (each call binds every parameter again before stepping).
        let (step, reset) = unsafe {
            let step = ffi::sqlite3_step(self.stmt.as_ptr());
            (step, ffi::sqlite3_reset(self.stmt.as_ptr()))
        };
        match (step, reset) {
            (ffi::SQLITE_DONE, ffi::SQLITE_OK) => Ok(()),
            (ffi::SQLITE_ROW, _) => Err(rusqlite::Error::ExecuteReturnedResults),
            // SAFETY: `self.db` is open (the statement is live on it).
            (ffi::SQLITE_DONE, rc) | (rc, _) => Err(unsafe { sqlite_error(self.db, rc) }),
        }
    }

    /// Binds `e`'s columns from parameter `*col` on (in [`EVENT_COLUMNS`] order), leaving
    /// `*col` after them; returns SQLite's first non-OK code, or OK.
    fn bind_event(&mut self, col: &mut c_int, e: &EventRow) -> c_int {
        let ints = |s: &mut Self, col: &mut c_int, v: i64| {
            *col += 1;
            // SAFETY: a live statement; an out-of-range index is reported, not used.
            unsafe { ffi::sqlite3_bind_int64(s.stmt.as_ptr(), *col - 1, v) }
        };
        let text = |s: &mut Self, col: &mut c_int, v: Option<&str>| {
            *col += 1;
            let stmt = s.stmt.as_ptr();
            match v {
                // SAFETY: a live statement, and UTF-8 text that the caller keeps alive until
                // the statement is reset (`insert`'s contract), so SQLITE_STATIC holds. An
                // empty text points at a static byte, never at a dangling pointer.
                Some(t) => unsafe {
                    let ptr: *const std::ffi::c_char = if t.is_empty() {
                        c"".as_ptr()
                    } else {
                        t.as_ptr().cast()
                    };
                    ffi::sqlite3_bind_text64(
                        stmt,
                        *col - 1,
                        ptr,
                        t.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    )
                },
                // SAFETY: a live statement.
                None => unsafe { ffi::sqlite3_bind_null(stmt, *col - 1) },
            }
        };
        let rcs = [
            text(self, col, Some(&e.boot_id)),
            ints(self, col, i(e.boot_ns)),
            ints(self, col, e.ts_ns),
            text(self, col, e.agent.as_deref()),
            ints(self, col, i(e.cgroup_id)),
            ints(self, col, i64::from(e.pid)),
            ints(self, col, i64::from(e.tgid)),
            ints(self, col, i64::from(e.uid)),
            ints(self, col, i64::from(e.gid)),
            text(self, col, Some(&e.comm)),
            text(self, col, e.exe.as_deref()),
            text(self, col, Some(&e.class)),
            text(self, col, Some(&e.decision)),
            text(self, col, Some(&e.target)),
            text(self, col, e.path.as_deref()),
            match e.inode {
                Some((_, ino)) => ints(self, col, i(ino)),
                None => text(self, col, None),
            },
            match e.inode {
                Some((dev, _)) => ints(self, col, i(dev)),
                None => text(self, col, None),
            },
            ints(self, col, i(e.detail)),
            text(self, col, e.rule.as_deref()),
            text(self, col, e.lease_id.as_deref()),
            text(self, col, Some(&e.policy_version)),
        ];
        rcs.into_iter()
            .find(|&rc| rc != ffi::SQLITE_OK)
            .unwrap_or(ffi::SQLITE_OK)
    }
}

impl Drop for EventGroup {
    fn drop(&mut self) {
        // SAFETY: the statement is live (its connection still open: the owner's contract)
        // and finalized once, here.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// Writes events in the order given: [`EVENTS_PER_INSERT`] rows per statement through
/// `groups` when given (see [`EventGroup`]), else through rusqlite's statement cache; the
/// rest one by one (so that only two statements are ever cached). An event already there
/// changes nothing.
pub fn insert_events(
    tx: &Transaction<'_>,
    groups: Option<&mut EventGroup>,
    events: &[&EventRow],
) -> rusqlite::Result<()> {
    let (group_sql, one_sql) = event_statements();
    let mut chunks = events.chunks_exact(EVENTS_PER_INSERT);
    match groups {
        Some(g) => {
            for group in chunks.by_ref() {
                g.insert(tx, group)?;
            }
        }
        None => {
            for group in chunks.by_ref() {
                let mut st = tx.prepare_cached(group_sql)?;
                for (n, e) in group.iter().enumerate() {
                    bind_event(&mut st, 1 + n * EVENT_PARAMS, e)?;
                }
                st.raw_execute()?;
            }
        }
    }
    for e in chunks.remainder() {
        let mut st = tx.prepare_cached(one_sql)?;
        bind_event(&mut st, 1, e)?;
        st.raw_execute()?;
    }
    count_committed(tx, events)
}

/// Adds each ring's events among `events` (written in `tx`) to its `rings.committed`.
fn count_committed(tx: &Transaction<'_>, events: &[&EventRow]) -> rusqlite::Result<()> {
    // Runs of one ring: a batch is nearly always a single run.
    let mut rest = events;
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|e| e.ring == first.ring && e.boot_id == first.boot_id)
            .count();
        if first.ring != 0 {
            let key = RingKey {
                boot_id: first.boot_id.clone(),
                ring_id: first.ring,
            };
            ring_add(tx, &key, "committed", n as u64)?;
        }
        rest = &rest[n..];
    }
    Ok(())
}

/// Makes sure `rings` has a row for `key`; returns its id.
pub fn ring_row(tx: &Transaction<'_>, key: &RingKey) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT OR IGNORE INTO rings (boot_id, ring_id) VALUES (?1, ?2)")?
        .execute(params![key.boot_id, key.ring_id])?;
    tx.prepare_cached("SELECT id FROM rings WHERE boot_id = ?1 AND ring_id = ?2")?
        .query_row(params![key.boot_id, key.ring_id], |r| r.get(0))
}

/// Whether `rings` has a row for `key`.
pub fn ring_exists(tx: &Transaction<'_>, key: &RingKey) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT count(*) FROM rings WHERE boot_id = ?1 AND ring_id = ?2")?
        .query_row(params![key.boot_id, key.ring_id], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
}

/// Adds `n` to one of a ring's tallies (`committed`, `lost`, `dropped`).
fn ring_add(tx: &Transaction<'_>, key: &RingKey, column: &str, n: u64) -> rusqlite::Result<i64> {
    let id = ring_row(tx, key)?;
    let sql = match column {
        "committed" => "UPDATE rings SET committed = committed + ?1 WHERE id = ?2",
        "lost" => "UPDATE rings SET lost = lost + ?1 WHERE id = ?2",
        _ => "UPDATE rings SET dropped = dropped + ?1 WHERE id = ?2",
    };
    tx.prepare_cached(sql)?.execute(params![i(n), id])?;
    Ok(id)
}

/// Writes one record. Re-inserting an event, lease, key or policy row that is already there
/// changes nothing (a restarted daemon may see the same thing again), so ingest is
/// idempotent.
pub fn insert(tx: &Transaction<'_>, record: &Record) -> rusqlite::Result<()> {
    match record {
        Record::Event(e) => insert_events(tx, None, &[e])?,
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
            let ring = match &g.ring {
                Some(key) => {
                    let tally = if g.source == "kernel-ring" {
                        "dropped"
                    } else {
                        "lost"
                    };
                    Some(ring_add(tx, key, tally, g.lost)?)
                }
                None => None,
            };
            tx.prepare_cached(
                "INSERT INTO gaps (source, lost, from_ns, until_ns, detail, ring) VALUES (?1, \
                 ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                g.source,
                i(g.lost),
                g.from_ns,
                g.until_ns,
                g.detail,
                ring
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
        Record::Ring(r) => {
            let id = ring_row(tx, &r.key)?;
            // A final count is never replaced by a later, non-final read.
            tx.prepare_cached(
                "UPDATE rings SET generation = coalesce(?1, generation), \
                 policy_version = coalesce(?2, policy_version), run = coalesce(?3, run), \
                 emitted = CASE WHEN emitted_final = 1 THEN emitted ELSE coalesce(?4, emitted) END, \
                 kernel_dropped = CASE WHEN emitted_final = 1 THEN kernel_dropped \
                     ELSE coalesce(?5, kernel_dropped) END, \
                 emitted_final = max(emitted_final, ?6), \
                 reconciled_ns = coalesce(reconciled_ns, ?7) WHERE id = ?8",
            )?
            .execute(params![
                r.generation.map(i),
                r.policy_version,
                r.run,
                r.emitted.map(i),
                r.kernel_dropped.map(i),
                i64::from(r.emitted_final),
                r.reconciled_ns,
                id
            ])?;
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
            ring: 0,
        }))
    }

    /// The group statement binds in place (SQLITE_STATIC): every column of every row is
    /// what the row-at-a-time rusqlite path writes, empty and absent values included, and a
    /// group already there changes nothing.
    #[test]
    fn a_group_writes_what_single_rows_write() {
        let rows: Vec<EventRow> = (0..EVENTS_PER_INSERT as u64)
            .map(|n| {
                let Record::Event(e) = event(n) else {
                    unreachable!()
                };
                let mut e = *e;
                match n % 4 {
                    0 => {
                        e.agent = None;
                        e.exe = None;
                        e.path = None;
                        e.inode = None;
                        e.rule = None;
                    }
                    1 => {
                        e.comm = String::new();
                        e.target = "/tmp/caf\u{e9} \u{1f600}".into();
                        e.lease_id = Some("L1".into());
                        e.decision = "lease-allow".into();
                    }
                    2 => {
                        e.boot_ns = u64::MAX - n;
                        e.cgroup_id = u64::MAX;
                        e.pid = u32::MAX;
                        e.detail = 1 << 63;
                        e.inode = Some((u64::MAX, 0));
                    }
                    _ => e.target = "a\0b".into(),
                }
                e
            })
            .collect();
        let refs: Vec<&EventRow> = rows.iter().collect();
        let dump = |conn: &Connection| -> Vec<Vec<rusqlite::types::Value>> {
            let mut st = conn
                .prepare(&format!(
                    "SELECT id, {EVENT_COLUMNS} FROM events ORDER BY id"
                ))
                .expect("select");
            let n = st.column_count();
            st.query_map([], |r| (0..n).map(|k| r.get(k)).collect())
                .and_then(|rows| rows.collect())
                .expect("rows")
        };
        let mut single = Connection::open_in_memory().expect("memory db");
        migrate(&mut single).expect("schema");
        let tx = single.transaction().expect("tx");
        insert_events(&tx, None, &refs[..1]).expect("one");
        for e in &refs[1..] {
            insert(&tx, &Record::Event(Box::new((*e).clone()))).expect("insert");
        }
        tx.commit().expect("commit");
        let mut grouped = Connection::open_in_memory().expect("memory db");
        migrate(&mut grouped).expect("schema");
        let mut group = EventGroup::prepare(&grouped).expect("prepare");
        let tx = grouped.transaction().expect("tx");
        group.insert(&tx, &refs).expect("group");
        group.insert(&tx, &refs).expect("the same group again");
        tx.commit().expect("commit");
        let (a, b) = (dump(&single), dump(&grouped));
        assert_eq!(a.len(), EVENTS_PER_INSERT);
        assert_eq!(a, b);
        // Prepared on one connection, used on another: refused.
        let tx = single.transaction().expect("tx");
        assert!(group.insert(&tx, &refs).is_err());
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
