//! Kernel decisions (`events`): the row, the one list of its columns, the values that both
//! binders bind (rusqlite's here, the in-place one of [`super::event_group`]), and the
//! multi-row inserts.

use rusqlite::Transaction;

use super::{event_group::EventGroup, i, rings::ring_add, RingKey};

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

#[cfg(test)]
impl EventRow {
    /// Tests: a deny of `unlink` on `/x` by `rm` (pid 1, uid 0, agent `a`) in boot `b` at 1 ns,
    /// with no exe, inode, rule, lease or ring; a test sets what it needs with
    /// `..EventRow::sample()`.
    pub(crate) fn sample() -> EventRow {
        EventRow {
            boot_id: "b".into(),
            boot_ns: 1,
            ts_ns: 1,
            agent: Some("a".into()),
            cgroup_id: 1,
            pid: 1,
            tgid: 1,
            uid: 0,
            gid: 0,
            comm: "rm".into(),
            exe: None,
            class: "unlink".into(),
            decision: "deny".into(),
            target: "/x".into(),
            path: Some("/x".into()),
            inode: None,
            detail: 0,
            rule: None,
            lease_id: None,
            policy_version: "v".into(),
            ring: 0,
        }
    }
}

/// One value of an event's column, as both binders bind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value<'a> {
    Int(i64),
    Text(&'a str),
    Null,
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Value<'a> {
        v.map_or(Value::Null, Value::Text)
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::Null, Value::Int)
    }
}

/// Writes the `events` columns once: each column's name beside the value of an event that
/// goes in it. Defines [`EVENT_COLUMNS`] (the names, in order) and [`event_values`] (an
/// event's values, in the same order), from which the `INSERT`s are built and both binders
/// bind. The schema's `CREATE TABLE` and the query layer's `SELECT` are written apart (the
/// schema is a history of migrations); a test proves they agree with this list.
macro_rules! event_columns {
    ($e:ident => $($name:ident: $value:expr),+ $(,)?) => {
        /// The `events` table's columns but `id`, in the order [`event_values`] gives them.
        pub(super) const EVENT_COLUMNS: &[&str] = &[$(stringify!($name)),+];

        /// `e`'s value of each of [`EVENT_COLUMNS`], in that order.
        pub(super) fn event_values($e: &EventRow) -> [Value<'_>; EVENT_PARAMS] {
            [$($value),+]
        }
    };
}

event_columns! { e =>
    boot_id: Value::Text(&e.boot_id),
    boot_ns: Value::Int(i(e.boot_ns)),
    ts_ns: Value::Int(e.ts_ns),
    agent: e.agent.as_deref().into(),
    cgroup_id: Value::Int(i(e.cgroup_id)),
    pid: Value::Int(i64::from(e.pid)),
    tgid: Value::Int(i64::from(e.tgid)),
    uid: Value::Int(i64::from(e.uid)),
    gid: Value::Int(i64::from(e.gid)),
    comm: Value::Text(&e.comm),
    exe: e.exe.as_deref().into(),
    class: Value::Text(&e.class),
    decision: Value::Text(&e.decision),
    target: Value::Text(&e.target),
    path: e.path.as_deref().into(),
    inode: e.inode.map(|(_, ino)| i(ino)).into(),
    dev: e.inode.map(|(dev, _)| i(dev)).into(),
    detail: Value::Int(i(e.detail)),
    rule: e.rule.as_deref().into(),
    lease_id: e.lease_id.as_deref().into(),
    policy_version: Value::Text(&e.policy_version),
}

/// Parameters per event.
pub(super) const EVENT_PARAMS: usize = EVENT_COLUMNS.len();
/// Events per multi-row `INSERT` ([`insert_events`]): SQLite sets up a statement's cursors
/// once per execution, so at flood rates a row costs less in a group (64: 2.4% fewer
/// instructions per row than 16; a batch of 4,096 is 64 whole groups; 1,344 parameters, far
/// below SQLite's 32,766).
pub const EVENTS_PER_INSERT: usize = 64;

/// `INSERT OR IGNORE` of `rows` events, `?` numbered from 1.
fn events_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; EVENT_PARAMS].join(", "));
    format!(
        "INSERT OR IGNORE INTO events ({}) VALUES {}",
        EVENT_COLUMNS.join(", "),
        vec![one; rows].join(", ")
    )
}

/// The SQL of a full group and of one event, built once.
pub(super) fn event_statements() -> &'static (String, String) {
    static SQL: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    SQL.get_or_init(|| (events_sql(EVENTS_PER_INSERT), events_sql(1)))
}

/// Binds `e`'s columns at parameters `first..first + EVENT_PARAMS` (1-based).
fn bind_event(
    st: &mut rusqlite::CachedStatement<'_>,
    first: usize,
    e: &EventRow,
) -> rusqlite::Result<()> {
    for (k, v) in event_values(e).into_iter().enumerate() {
        match v {
            Value::Int(n) => st.raw_bind_parameter(first + k, n)?,
            Value::Text(t) => st.raw_bind_parameter(first + k, t)?,
            Value::Null => st.raw_bind_parameter(first + k, rusqlite::types::Null)?,
        }
    }
    Ok(())
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
