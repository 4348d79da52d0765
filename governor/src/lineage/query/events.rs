//! Events (kernel decisions) as typed rows: the latest ones matching a [`Filter`]
//! ([`latest`]), all of them in time order, streamed ([`each`], for export), and one by id
//! ([`get`]).

use rusqlite::{params_from_iter, Connection, Row};
use serde::Serialize;

use super::{format_ns, sql, Filter, QueryError};

/// One `events` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: i64,
    pub ts_ns: i64,
    /// `ts_ns` as RFC 3339.
    pub time: String,
    pub boot_id: String,
    pub boot_ns: i64,
    pub agent: Option<String>,
    pub cgroup_id: i64,
    pub pid: i64,
    pub tgid: i64,
    pub uid: i64,
    pub gid: i64,
    pub comm: String,
    pub exe: Option<String>,
    pub class: String,
    pub decision: String,
    pub target: String,
    pub path: Option<String>,
    pub inode: Option<i64>,
    pub dev: Option<i64>,
    pub detail: Option<i64>,
    pub rule: Option<String>,
    pub lease_id: Option<String>,
    pub policy_version: String,
}

/// The columns [`Event::from_row`] reads, on alias `e`.
pub(crate) const COLUMNS: &str = "e.id, e.ts_ns, e.boot_id, e.boot_ns, e.agent, e.cgroup_id, \
    e.pid, e.tgid, e.uid, e.gid, e.comm, e.exe, e.class, e.decision, e.target, e.path, \
    e.inode, e.dev, e.detail, e.rule, e.lease_id, e.policy_version";

impl Event {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
        let ts_ns: i64 = r.get(1)?;
        Ok(Event {
            id: r.get(0)?,
            ts_ns,
            time: format_ns(ts_ns),
            boot_id: r.get(2)?,
            boot_ns: r.get(3)?,
            agent: r.get(4)?,
            cgroup_id: r.get(5)?,
            pid: r.get(6)?,
            tgid: r.get(7)?,
            uid: r.get(8)?,
            gid: r.get(9)?,
            comm: r.get(10)?,
            exe: r.get(11)?,
            class: r.get(12)?,
            decision: r.get(13)?,
            target: r.get(14)?,
            path: r.get(15)?,
            inode: r.get(16)?,
            dev: r.get(17)?,
            detail: r.get(18)?,
            rule: r.get(19)?,
            lease_id: r.get(20)?,
            policy_version: r.get(21)?,
        })
    }
}

/// The event with this id.
pub fn get(conn: &Connection, id: i64) -> Result<Event, QueryError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM events e WHERE e.id = ?1"))
        .and_then(|mut st| st.query_row([id], Event::from_row))
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => QueryError::NoEvent(id),
            e => sql("the event")(e),
        })
}

/// The `limit` latest events matching `filter`, oldest first.
pub fn latest(conn: &Connection, filter: &Filter, limit: u64) -> Result<Vec<Event>, QueryError> {
    let (clause, mut params) = filter.where_clause();
    params.push(rusqlite::types::Value::Integer(
        i64::try_from(limit).unwrap_or(i64::MAX),
    ));
    let q = format!(
        "SELECT {COLUMNS} FROM events e {clause} ORDER BY e.ts_ns DESC, e.id DESC LIMIT ?{}",
        params.len()
    );
    let mut st = conn.prepare(&q).map_err(sql("events"))?;
    let mut rows = st
        .query_map(params_from_iter(params), Event::from_row)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(sql("events"))?;
    rows.reverse();
    Ok(rows)
}

