//! The lineage database's schema, as numbered migrations. `PRAGMA user_version` holds the
//! number of migrations applied; [`migrate`] applies the missing ones, each in its own
//! transaction, and refuses a database written by a newer governor (it would not know its
//! tables). Every table is meant to be read with plain `sqlite3`: times are integers
//! (`*_ns`: Unix time in nanoseconds, UTC; `boot_ns`: `CLOCK_BOOTTIME` of the boot named by
//! `boot_id`), lists are JSON text.

use rusqlite::Connection;

/// Migration `i` (0-based) takes a database from `user_version` `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: every table the first lineage release writes.
    r#"
CREATE TABLE policies (
    version      TEXT    NOT NULL,           -- Policy.version (sha256 prefix of the file)
    name         TEXT    NOT NULL,
    owner        TEXT    NOT NULL,           -- accountable team/person, from the policy
    source       TEXT    NOT NULL,           -- file the daemon loaded it from
    loaded_ns    INTEGER NOT NULL,
    text         TEXT    NOT NULL,           -- the policy file as loaded
    PRIMARY KEY (version, loaded_ns)
);
CREATE TABLE keys (
    key_id       TEXT    PRIMARY KEY,        -- fingerprint
    operator     TEXT    NOT NULL,           -- name/email bound to the key
    public_key   TEXT    NOT NULL,           -- base64
    first_seen_ns INTEGER NOT NULL
);
CREATE TABLE processes (
    boot_id      TEXT    NOT NULL,
    pid          INTEGER NOT NULL,           -- tgid
    start_ns     INTEGER NOT NULL,           -- boot_ns the process started (pid reuse safe)
    ppid         INTEGER,
    parent_start_ns INTEGER,
    uid          INTEGER,
    cgroup_id    INTEGER,
    agent        TEXT,                       -- NULL: not an agent's process
    exe          TEXT,                       -- after its last exec
    argv         TEXT,                       -- JSON array, after its last exec
    cwd          TEXT,
    exec_ns      INTEGER,                    -- boot_ns of its last exec
    exit_ns      INTEGER,
    exit_code    INTEGER,
    PRIMARY KEY (boot_id, pid, start_ns)
);
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,        -- EVENT_ID of `governor lineage trace`
    boot_id      TEXT    NOT NULL,
    boot_ns      INTEGER NOT NULL,
    ts_ns        INTEGER NOT NULL,
    agent        TEXT,                       -- NULL: an agent id the policy does not name
    cgroup_id    INTEGER NOT NULL,
    pid          INTEGER NOT NULL,           -- thread id
    tgid         INTEGER NOT NULL,           -- process id: processes.pid
    uid          INTEGER NOT NULL,
    gid          INTEGER NOT NULL,
    comm         TEXT    NOT NULL,
    exe          TEXT,
    class        TEXT    NOT NULL,           -- action class (policy class name)
    decision     TEXT    NOT NULL,           -- deny | observe-deny | lease-allow
    target       TEXT    NOT NULL,           -- path, addr:port, pid, or host object
    path         TEXT,                       -- kernel-resolved path of a file target
    inode        INTEGER,
    dev          INTEGER,
    detail       INTEGER,                    -- class-specific (signal, flags, ...)
    rule         TEXT,                       -- policy rule that decided; NULL: none matched
    lease_id     TEXT,                       -- lease that allowed it (lease-allow)
    policy_version TEXT  NOT NULL,
    UNIQUE (boot_id, boot_ns, pid, class)
);
CREATE TABLE leases (
    id           TEXT    PRIMARY KEY,
    agent        TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,           -- JSON [{class, target, object, resource}]
    not_before   INTEGER NOT NULL,           -- Unix seconds
    not_after    INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    ticket       TEXT,
    request_id   TEXT,
    document     TEXT    NOT NULL,           -- the signed lease file as submitted
    policy_version TEXT  NOT NULL
);
CREATE TABLE lease_signatures (
    lease_id     TEXT    NOT NULL REFERENCES leases(id),
    key_id       TEXT    NOT NULL,
    operator     TEXT    NOT NULL,
    role         TEXT    NOT NULL,           -- issuer | approver
    signed_at    INTEGER NOT NULL,           -- Unix seconds
    PRIMARY KEY (lease_id, key_id)
);
CREATE TABLE lease_lifecycle (
    id           INTEGER PRIMARY KEY,
    ts_ns        INTEGER NOT NULL,
    lease_id     TEXT,                       -- NULL for a request not (yet) a lease
    request_id   TEXT,
    state        TEXT    NOT NULL CHECK (state IN ('requested', 'rejected', 'issued',
                     'submitted', 'refused', 'enforced', 'expired', 'revoked', 'dropped')),
    actor        TEXT,                       -- uid, operator or agent that caused it
    detail       TEXT                        -- JSON: reason, error, scope asked for
);
CREATE TABLE halts (
    id           INTEGER PRIMARY KEY,
    ts_ns        INTEGER NOT NULL,
    action       TEXT    NOT NULL CHECK (action IN ('freeze', 'kill', 'resume')),
    agents       TEXT    NOT NULL,           -- JSON array of agent names
    by_uid       INTEGER NOT NULL,
    leases_revoked INTEGER NOT NULL,
    enforce_ns   INTEGER                     -- command to enforcement, measured
);
CREATE TABLE gaps (
    id           INTEGER PRIMARY KEY,
    source       TEXT    NOT NULL,           -- kernel-ring | queue | disk | malformed | downtime
    lost         INTEGER NOT NULL,           -- events lost (0 when unknown)
    from_ns      INTEGER NOT NULL,           -- the loss happened between these two times
    until_ns     INTEGER NOT NULL,
    detail       TEXT    NOT NULL
);
CREATE INDEX events_ts ON events (ts_ns);
CREATE INDEX events_agent_ts ON events (agent, ts_ns);
CREATE INDEX events_decision_ts ON events (decision, ts_ns);
CREATE INDEX events_lease ON events (lease_id) WHERE lease_id IS NOT NULL;
CREATE INDEX events_path ON events (path);
CREATE INDEX lifecycle_lease ON lease_lifecycle (lease_id, ts_ns);
CREATE INDEX processes_pid ON processes (boot_id, pid, start_ns);
"#,
    // 2: the daemon's runs (how to tell a clean stop from a crash, and each boot's clock
    // offset, which dates `processes` rows in Unix time), and children by parent (pruning
    // keeps every ancestor of a process it keeps).
    r#"
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    boot_id      TEXT    NOT NULL,
    offset_ns    INTEGER NOT NULL,           -- Unix ns minus boot ns during this run
    pid          INTEGER NOT NULL,           -- the daemon's
    started_ns   INTEGER NOT NULL,
    last_commit_ns INTEGER,                  -- the writer's last committed transaction
    committed    INTEGER NOT NULL DEFAULT 0, -- records committed by this run
    stopped_ns   INTEGER                     -- NULL: still running, or did not stop cleanly
);
CREATE INDEX processes_parent ON processes (boot_id, ppid, parent_start_ns);
"#,
    // 3: whether the kernel recorded a process's whole argv.
    r#"
