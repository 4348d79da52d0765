//! The writes' tests: a group writes what single rows write; events are idempotent and
//! process records merge.

use rusqlite::Connection;

use super::*;
use crate::lineage::schema::migrate;

fn event(boot_ns: u64) -> Record {
    Record::Event(Box::new(EventRow {
        boot_ns,
        ts_ns: 1_700_000_000_000_000_000,
        cgroup_id: 9,
        pid: 10,
        tgid: 10,
        exe: Some("/usr/bin/rm".into()),
        target: "/etc/x".into(),
        path: Some("/etc/x".into()),
        inode: Some((1, 2)),
        rule: Some("/etc".into()),
        ..EventRow::sample()
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
                "SELECT id, {} FROM events ORDER BY id",
                events::EVENT_COLUMNS.join(", ")
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

/// The `events` columns are written once for writing ([`events::EVENT_COLUMNS`], each beside
/// the value both binders bind); the schema's migrations and the query layer name them
/// apart. All agree: a fresh database's `events` table has `id` and exactly those columns, in
/// that order; the query layer selects exactly the table's columns; and an event with a
/// distinct value in every field, written through either binder, reads back through the
/// query layer with each value under its own name.
#[test]
fn the_events_columns_agree_in_schema_binders_and_queries() {
    let mut conn = Connection::open_in_memory().expect("memory db");
    migrate(&mut conn).expect("schema");
    let table: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('events') ORDER BY cid")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .expect("table_info");
    let written: Vec<&str> = ["id"]
        .into_iter()
        .chain(events::EVENT_COLUMNS.iter().copied())
        .collect();
    assert_eq!(table, written, "the schema's events table vs EVENT_COLUMNS");
    let mut selected: Vec<&str> = crate::lineage::query::events::COLUMNS
        .split(',')
        .map(|c| c.trim().trim_start_matches("e."))
        .collect();
    let mut columns = written.clone();
    selected.sort_unstable();
    columns.sort_unstable();
    assert_eq!(
        selected, columns,
        "the query layer's events columns vs the table's"
    );

    let one = EventRow {
        boot_id: "boot".into(),
        boot_ns: 2,
        ts_ns: 3,
        agent: Some("agent".into()),
        cgroup_id: 5,
        pid: 6,
        tgid: 7,
        uid: 8,
        gid: 9,
        comm: "comm".into(),
        exe: Some("exe".into()),
        class: "class".into(),
        decision: "decision".into(),
        target: "target".into(),
        path: Some("path".into()),
        inode: Some((17, 16)),
        detail: 18,
        rule: Some("rule".into()),
        lease_id: Some("lease".into()),
        policy_version: "version".into(),
        ring: 0,
    };
    // Row 1 through rusqlite's binder, rows 2.. through the in-place group.
    let group: Vec<EventRow> = (0..EVENTS_PER_INSERT as u64)
        .map(|n| EventRow {
            boot_ns: 100 + n,
            ..one.clone()
        })
        .collect();
    let mut prepared = EventGroup::prepare(&conn).expect("prepare");
    let tx = conn.transaction().expect("tx");
    insert(&tx, &Record::Event(Box::new(one.clone()))).expect("one");
    prepared
        .insert(&tx, &group.iter().collect::<Vec<_>>())
        .expect("group");
    tx.commit().expect("commit");
    drop(prepared);
    for (id, e) in (1..).zip(std::iter::once(&one).chain(&group)) {
        let got = crate::lineage::query::events::get(&conn, id).expect("read back");
        let mut got = serde_json::to_value(got).expect("json");
        let fields = got.as_object_mut().expect("an object");
        assert_eq!(fields.remove("id"), Some(id.into()));
        fields.remove("time");
        let (dev, inode) = e.inode.expect("an inode");
        let want = serde_json::json!({
            "boot_id": e.boot_id, "boot_ns": e.boot_ns, "ts_ns": e.ts_ns, "agent": e.agent,
            "cgroup_id": e.cgroup_id, "pid": e.pid, "tgid": e.tgid, "uid": e.uid, "gid": e.gid,
            "comm": e.comm, "exe": e.exe, "class": e.class, "decision": e.decision,
            "target": e.target, "path": e.path, "inode": inode, "dev": dev,
            "detail": e.detail, "rule": e.rule, "lease_id": e.lease_id,
            "policy_version": e.policy_version,
        });
        assert_eq!(got, want, "event {id} read back through the query layer");
    }
}
