//! The authority behind a decision, as typed rows: a lease with its signers and life
//! ([`lease`]), and the policy load in force at a time ([`policy_at`]).

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::{format_ns, sql, QueryError};

/// A signature that counted on a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    pub key_id: String,
    pub operator: String,
    /// `issuer` or `approver`.
    pub role: String,
    /// Unix seconds.
    pub signed_at: i64,
}

/// A step of a lease's (or its request's) life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub ts_ns: i64,
    pub time: String,
    pub state: String,
    pub actor: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// A lease the daemon accepted, with its signers and lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub id: String,
    pub agent: String,
    pub host: String,
    pub scopes: serde_json::Value,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub reason: String,
    pub ticket: Option<String>,
    pub request_id: Option<String>,
    pub policy_version: String,
    pub signers: Vec<Signer>,
    /// Oldest first; a request's steps before the lease existed included.
    pub lifecycle: Vec<Step>,
}

impl Lease {
    /// Whether it may still allow something at Unix time `now_secs`: not past its end, and
    /// neither revoked, expired nor dropped on record.
    pub fn live(&self, now_secs: i64) -> bool {
        self.not_after > now_secs
            && !self
                .lifecycle
                .iter()
                .any(|s| matches!(s.state.as_str(), "revoked" | "expired" | "dropped"))
    }
}

/// The lease `id` with its signers and lifecycle; `None` if it is not on record.
pub fn lease(conn: &Connection, id: &str) -> Result<Option<Lease>, QueryError> {
    let row = conn
        .prepare_cached(
            "SELECT id, agent, host, scopes, not_before, not_after, reason, ticket, \
             request_id, policy_version FROM leases WHERE id = ?1",
        )
        .and_then(|mut st| {
            st.query_row([id], |r| {
                let scopes: String = r.get(3)?;
                Ok(Lease {
                    id: r.get(0)?,
                    agent: r.get(1)?,
                    host: r.get(2)?,
                    scopes: serde_json::from_str(&scopes)
                        .unwrap_or(serde_json::Value::String(scopes)),
                    not_before: r.get(4)?,
                    not_after: r.get(5)?,
                    reason: r.get(6)?,
                    ticket: r.get(7)?,
                    request_id: r.get(8)?,
                    policy_version: r.get(9)?,
                    signers: Vec::new(),
                    lifecycle: Vec::new(),
                })
            })
            .optional()
        })
        .map_err(sql("a lease"))?;
    let Some(mut lease) = row else {
        return Ok(None);
    };
    lease.signers = conn
        .prepare_cached(
            "SELECT key_id, operator, role, signed_at FROM lease_signatures \
             WHERE lease_id = ?1 ORDER BY role = 'approver', signed_at, key_id",
        )
        .and_then(|mut st| {
            st.query_map([id], |r| {
                Ok(Signer {
                    key_id: r.get(0)?,
                    operator: r.get(1)?,
                    role: r.get(2)?,
                    signed_at: r.get(3)?,
                })
            })?
            .collect()
        })
        .map_err(sql("a lease's signatures"))?;
    // Its own steps, and its request's from before the lease existed (no lease id yet).
    // `+lease_id` keeps the planner on `lifecycle_request` instead of scanning every
    // lease-less row through `lifecycle_lease`.
    lease.lifecycle = conn
        .prepare_cached(
            "SELECT ts_ns, state, actor, detail FROM lease_lifecycle WHERE lease_id = ?1 \
             UNION ALL SELECT ts_ns, state, actor, detail FROM lease_lifecycle \
             WHERE request_id = ?2 AND +lease_id IS NULL ORDER BY 1",
        )
        .and_then(|mut st| {
            st.query_map(rusqlite::params![id, lease.request_id], |r| {
                let ts_ns: i64 = r.get(0)?;
                let detail: Option<String> = r.get(3)?;
                Ok(Step {
                    ts_ns,
                    time: format_ns(ts_ns),
                    state: r.get(1)?,
                    actor: r.get(2)?,
                    detail: detail
                        .map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))),
                })
            })?
            .collect()
        })
        .map_err(sql("a lease's lifecycle"))?;
    Ok(Some(lease))
}

/// A policy load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub version: String,
    pub name: String,
    pub owner: String,
    pub source: String,
    pub loaded_ns: i64,
    pub loaded: String,
}

/// The load of policy `version` in force at Unix ns `ts_ns`: the latest at or before it;
/// failing that (loaded before the lineage began recording), the earliest on record.
pub fn policy_at(
    conn: &Connection,
    version: &str,
    ts_ns: i64,
) -> Result<Option<Policy>, QueryError> {
    conn.prepare_cached(
        "SELECT version, name, owner, source, loaded_ns FROM policies WHERE version = ?1 \
         ORDER BY loaded_ns > ?2, CASE WHEN loaded_ns <= ?2 THEN -loaded_ns ELSE loaded_ns END \
         LIMIT 1",
    )
    .and_then(|mut st| {
        st.query_row(rusqlite::params![version, ts_ns], |r| {
            let loaded_ns: i64 = r.get(4)?;
            Ok(Policy {
                version: r.get(0)?,
                name: r.get(1)?,
                owner: r.get(2)?,
                source: r.get(3)?,
                loaded_ns,
                loaded: format_ns(loaded_ns),
            })
        })
        .optional()
    })
    .map_err(sql("the policy"))
}

/// The file and text of policy `version` as last loaded, if the lineage has it.
pub fn policy_text(
    conn: &Connection,
    version: &str,
) -> Result<Option<(String, String)>, QueryError> {
    conn.prepare_cached(
        "SELECT source, text FROM policies WHERE version = ?1 ORDER BY loaded_ns DESC LIMIT 1",
    )
    .and_then(|mut st| {
        st.query_row([version], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    })
    .map_err(sql("the policy"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture::{self, SEC, T0, T0_SECS};

    #[test]
    fn a_lease_has_its_signers_and_whole_life() {
        let conn = fixture::db();
        let l1 = lease(&conn, "L1").expect("q").expect("L1");
        let who: Vec<(&str, &str)> = l1
            .signers
            .iter()
            .map(|s| (s.operator.as_str(), s.role.as_str()))
            .collect();
        assert_eq!(
            who,
            [
                ("alice@example.com", "issuer"),
                ("bob@example.com", "approver")
            ]
        );
        let states: Vec<&str> = l1.lifecycle.iter().map(|s| s.state.as_str()).collect();
        assert_eq!(states, ["requested", "issued", "submitted", "enforced"]);
        assert!(l1.live(T0_SECS as i64));
        assert!(!l1.live(T0_SECS as i64 + 3600));
        let l2 = lease(&conn, "L2").expect("q").expect("L2");
        assert!(!l2.live(T0_SECS as i64), "revoked");
        assert_eq!(lease(&conn, "nope").expect("q"), None);
    }

    #[test]
    fn the_policy_load_in_force_then() {
        let conn = fixture::db();
        let at = |ts| policy_at(&conn, "pv1", ts).expect("q").expect("pv1");
        assert_eq!(at(T0).loaded_ns, T0 - 100 * SEC);
        assert_eq!(at(T0 + 40 * SEC).loaded_ns, T0 + 35 * SEC);
        // Before any load on record: the earliest.
        assert_eq!(at(T0 - 1000 * SEC).loaded_ns, T0 - 100 * SEC);
        let pv2 = policy_at(&conn, "pv2", T0).expect("q").expect("pv2");
        assert_eq!(pv2.owner, "security-team");
        assert_eq!(policy_at(&conn, "pv9", T0).expect("q"), None);
    }
}