ALTER TABLE processes ADD COLUMN argv_truncated INTEGER; -- 1: the last argument may be cut
"#,
    // 4: what `governor lineage trace` walks besides: a request's lifecycle from before its
    // lease existed (no lease id yet).
    r#"
CREATE INDEX lifecycle_request ON lease_lifecycle (request_id) WHERE request_id IS NOT NULL;
"#,
    // 5: processes_pid repeated the primary key's own index (boot_id, pid, start_ns): every
    // process row paid for it twice.
    r#"
DROP INDEX processes_pid;
"#,
    // 6: cheaper event rows, for ingest at flood rates (`cargo xtask bench --group ingest`).
    // - The uniqueness key (what makes re-ingest idempotent) leads with `boot_ns`, which
    //   grows with every event, so each row is appended at the index's right edge; leading
    //   with the 36-byte `boot_id`, shared by every row of a boot, made every insert compare
    //   it at every level of the tree.
    // - `events_decision_ts` becomes `events_allowed`, on the decisions `lineage changes`
    //   lists (lease-allow, observe-deny): a flood of denies no longer pays for it. A
    //   `--decision` filter is served by the agent or time index.
    // SQLite cannot change a table's UNIQUE constraint in place: the table is rebuilt, its
    // rows and ids kept.
    r#"
