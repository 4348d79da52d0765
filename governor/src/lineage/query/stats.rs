//! `lineage stats`: per agent, the unsafe actions blocked before they ran, those allowed
//! under a lease, the would-denies of observe mode, and its halts with their time from
//! command to enforcement; and the events lost (gaps), which no agent owns; and the safety
//! figures ([`super::safety`]: blocked before execution, time to recovery).

use std::collections::BTreeMap;

use rusqlite::{params_from_iter, types::Value, Connection};
use serde::Serialize;

use super::{
    safety::{safety, Safety},
    sql, Filter, QueryError,
};

/// One agent's figures. Times in ns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentStats {
    /// `None`: events of an agent id the policy does not name.
    pub agent: Option<String>,
    /// Blocked before execution.
    pub denied: u64,
    pub lease_allowed: u64,
    /// Observe mode: would have been denied, not prevented.
    pub observe_would_deny: u64,
    /// Freezes and kills that named the agent.
    pub halts: u64,
    /// Command to enforcement, over the halts that measured it.
    pub halt_enforce_avg_ns: Option<u64>,
    pub halt_enforce_max_ns: Option<u64>,
}

/// Lost events, by where they were lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GapStats {
    pub source: String,
    pub gaps: u64,
    /// Events lost (0 when the loss could not be counted).
    pub lost: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub agents: Vec<AgentStats>,
    pub gaps: Vec<GapStats>,
    pub safety: Safety,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The figures over the events (and halts, gaps) `filter`'s agent and time window select;
/// its decision, class and path are ignored.
pub fn stats(conn: &Connection, filter: &Filter) -> Result<Stats, QueryError> {
    let window = Filter {
        agent: filter.agent.clone(),
        since_ns: filter.since_ns,
        until_ns: filter.until_ns,
        ..Filter::default()
    };
    let (clause, params) = window.where_clause();
    let q = format!(
        "SELECT e.agent, sum(e.decision = 'deny'), sum(e.decision = 'lease-allow'), \
         sum(e.decision = 'observe-deny') FROM events e {clause} GROUP BY e.agent"
    );
    let mut by_agent: BTreeMap<Option<String>, AgentStats> = BTreeMap::new();
    let mut st = conn.prepare(&q).map_err(sql("event counts"))?;
    let rows = st
        .query_map(params_from_iter(params), |r| {
            Ok(AgentStats {
                agent: r.get(0)?,
                denied: u(r.get(1)?),
                lease_allowed: u(r.get(2)?),
                observe_would_deny: u(r.get(3)?),
                ..AgentStats::default()
            })
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(sql("event counts"))?;
    for s in rows {
        by_agent.insert(s.agent.clone(), s);
    }

    let (mut conds, mut params) = (
        vec!["h.action IN ('freeze', 'kill')".to_owned()],
        Vec::<Value>::new(),
    );
    if let Some(ns) = window.since_ns {
        params.push(Value::Integer(ns));
        conds.push(format!("h.ts_ns >= ?{}", params.len()));
    }
    if let Some(ns) = window.until_ns {
        params.push(Value::Integer(ns));
        conds.push(format!("h.ts_ns < ?{}", params.len()));
    }
    if let Some(a) = &window.agent {
        params.push(Value::Text(a.clone()));
        conds.push(format!("a.value = ?{}", params.len()));
    }
    let q = format!(
        "SELECT a.value, count(*), avg(h.enforce_ns), max(h.enforce_ns) \
         FROM halts h, json_each(h.agents) a WHERE {} GROUP BY a.value",
        conds.join(" AND ")
    );
    let mut st = conn.prepare(&q).map_err(sql("halts"))?;
    let halts = st
        .query_map(params_from_iter(params), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<f64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(sql("halts"))?;
    for (agent, n, avg, max) in halts {
        let s = by_agent
            .entry(Some(agent.clone()))
            .or_insert_with(|| AgentStats {
                agent: Some(agent),
                ..AgentStats::default()
            });
        s.halts = u(n);
        s.halt_enforce_avg_ns = avg.map(|a| a.round() as u64);
        s.halt_enforce_max_ns = max.map(u);
    }

    // Gaps overlapping the window.
    let (mut conds, mut params) = (vec!["1".to_owned()], Vec::<Value>::new());
    if let Some(ns) = window.since_ns {
        params.push(Value::Integer(ns));
        conds.push(format!("until_ns >= ?{}", params.len()));
    }
    if let Some(ns) = window.until_ns {
        params.push(Value::Integer(ns));
        conds.push(format!("from_ns < ?{}", params.len()));
    }
    let q = format!(
        "SELECT source, count(*), coalesce(sum(lost), 0) FROM gaps WHERE {} \
         GROUP BY source ORDER BY source",
        conds.join(" AND ")
    );
    let mut st = conn.prepare(&q).map_err(sql("gaps"))?;
    let gaps = st
        .query_map(params_from_iter(params), |r| {
            Ok(GapStats {
                source: r.get(0)?,
                gaps: u(r.get(1)?),
                lost: u(r.get(2)?),
            })
        })
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(sql("gaps"))?;
    Ok(Stats {
        agents: by_agent.into_values().collect(),
        gaps,
        safety: safety(conn, &window)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture::{self, SEC, T0};

    #[test]
    fn counts_per_agent() {
        let conn = fixture::db();
        let s = stats(&conn, &Filter::default()).expect("stats");
        assert_eq!(
            s.agents,
            [
                AgentStats {
                    agent: Some("claude".into()),
                    denied: 1,
                    lease_allowed: 3,
                    observe_would_deny: 1,
                    halts: 2,
                    halt_enforce_avg_ns: Some(4_000_000),
                    halt_enforce_max_ns: Some(6_000_000),
                },
                AgentStats {
                    agent: Some("codex".into()),
                    denied: 1,
                    halts: 1,
                    halt_enforce_avg_ns: Some(6_000_000),
                    halt_enforce_max_ns: Some(6_000_000),
                    ..AgentStats::default()
                },
            ]
        );
        assert_eq!(
            s.gaps,
            [GapStats {
                source: "kernel-ring".into(),
                gaps: 1,
                lost: 12
            }]
        );
    }

    #[test]
    fn window_and_agent_narrow_it() {
        let conn = fixture::db();
        let f = Filter {
            agent: Some("claude".into()),
            since_ns: Some(T0 + 45 * SEC),
            ..Filter::default()
        };
        let s = stats(&conn, &f).expect("stats");
        assert_eq!(s.agents.len(), 1);
        let c = &s.agents[0];
        assert_eq!((c.denied, c.lease_allowed, c.halts), (0, 1, 2));
        assert!(s.gaps.is_empty(), "the gap ended before the window");
    }
}
