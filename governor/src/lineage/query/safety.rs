//! The two safety figures, per agent and overall (`lineage stats`, `governor status`):
//! - **blocked before execution**: unsafe actions stopped before they ran: the kernel's
//!   denies (`events`, `deny`: an action refused because its lease had expired is one of
//!   them, the kernel does not tell it apart), leases refused because they had expired
//!   (`lease_lifecycle`, `refused` with `detail.expired`), and halts (`halts`, freeze or
//!   kill); allowed and observe-mode decisions are not counted;
//! - **time to recovery**: for every restore (`rollbacks`), from the incident's start (the
//!   first lease-allowed destructive operation under its lease, or the halt that set it off)
//!   to the end of the restore, with its median and worst. A restore of a lease under which
//!   no destructive operation is on record has no incident to time and is not counted. On
//!   one boot the boot clock measures it (immune to the wall clock being set), across a
//!   reboot the wall clock.

use std::collections::BTreeMap;

use rusqlite::{params_from_iter, types::Value, Connection};

use super::{sql, Filter, QueryError};
use crate::lineage::authority::SNAPSHOT_CLASSES;

pub use crate::api::safety::{Blocked, Recovery, Safety};

impl Recovery {
    /// The distribution of `times_ms` (any order).
    pub fn of(mut times_ms: Vec<u64>) -> Recovery {
        times_ms.sort_unstable();
        let n = times_ms.len();
        let median_ms = match n {
            0 => None,
            _ if n % 2 == 1 => Some(times_ms[n / 2]),
            _ => Some((times_ms[n / 2 - 1] + times_ms[n / 2]) / 2),
        };
        Recovery {
            count: n as u64,
            median_ms,
            worst_ms: times_ms.last().copied(),
        }
    }
}

impl Blocked {
    fn total(&self) -> u64 {
        self.denied + self.expired_leases_refused + self.halts
    }
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Appends the window's conditions on column `ts` and agent expression `agent`.
fn window(
    filter: &Filter,
    ts: &str,
    agent: &str,
    conds: &mut Vec<String>,
    params: &mut Vec<Value>,
) {
    if let Some(ns) = filter.since_ns {
        params.push(Value::Integer(ns));
        conds.push(format!("{ts} >= ?{}", params.len()));
    }
    if let Some(ns) = filter.until_ns {
        params.push(Value::Integer(ns));
        conds.push(format!("{ts} < ?{}", params.len()));
    }
    if let Some(a) = &filter.agent {
        params.push(Value::Text(a.clone()));
        conds.push(format!("{agent} = ?{}", params.len()));
    }
}

/// `(agent, count)` rows of `q` (its `{}` replaced by the conditions).
fn counts(
    conn: &Connection,
    what: &'static str,
    q: &str,
    conds: Vec<String>,
    params: Vec<Value>,
) -> Result<Vec<(Option<String>, u64)>, QueryError> {
    let q = q.replace("{}", &conds.join(" AND "));
    let mut st = conn.prepare(&q).map_err(sql(what))?;
    st.query_map(params_from_iter(params), |r| {
        Ok((r.get::<_, Option<String>>(0)?, u(r.get(1)?)))
    })
    .and_then(|r| r.collect::<Result<Vec<_>, _>>())
    .map_err(sql(what))
}

/// One restore's time to recovery, from its row and its lease's first destructive event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Timed {
    agent: String,
    /// The halt that set it off (Unix ns).
    incident_ns: Option<i64>,
    boot_id: String,
    ended_boot_ns: i64,
    ended_ns: i64,
    /// The first lease-allowed destructive event: boot, boot ns, Unix ns.
    first: Option<(String, i64, i64)>,
}

impl Timed {
    /// ns from the incident to the end of the restore; `None`: no incident on record.
    fn recovery_ns(&self) -> Option<i64> {
        let ns = match (&self.incident_ns, &self.first) {
            (Some(halt), _) => self.ended_ns - halt,
            (None, Some((boot, boot_ns, _))) if *boot == self.boot_id => {
                self.ended_boot_ns - boot_ns
            }
            (None, Some((_, _, ts_ns))) => self.ended_ns - ts_ns,
            (None, None) => return None,
        };
        Some(ns.max(0))
    }
}