CREATE TABLE events_v6 (
    id           INTEGER PRIMARY KEY,
    boot_id      TEXT    NOT NULL,
    boot_ns      INTEGER NOT NULL,
    ts_ns        INTEGER NOT NULL,
    agent        TEXT,
    cgroup_id    INTEGER NOT NULL,
    pid          INTEGER NOT NULL,
    tgid         INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    gid          INTEGER NOT NULL,
    comm         TEXT    NOT NULL,
    exe          TEXT,
    class        TEXT    NOT NULL,
    decision     TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    path         TEXT,
    inode        INTEGER,
    dev          INTEGER,
    detail       INTEGER,
    rule         TEXT,
    lease_id     TEXT,
    policy_version TEXT  NOT NULL,
    UNIQUE (boot_ns, pid, class, boot_id)
);
INSERT INTO events_v6 SELECT id, boot_id, boot_ns, ts_ns, agent, cgroup_id, pid, tgid, uid,
    gid, comm, exe, class, decision, target, path, inode, dev, detail, rule, lease_id,
    policy_version FROM events;
DROP TABLE events;
ALTER TABLE events_v6 RENAME TO events;
CREATE INDEX events_ts ON events (ts_ns);
CREATE INDEX events_agent_ts ON events (agent, ts_ns);
CREATE INDEX events_allowed ON events (ts_ns) WHERE decision IN ('lease-allow', 'observe-deny');
CREATE INDEX events_lease ON events (lease_id) WHERE lease_id IS NOT NULL;
CREATE INDEX events_path ON events (path);
"#,
    // 7: each kernel generation's decision ring, so that every decision the kernel emitted
    // is accounted for across daemon crashes: a row or a counted gap (`lineage::reconcile`).
    r#"
CREATE TABLE rings (
    id           INTEGER PRIMARY KEY,
    boot_id      TEXT    NOT NULL,
    ring_id      INTEGER NOT NULL,           -- kernel map id of its GOV_EVENTS (unique per boot)
    generation   INTEGER,                    -- gen-NNNNNN in the pin directory; NULL: unknown
    policy_version TEXT,                     -- the policy it enforced; NULL: unknown
    run          INTEGER,                    -- runs.id of the daemon that loaded it
    committed    INTEGER NOT NULL DEFAULT 0, -- its decisions committed as events rows
    lost         INTEGER NOT NULL DEFAULT 0, -- its decisions counted in gaps (queue, malformed, disk)
    dropped      INTEGER NOT NULL DEFAULT 0, -- its EventsDropped counted in kernel-ring gaps
    emitted      INTEGER,                    -- the kernel's EventsEmitted, as last read
    emitted_final INTEGER NOT NULL DEFAULT 0, -- 1: read after its programs left the kernel
    kernel_dropped INTEGER,                  -- the kernel's EventsDropped, as last read
    reconciled_ns INTEGER,                   -- when a daemon counted what it lacks in gaps
    UNIQUE (boot_id, ring_id)
);
ALTER TABLE gaps ADD COLUMN ring INTEGER;    -- rings.id whose decisions it counts; NULL: none
"#,
    // 8: reversibility (`governor rollback`). A lease's snapshot and its restores are steps of
    // its life (`snapshotted`, `not-snapshotted`, `rolled-back`): SQLite cannot change a
    // table's CHECK in place, so `lease_lifecycle` is rebuilt the documented way (new table,
    // rows copied with their ids, old dropped, new renamed, indexes made again). And one
    // `rollbacks` row per restore: who, when (wall and boot clocks), what, how long.
    r#"
