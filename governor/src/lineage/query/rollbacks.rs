//! Reversibility as recorded: how a lease's changes can be undone ([`undo`]: its snapshot,
//! from its `snapshotted` or `not-snapshotted` step, and the restores already run) and its
//! restores themselves ([`of_lease`], the `rollbacks` rows), for `lineage changes` and
//! `lineage trace`.

use rusqlite::Connection;
use serde::Serialize;

use super::{authority::Lease, format_ns, sql, QueryError};
use crate::lineage::authority::destructive;

/// One restore of a lease's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollback {
    /// `rollbacks.id`.
    pub id: i64,
    pub lease_id: String,
    pub agent: String,
    /// `uid:N`.
    pub actor: String,
    /// `rollback` or `halt`.
    pub trigger: String,
    /// Unix ns the restore ended.
    pub ended_ns: i64,
    pub ended: String,
    /// How long it took (boot clock).
    pub took_ms: u64,
    pub restored: u64,
    pub recreated: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub conflicts: u64,
    pub forced: bool,
    /// `restored` or `partial`.
    pub outcome: String,
    /// The paths and conflicts (bounded lists).
    pub detail: serde_json::Value,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Lease `lease_id`'s restores, oldest first.
pub fn of_lease(conn: &Connection, lease_id: &str) -> Result<Vec<Rollback>, QueryError> {
    conn.prepare_cached(
        "SELECT id, lease_id, agent, actor, trigger, ended_ns, ended_boot_ns - started_boot_ns, \
         restored, recreated, removed, unchanged, conflicts, forced, outcome, detail \
         FROM rollbacks WHERE lease_id = ?1 ORDER BY ended_ns, id",
    )
    .and_then(|mut st| {
        st.query_map([lease_id], |r| {
            let ended_ns: i64 = r.get(5)?;
            let detail: String = r.get(14)?;
            Ok(Rollback {
                id: r.get(0)?,
                lease_id: r.get(1)?,
                agent: r.get(2)?,
                actor: r.get(3)?,
                trigger: r.get(4)?,
                ended_ns,
                ended: format_ns(ended_ns),
                took_ms: u(r.get(6)?) / 1_000_000,
                restored: u(r.get(7)?),
                recreated: u(r.get(8)?),
                removed: u(r.get(9)?),
                unchanged: u(r.get(10)?),
                conflicts: u(r.get(11)?),
                forced: r.get(12)?,
                outcome: r.get(13)?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
            })
        })?
        .collect()
    })
    .map_err(sql("a lease's rollbacks"))
}

/// How the changes made under a lease can be undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Undo {
    /// The lease's snapshot restores them: `command` does it (with `--revoke` while the lease
    /// is live); `rolled_back`: the restores already run, oldest first.
    Rollback {
        command: String,
        snapshot: serde_json::Value,
        rolled_back: Vec<Rollback>,
    },
    /// No snapshot of the lease, and why.
    NoSnapshot { why: String },
}

impl Undo {
    /// The last restore, if it was rolled back.
    pub fn last_rollback(&self) -> Option<&Rollback> {
        match self {
            Undo::Rollback { rolled_back, .. } => rolled_back.last(),
            Undo::NoSnapshot { .. } => None,
        }
    }
}