/// The safety figures over `filter`'s agent and time window (its decision, class and path
/// are ignored). A restore is in the window by its end.
pub fn safety(conn: &Connection, filter: &Filter) -> Result<Safety, QueryError> {
    let mut s = Safety::default();
    let mut add = |agent: Option<String>, f: &dyn Fn(&mut Blocked), overall: bool| {
        if overall {
            f(&mut s.blocked);
        }
        if let Some(a) = agent {
            f(&mut s.agents.entry(a).or_default().blocked);
        }
    };

    let (mut c, mut p) = (vec!["e.decision = 'deny'".to_owned()], Vec::new());
    window(filter, "e.ts_ns", "e.agent", &mut c, &mut p);
    let q = "SELECT e.agent, count(*) FROM events e WHERE {} GROUP BY e.agent";
    for (agent, n) in counts(conn, "denies", q, c, p)? {
        add(agent, &|b| b.denied += n, true);
    }

    let (mut c, mut p) = (
        vec![
            "c.state = 'refused'".to_owned(),
            "json_extract(c.detail, '$.expired') = 1".to_owned(),
        ],
        Vec::new(),
    );
    window(
        filter,
        "c.ts_ns",
        "json_extract(c.detail, '$.agent')",
        &mut c,
        &mut p,
    );
    let q = "SELECT json_extract(c.detail, '$.agent'), count(*) FROM lease_lifecycle c \
             WHERE {} GROUP BY 1";
    for (agent, n) in counts(conn, "expired leases refused", q, c, p)? {
        add(agent, &|b| b.expired_leases_refused += n, true);
    }

    // Halts: once overall (a row; within one agent, the halts that named it), once per
    // agent it names.
    let when = Filter {
        agent: None,
        ..filter.clone()
    };
    let (mut c, mut p) = (
        vec!["h.action IN ('freeze', 'kill')".to_owned()],
        Vec::new(),
    );
    window(&when, "h.ts_ns", "", &mut c, &mut p);
    let (mut oc, mut op, mut ac, mut ap) = (c.clone(), p.clone(), c, p);
    if let Some(a) = &filter.agent {
        op.push(Value::Text(a.clone()));
        oc.push(format!(
            "EXISTS (SELECT 1 FROM json_each(h.agents) j WHERE j.value = ?{})",
            op.len()
        ));
        ap.push(Value::Text(a.clone()));
        ac.push(format!("a.value = ?{}", ap.len()));
    }
    let q = "SELECT NULL, count(*) FROM halts h WHERE {}";
    for (_, n) in counts(conn, "halts", q, oc, op)? {
        add(None, &|b| b.halts += n, true);
    }
    let q = "SELECT a.value, count(*) FROM halts h, json_each(h.agents) a WHERE {} \
             GROUP BY a.value";
    for (agent, n) in counts(conn, "halts per agent", q, ac, ap)? {
        add(agent, &|b| b.halts += n, false);
    }

    let mut times: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut all = Vec::new();
    for t in timed(conn, filter)? {
        if let Some(ns) = t.recovery_ns() {
            let ms = u(ns) / 1_000_000;
            all.push(ms);
            times.entry(t.agent).or_default().push(ms);
        }
    }
    s.time_to_recovery = Recovery::of(all);
    for (agent, t) in times {
        s.agents.entry(agent).or_default().time_to_recovery = Recovery::of(t);
    }
    s.blocked_before_execution = s.blocked.total();
    for a in s.agents.values_mut() {
        a.blocked_before_execution = a.blocked.total();
    }
    Ok(s)
}