CREATE TABLE lease_lifecycle_v8 (
    id           INTEGER PRIMARY KEY,
    ts_ns        INTEGER NOT NULL,
    lease_id     TEXT,
    request_id   TEXT,
    state        TEXT    NOT NULL CHECK (state IN ('requested', 'rejected', 'issued',
                     'submitted', 'refused', 'snapshotted', 'not-snapshotted', 'enforced',
                     'expired', 'revoked', 'dropped', 'rolled-back')),
    actor        TEXT,
    detail       TEXT
);
INSERT INTO lease_lifecycle_v8 SELECT id, ts_ns, lease_id, request_id, state, actor, detail
    FROM lease_lifecycle;
DROP TABLE lease_lifecycle;
ALTER TABLE lease_lifecycle_v8 RENAME TO lease_lifecycle;
CREATE INDEX lifecycle_lease ON lease_lifecycle (lease_id, ts_ns);
CREATE INDEX lifecycle_request ON lease_lifecycle (request_id) WHERE request_id IS NOT NULL;
CREATE TABLE rollbacks (
    id           INTEGER PRIMARY KEY,
    lease_id     TEXT    NOT NULL,           -- the lease whose snapshot was restored
    agent        TEXT    NOT NULL,           -- the lease's agent
    actor        TEXT    NOT NULL,           -- uid:N that ran it
    trigger      TEXT    NOT NULL CHECK (trigger IN ('rollback', 'halt')),
    incident_ns  INTEGER,                    -- halt: the halt's time; NULL: the lease's first
                                             -- lease-allowed destructive event (events)
    boot_id      TEXT    NOT NULL,           -- the boot the restore ran in
    started_boot_ns INTEGER NOT NULL,        -- CLOCK_BOOTTIME of boot_id
    ended_boot_ns INTEGER NOT NULL,
    started_ns   INTEGER NOT NULL,           -- Unix ns
    ended_ns     INTEGER NOT NULL,
    restored     INTEGER NOT NULL,           -- paths put back (content and/or metadata)
    recreated    INTEGER NOT NULL,           -- paths deleted or renamed away, back again
    removed      INTEGER NOT NULL,           -- paths the agent created, removed
    unchanged    INTEGER NOT NULL,
    conflicts    INTEGER NOT NULL,           -- paths changed outside the lease
    forced       INTEGER NOT NULL CHECK (forced IN (0, 1)), -- 1: conflicts overwritten
    outcome      TEXT    NOT NULL CHECK (outcome IN ('restored', 'partial')),
    detail       TEXT    NOT NULL            -- JSON {restored, recreated, removed, conflicts,
                                             -- truncated}: paths, at most 100 per list
);
CREATE INDEX rollbacks_lease ON rollbacks (lease_id, ended_ns);
CREATE INDEX rollbacks_agent ON rollbacks (agent, ended_ns);
"#,
];

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the lineage database is at schema version {found}, newer than this governor knows \
         ({known}); use the governor release that wrote it, or move the database aside"
    )]
    TooNew { found: i64, known: usize },
    #[error("applying lineage schema migration {number}: {source}")]
    Migration {
        number: usize,
        source: rusqlite::Error,
    },
    #[error("reading the lineage schema version: {0}")]
    Version(rusqlite::Error),
}