/// How to undo what lease `lease_id` allowed (`lease`: its record, if on record; `live`:
/// whether it may still allow more).
pub fn undo(
    conn: &Connection,
    lease_id: Option<&str>,
    lease: Option<&Lease>,
    live: bool,
) -> Result<Undo, QueryError> {
    let no = |why: &str| {
        Ok(Undo::NoSnapshot {
            why: why.to_owned(),
        })
    };
    let Some(id) = lease_id else {
        return no("no lease: the kernel named none");
    };
    let Some(lease) = lease else {
        return no("the lease is not on record");
    };
    // The latest snapshot step decides (a lease is snapshotted once; a later step wins).
    let step = lease
        .lifecycle
        .iter()
        .rev()
        .find(|s| matches!(s.state.as_str(), "snapshotted" | "not-snapshotted"));
    match step {
        Some(s) if s.state == "snapshotted" => Ok(Undo::Rollback {
            command: format!(
                "governor rollback --lease {id}{}",
                if live { " --revoke" } else { "" }
            ),
            snapshot: s.detail.clone().unwrap_or(serde_json::Value::Null),
            rolled_back: of_lease(conn, id)?,
        }),
        Some(s) => {
            let why = s
                .detail
                .as_ref()
                .and_then(|d| d.get("why"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("none was taken");
            no(why)
        }
        None => {
            let lifts_destructive = lease.scopes.as_array().is_some_and(|scopes| {
                scopes.iter().any(|s| {
                    s.get("class")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(destructive)
                })
            });
            if lifts_destructive {
                no("none on record (the lease predates snapshots)")
            } else {
                no("the lease lifted no destructive class")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::{
        authority::lease,
        fixture::{self, SEC, T0},
    };

    #[test]
    fn a_snapshotted_lease_offers_its_rollback_and_lists_restores() {
        let conn = fixture::db();
        let l2 = lease(&conn, "L2").expect("q").expect("L2");
        let u = undo(&conn, Some("L2"), Some(&l2), false).expect("undo");
        let Undo::Rollback {
            command,
            snapshot,
            rolled_back,
        } = &u
        else {
            panic!("no rollback offered: {u:?}");
        };
        assert_eq!(command, "governor rollback --lease L2");
        assert_eq!(snapshot["method"], "reflink");
        assert_eq!(rolled_back.len(), 1);
        let r = &rolled_back[0];
        assert_eq!(
            (r.actor.as_str(), r.trigger.as_str(), r.outcome.as_str()),
            ("uid:0", "rollback", "partial")
        );
        assert_eq!(r.ended_ns, T0 + 100 * SEC);
        assert_eq!(r.took_ms, 250);
        assert_eq!(
            (r.restored, r.recreated, r.removed, r.conflicts),
            (2, 1, 1, 1)
        );
        assert_eq!(r.detail["conflicts"][0]["path"], "/var/db/y");
        // Its life shows the restore as a step, naming the row.
        let l2 = lease(&conn, "L2").expect("q").expect("L2");
        let step = l2.lifecycle.last().expect("steps");
        assert_eq!(step.state, "rolled-back");
        assert_eq!(step.detail.as_ref().expect("detail")["rollback"], r.id);
    }

    #[test]
    fn without_a_snapshot_it_says_why() {
        let conn = fixture::db();
        let l1 = lease(&conn, "L1").expect("q").expect("L1");
        let u = undo(&conn, Some("L1"), Some(&l1), true).expect("undo");
        assert_eq!(
            u,
            Undo::NoSnapshot {
                why: "none on record (the lease predates snapshots)".into()
            }
        );
        let l3 = lease(&conn, "L3").expect("q").expect("L3");
        let u = undo(&conn, Some("L3"), Some(&l3), false).expect("undo");
        assert_eq!(
            u,
            Undo::NoSnapshot {
                why: "rollback = \"none\" on /srv/cache".into()
            }
        );
        let mut net = l1.clone();
        net.lifecycle.clear();
        net.scopes = serde_json::json!([{ "class": "connect", "target": "10.0.0.1:443" }]);
        let u = undo(&conn, Some("L1"), Some(&net), false).expect("undo");
        assert_eq!(
            u,
            Undo::NoSnapshot {
                why: "the lease lifted no destructive class".into()
            }
        );
        assert!(matches!(
            undo(&conn, None, None, false).expect("undo"),
            Undo::NoSnapshot { why } if why.starts_with("no lease")
        ));
        assert_eq!(of_lease(&conn, "nope").expect("q"), []);
    }
}