/// Every restore in the window, with its lease's first lease-allowed destructive event (by
/// the lease index).
fn timed(conn: &Connection, filter: &Filter) -> Result<Vec<Timed>, QueryError> {
    let classes: Vec<String> = SNAPSHOT_CLASSES
        .iter()
        .map(|c| format!("'{}'", c.name()))
        .collect();
    let (mut c, mut p) = (vec!["1".to_owned()], Vec::new());
    window(filter, "r.ended_ns", "r.agent", &mut c, &mut p);
    let q = format!(
        "SELECT r.agent, r.incident_ns, r.boot_id, r.ended_boot_ns, r.ended_ns, e.boot_id, \
         e.boot_ns, e.ts_ns FROM rollbacks r LEFT JOIN events e ON e.id = \
         (SELECT f.id FROM events f WHERE f.lease_id = r.lease_id AND f.decision = \
          'lease-allow' AND f.class IN ({}) ORDER BY f.ts_ns, f.id LIMIT 1) \
         WHERE {} ORDER BY r.id",
        classes.join(", "),
        c.join(" AND ")
    );
    let mut st = conn.prepare(&q).map_err(sql("rollbacks"))?;
    st.query_map(params_from_iter(p), |r| {
        let first = match r.get::<_, Option<String>>(5)? {
            Some(boot) => Some((boot, r.get(6)?, r.get(7)?)),
            None => None,
        };
        Ok(Timed {
            agent: r.get(0)?,
            incident_ns: r.get(1)?,
            boot_id: r.get(2)?,
            ended_boot_ns: r.get(3)?,
            ended_ns: r.get(4)?,
            first,
        })
    })
    .and_then(|r| r.collect::<Result<Vec<_>, _>>())
    .map_err(sql("rollbacks"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture::{self, SEC, T0};

    /// Denies, the expired lease refused and freezes/kills count; lease-allowed and
    /// observe-mode decisions, a refusal for another reason and the resume do not.
    #[test]
    fn blocked_counts_denies_expiry_refusals_and_halts_only() {
        let conn = fixture::db();
        let s = safety(&conn, &Filter::default()).expect("safety");
        assert_eq!(
            s.blocked,
            Blocked {
                denied: 2,
                expired_leases_refused: 1,
                halts: 2,
            }
        );
        assert_eq!(s.blocked_before_execution, 5);
        let claude = &s.agents["claude"];
        assert_eq!(
            claude.blocked,
            Blocked {
                denied: 1,
                expired_leases_refused: 0,
                halts: 2,
            }
        );
        assert_eq!(claude.blocked_before_execution, 3);
        let codex = &s.agents["codex"];
        assert_eq!(codex.blocked_before_execution, 3, "{codex:?}");
        assert_eq!(codex.blocked.expired_leases_refused, 1);
    }

    /// L2 (40 s from EV_L2, boot clock), L4 (3 s from the kill), L5 (1 s from the freeze);
    /// L5's second restore has no incident on record and is not timed.
    #[test]
    fn time_to_recovery_median_and_worst() {
        let conn = fixture::db();
        let s = safety(&conn, &Filter::default()).expect("safety");
        assert_eq!(
            s.time_to_recovery,
            Recovery {
                count: 3,
                median_ms: Some(3_000),
                worst_ms: Some(40_000),
            }
        );
        assert_eq!(
            s.agents["claude"].time_to_recovery,
            Recovery {
                count: 2,
                median_ms: Some(20_500),
                worst_ms: Some(40_000),
            }
        );
        assert_eq!(s.agents["codex"].time_to_recovery.count, 1);
    }

    #[test]
    fn window_and_agent_narrow_it() {
        let conn = fixture::db();
        let f = Filter {
            agent: Some("codex".into()),
            since_ns: Some(T0 + 45 * SEC),
            ..Filter::default()
        };
        let s = safety(&conn, &f).expect("safety");
        // EV_CODEX (50 s) and the kill (70 s); the expired lease was refused at 20 s.
        assert_eq!(
            s.blocked,
            Blocked {
                denied: 1,
                expired_leases_refused: 0,
                halts: 1,
            }
        );
        assert_eq!(s.agents.keys().collect::<Vec<_>>(), ["codex"]);
        assert_eq!(s.time_to_recovery.worst_ms, Some(3_000));
        let f = Filter {
            until_ns: Some(T0),
            ..Filter::default()
        };
        let s = safety(&conn, &f).expect("safety");
        assert_eq!(s, Safety::default());
    }

    /// Across a reboot the wall clock times it; on one boot the boot clock (a wall clock
    /// set back meanwhile does not shorten it).
    #[test]
    fn recovery_across_a_reboot_and_a_clock_step() {
        let t = Timed {
            agent: "a".into(),
            incident_ns: None,
            boot_id: "b2".into(),
            ended_boot_ns: 5 * SEC,
            ended_ns: T0 + 100 * SEC,
            first: Some(("b1".into(), 900 * SEC, T0 + 40 * SEC)),
        };
        assert_eq!(t.recovery_ns(), Some(60 * SEC));
        let same = Timed {
            boot_id: "b1".into(),
            ended_boot_ns: 960 * SEC,
            ended_ns: T0 + 10 * SEC,
            ..t.clone()
        };
        assert_eq!(same.recovery_ns(), Some(60 * SEC));
        let none = Timed { first: None, ..t };
        assert_eq!(none.recovery_ns(), None);
    }

    #[test]
    fn distribution() {
        assert_eq!(Recovery::of(vec![]), Recovery::default());
        assert_eq!(Recovery::of(vec![9, 1, 5]).median_ms, Some(5));
        assert_eq!(Recovery::of(vec![4, 1, 2, 9]).median_ms, Some(3));
    }
}