/// Brings `conn`'s schema up to date; returns how many migrations it applied.
pub fn migrate(conn: &mut Connection) -> Result<usize, SchemaError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(SchemaError::Version)?;
    let applied = usize::try_from(found).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(SchemaError::TooNew {
            found,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let number = i + 1;
        let err = |source| SchemaError::Migration { number, source };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", number as i64)
            .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(MIGRATIONS.len() - applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        assert_eq!(migrate(&mut conn).expect("migrates"), MIGRATIONS.len());
        assert_eq!(migrate(&mut conn).expect("idempotent"), 0);
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .expect("bump");
        let e = migrate(&mut conn).unwrap_err();
        assert!(matches!(e, SchemaError::TooNew { .. }), "{e}");
        assert!(e.to_string().contains("move the database aside"), "{e}");
    }

    /// Migration 6 rebuilds `events`: rows and their ids (EVENT_IDs a responder may have
    /// noted) survive, and re-ingest is still refused by the new uniqueness key.
    #[test]
    fn rebuilding_events_keeps_rows_and_ids() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        let tx = conn.transaction().expect("tx");
        for sql in &MIGRATIONS[..5] {
            tx.execute_batch(sql).expect("migration");
        }
        tx.pragma_update(None, "user_version", 5).expect("version");
        tx.commit().expect("commit");
        let row = |id: i64, boot_ns: i64| {
            format!(
                "INSERT INTO events (id, boot_id, boot_ns, ts_ns, agent, cgroup_id, pid, tgid, \
                 uid, gid, comm, class, decision, target, policy_version) VALUES ({id}, 'b', \
                 {boot_ns}, {boot_ns}, 'a', 1, 7, 7, 0, 0, 'rm', 'delete', 'deny', '/x', 'v')"
            )
        };
        conn.execute_batch(&(row(41, 100) + ";" + &row(97, 200)))
            .expect("v5 rows");
        assert_eq!(migrate(&mut conn).expect("migrates"), MIGRATIONS.len() - 5);
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM events ORDER BY id")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("ids");
        assert_eq!(ids, [41, 97]);
        let again = row(98, 200).replace("INSERT", "INSERT OR IGNORE");
        assert_eq!(conn.execute(&again, []).expect("insert"), 0, "a duplicate");
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' \
                 AND name IN ('events_ts', 'events_agent_ts', 'events_allowed', 'events_lease', \
                 'events_path')",
                [],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(indexes, 5);
    }

    /// Migration 8 rebuilds `lease_lifecycle` for the reversibility states: every row keeps
    /// its id and columns, the new states are taken, an unknown state is still refused, and
    /// both indexes are back.
    #[test]
    fn rebuilding_lifecycle_keeps_rows_and_takes_the_new_states() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        let tx = conn.transaction().expect("tx");
        for sql in &MIGRATIONS[..7] {
            tx.execute_batch(sql).expect("migration");
        }
        tx.pragma_update(None, "user_version", 7).expect("version");
        tx.commit().expect("commit");
        conn.execute_batch(
            "INSERT INTO lease_lifecycle (id, ts_ns, lease_id, request_id, state, actor, \
             detail) VALUES (7, 100, 'L', 'R', 'enforced', 'uid:0', '{\"how\":\"enforced\"}'), \
             (19, 200, NULL, 'R', 'requested', 'agent:a', NULL)",
        )
        .expect("v7 rows");
        assert_eq!(migrate(&mut conn).expect("migrates"), MIGRATIONS.len() - 7);
        let rows: Vec<String> = conn
            .prepare(
                "SELECT id || ' ' || ts_ns || ' ' || coalesce(lease_id, '-') || ' ' || \
                 state || ' ' || coalesce(detail, '-') FROM lease_lifecycle ORDER BY id",
            )
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("rows");
        assert_eq!(
            rows,
            [
                r#"7 100 L enforced {"how":"enforced"}"#,
                "19 200 - requested -"
            ]
        );
        for state in ["snapshotted", "not-snapshotted", "rolled-back"] {
            conn.execute(
                "INSERT INTO lease_lifecycle (ts_ns, lease_id, state) VALUES (300, 'L', ?1)",
                [state],
            )
            .expect(state);
        }
        let e = conn
            .execute(
                "INSERT INTO lease_lifecycle (ts_ns, state) VALUES (1, 'exploded')",
                [],
            )
            .expect_err("not a state");
        assert!(e.to_string().contains("CHECK"), "{e}");
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = \
                 'lease_lifecycle' AND name IN ('lifecycle_lease', 'lifecycle_request')",
                [],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(indexes, 2);
        let next: i64 = conn
            .query_row("SELECT max(id) FROM lease_lifecycle", [], |r| r.get(0))
            .expect("ids");
        assert_eq!(next, 22, "new rows follow the kept ids");
    }
}