/// Calls `f` on every event matching `filter`, in time order, without holding them all;
/// stops at `limit` if given, or at `f`'s first error. Returns how many it passed on.
pub fn each<E: From<QueryError>>(
    conn: &Connection,
    filter: &Filter,
    limit: Option<u64>,
    mut f: impl FnMut(Event) -> Result<(), E>,
) -> Result<u64, E> {
    let (clause, mut params) = filter.where_clause();
    let limit_sql = match limit {
        Some(n) => {
            params.push(rusqlite::types::Value::Integer(
                i64::try_from(n).unwrap_or(i64::MAX),
            ));
            format!("LIMIT ?{}", params.len())
        }
        None => String::new(),
    };
    let q = format!("SELECT {COLUMNS} FROM events e {clause} ORDER BY e.ts_ns, e.id {limit_sql}");
    let mut st = conn.prepare(&q).map_err(sql("events"))?;
    let mut rows = st.query(params_from_iter(params)).map_err(sql("events"))?;
    let mut n = 0;
    while let Some(r) = rows.next().map_err(sql("events"))? {
        f(Event::from_row(r).map_err(sql("events"))?)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture::{self, T0};

    fn ids(events: &[Event]) -> Vec<i64> {
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn every_filter_narrows() {
        let conn = fixture::db();
        let all = latest(&conn, &Filter::default(), 1000).expect("all");
        assert_eq!(all.len(), fixture::EVENTS);
        assert!(
            all.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
            "oldest first"
        );

        let f = |filter: Filter| latest(&conn, &filter, 1000).expect("query");
        let by_agent = f(Filter {
            agent: Some("codex".into()),
            ..Filter::default()
        });
        assert_eq!(ids(&by_agent), [fixture::EV_CODEX]);
        let denies = f(Filter {
            decision: Some("deny".into()),
            ..Filter::default()
        });
        assert!(denies.iter().all(|e| e.decision == "deny"));
        assert_eq!(ids(&denies), [fixture::EV_DENY, fixture::EV_CODEX]);
        let class = f(Filter {
            class: Some("rename".into()),
            ..Filter::default()
        });
        assert_eq!(ids(&class), [fixture::EV_OBSERVE]);
        let since = f(Filter {
            since_ns: Some(T0 + 30 * fixture::SEC),
            ..Filter::default()
        });
        assert_eq!(since.first().map(|e| e.ts_ns), Some(T0 + 30 * fixture::SEC));
        let until = f(Filter {
            until_ns: Some(T0 + 30 * fixture::SEC),
            ..Filter::default()
        });
        assert_eq!(since.len() + until.len(), fixture::EVENTS);
        // A path filter takes the path and what lies below it, not a mere prefix.
        let under = f(Filter {
            path: Some("/srv/app".into()),
            ..Filter::default()
        });
        assert_eq!(
            ids(&under),
            [
                fixture::EV_LEASED_1,
                fixture::EV_LEASED_2,
                fixture::EV_OBSERVE
            ]
        );
        let exact = f(Filter {
            path: Some("/srv/app/old.log".into()),
            ..Filter::default()
        });
        assert_eq!(ids(&exact), [fixture::EV_LEASED_1]);
        assert!(f(Filter {
            path: Some("/srv/ap".into()),
            ..Filter::default()
        })
        .is_empty());
        let both = f(Filter {
            agent: Some("claude".into()),
            decision: Some("lease-allow".into()),
            ..Filter::default()
        });
        assert_eq!(
            ids(&both),
            [fixture::EV_LEASED_1, fixture::EV_LEASED_2, fixture::EV_L2]
        );
    }

    #[test]
    fn limit_keeps_the_latest() {
        let conn = fixture::db();
        let two = latest(&conn, &Filter::default(), 2).expect("two");
        let all = latest(&conn, &Filter::default(), 1000).expect("all");
        assert_eq!(two, all[all.len() - 2..]);
    }

    #[test]
    fn each_streams_in_time_order_and_get_finds_one() {
        let conn = fixture::db();
        let mut seen = Vec::new();
        let n = each::<QueryError>(&conn, &Filter::default(), None, |e| {
            seen.push(e.id);
            Ok(())
        })
        .expect("each");
        assert_eq!(n as usize, fixture::EVENTS);
        let n = each::<QueryError>(&conn, &Filter::default(), Some(3), |_| Ok(())).expect("3");
        assert_eq!(n, 3);
        let e = get(&conn, fixture::EV_DENY).expect("get");
        assert_eq!(e.comm, "rm");
        assert!(matches!(
            get(&conn, 999_999),
            Err(QueryError::NoEvent(999_999))
        ));
    }
}
