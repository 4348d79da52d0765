//! `lineage changes`: what changed. Every destructive operation that happened: those a
//! lease allowed, grouped by lease with its reason and signers, and those observe mode let
//! through (would-denies: not prevented), in their own group. Each comes with an undo hint
//! where one is obvious.

use std::collections::BTreeMap;

use rusqlite::{params_from_iter, Connection};
use serde::Serialize;

use super::{
    authority::{lease, Lease},
    events::{Event, COLUMNS},
    rollbacks::{undo, Undo},
    sql, Filter, QueryError,
};

/// One operation that happened, and how to undo it where that is obvious.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub event: Event,
    pub undo: Option<String>,
}

/// The operations one lease allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseGroup {
    /// `None`: lease-allow events without a lease id.
    pub lease_id: Option<String>,
    /// `None`: the lease is not on record.
    pub lease: Option<Lease>,
    /// Whether the lease may still allow more (then revoking it is the first step).
    pub live: bool,
    /// `governor lease revoke ID` while it is live.
    pub undo: Option<String>,
    /// How its changes are undone: its snapshot and restores, or why it has none.
    pub rollback: Undo,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Ordered by each lease's first change.
    pub leases: Vec<LeaseGroup>,
    /// Observe mode, not prevented.
    pub observed: Vec<Change>,
}

/// The query of [`changes`]: the allowed decisions (served by the partial index
/// `events_allowed`, which a flood of denies does not grow).
fn changes_sql(filter: &Filter) -> (String, Vec<rusqlite::types::Value>) {
    let filter = Filter {
        decision: None,
        ..filter.clone()
    };
    let (mut conds, params) = filter.conditions();
    conds.push("e.decision IN ('lease-allow', 'observe-deny')".to_owned());
    let q = format!(
        "SELECT {COLUMNS} FROM events e WHERE {} ORDER BY e.ts_ns, e.id",
        conds.join(" AND ")
    );
    (q, params)
}

/// What changed among the events `filter` selects (its decision is ignored), at Unix time
/// `now_secs`.
pub fn changes(conn: &Connection, filter: &Filter, now_secs: i64) -> Result<Changes, QueryError> {
    let (q, params) = changes_sql(filter);
    let mut st = conn.prepare(&q).map_err(sql("changes"))?;
    let events = st
        .query_map(params_from_iter(params), Event::from_row)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(sql("changes"))?;

    let mut order: Vec<Option<String>> = Vec::new();
    let mut by_lease: BTreeMap<Option<String>, Vec<Change>> = BTreeMap::new();
    let mut observed = Vec::new();
    for event in events {
        let change = Change {
            undo: undo_hint(&event).map(|h| format!("{h} (no lease, no snapshot)")),
            event,
        };
        if change.event.decision == "observe-deny" {
            observed.push(change);
            continue;
        }
        let key = change.event.lease_id.clone();
        if !by_lease.contains_key(&key) {
            order.push(key.clone());
        }
        by_lease.entry(key).or_default().push(change);
    }
    let mut leases = Vec::with_capacity(order.len());
    for id in order {
        let found = match &id {
            Some(id) => lease(conn, id)?,
            None => None,
        };
        let live = found.as_ref().is_some_and(|l| l.live(now_secs));
        let rollback = undo(conn, id.as_deref(), found.as_ref(), live)?;
        let changes = by_lease
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|c| Change {
                undo: leased_undo(&c.event, &rollback),
                event: c.event,
            })
            .collect();
        leases.push(LeaseGroup {
            undo: match (&id, live) {
                (Some(id), true) => Some(format!("governor lease revoke {id}")),
                _ => None,
            },
            lease_id: id,
            lease: found,
            live,
            rollback,
            changes,
        });
    }
    Ok(Changes { leases, observed })
}

/// How to undo one operation its lease allowed: the lease's rollback (or the one already
/// run), else why there is no snapshot and the hint of its class. An operation that changed
/// no file (connect, exec) has nothing to undo.
fn leased_undo(e: &Event, rollback: &Undo) -> Option<String> {
    let hint = undo_hint(e)?;
    Some(match rollback {
        Undo::Rollback {
            rolled_back,
            command,
            ..
        } => match rolled_back.last() {
            Some(r) if r.outcome == "partial" => format!(
                "rolled back {} by {} (partial, {} conflicts left alone, rollbacks #{}); to \
                 overwrite them: {command} --force",
                r.ended, r.actor, r.conflicts, r.id
            ),
            Some(r) => format!(
                "rolled back {} by {} ({}, rollbacks #{})",
                r.ended, r.actor, r.outcome, r.id
            ),
            None => command.clone(),
        },
        Undo::NoSnapshot { why } => format!("{hint} (no snapshot: {why})"),
    })
}

/// How to undo one operation by hand, where it is obvious from its class.
fn undo_hint(e: &Event) -> Option<String> {
    let what = e.path.as_deref().unwrap_or(&e.target);
    Some(match e.class.as_str() {
        "unlink" => format!("restore {what} from a backup"),
        "rmdir" => format!("recreate directory {what}"),
        "rename" => format!("{what} was renamed over or away: restore it from a backup"),
        "truncate" => format!("restore the contents of {what} from a backup"),
        "write" => format!("restore the previous contents of {what}"),
        "chmod" => format!("reset the mode of {what}"),
        "chown" => format!("reset the owner of {what}"),
        "link" => format!("remove the new link {what}"),
        "mknod" => format!("remove the node {what}"),
        "xattr" => format!("reset the extended attributes of {what}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::fixture::{self, T0_SECS};

    fn ids(c: &[Change]) -> Vec<i64> {
        c.iter().map(|c| c.event.id).collect()
    }

    /// `lineage changes` reads the allowed decisions' own index, not every deny.
    #[test]
    fn changes_use_the_allowed_index() {
        let conn = fixture::db();
        for filter in [
            Filter::default(),
            Filter {
                since_ns: Some(1),
                ..Filter::default()
            },
        ] {
            let (q, params) = changes_sql(&filter);
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {q}"))
                .and_then(|mut st| {
                    st.query_map(params_from_iter(params), |r| r.get::<_, String>(3))?
                        .collect()
                })
                .expect("plan");
            assert!(
                plan.iter().any(|p| p.contains("events_allowed")),
                "{filter:?}: {plan:?}"
            );
        }
    }

    #[test]
    fn grouped_by_lease_with_observe_mode_apart() {
        let conn = fixture::db();
        let c = changes(&conn, &Filter::default(), T0_SECS as i64).expect("changes");
        let groups: Vec<(Option<&str>, Vec<i64>, bool)> = c
            .leases
            .iter()
            .map(|g| (g.lease_id.as_deref(), ids(&g.changes), g.live))
            .collect();
        assert_eq!(
            groups,
            [
                (
                    Some("L1"),
                    vec![fixture::EV_LEASED_1, fixture::EV_LEASED_2],
                    true
                ),
                (Some("L2"), vec![fixture::EV_L2], false),
            ]
        );
        let l1 = &c.leases[0];
        assert_eq!(l1.undo.as_deref(), Some("governor lease revoke L1"));
        let lease = l1.lease.as_ref().expect("L1 on record");
        assert_eq!(lease.reason, "rotate logs");
        assert_eq!(lease.signers.len(), 2);
        assert_eq!(c.leases[1].undo, None, "L2 is revoked already");
        assert_eq!(
            l1.changes[0].undo.as_deref(),
            Some(
                "restore /srv/app/old.log from a backup (no snapshot: none on record (the \
                 lease predates snapshots))"
            )
        );
        assert_eq!(ids(&c.observed), [fixture::EV_OBSERVE]);
        // Denied events did not happen.
        assert!(c
            .leases
            .iter()
            .flat_map(|g| &g.changes)
            .chain(&c.observed)
            .all(|ch| ch.event.decision != "deny"));
    }

    /// L2 was snapshotted and rolled back: its change names the restore, who ran it and when.
    #[test]
    fn a_rolled_back_lease_says_so() {
        let conn = fixture::db();
        let c = changes(&conn, &Filter::default(), T0_SECS as i64).expect("changes");
        let l2 = &c.leases[1];
        assert_eq!(l2.lease_id.as_deref(), Some("L2"));
        let Undo::Rollback {
            command,
            rolled_back,
            ..
        } = &l2.rollback
        else {
            panic!("L2 has a snapshot: {:?}", l2.rollback);
        };
        assert_eq!(command, "governor rollback --lease L2");
        let undo = l2.changes[0].undo.as_deref().expect("undo");
        assert_eq!(
            undo,
            format!(
                "rolled back 2026-11-21T19:41:40.000Z by uid:0 (partial, 1 conflicts left \
                 alone, rollbacks #{}); to overwrite them: governor rollback --lease L2 --force",
                rolled_back[0].id
            )
        );
        conn.execute("UPDATE rollbacks SET outcome = 'restored', forced = 1", [])
            .expect("forced");
        let c = changes(&conn, &Filter::default(), T0_SECS as i64).expect("changes");
        assert_eq!(
            c.leases[1].changes[0].undo.as_deref(),
            Some("rolled back 2026-11-21T19:41:40.000Z by uid:0 (restored, rollbacks #1)")
        );
    }

    /// Before any restore, the change's undo is the command itself; while the lease is live
    /// it revokes first.
    #[test]
    fn a_snapshotted_lease_offers_the_command() {
        let conn = fixture::db();
        conn.execute("DELETE FROM rollbacks", [])
            .expect("no restores");
        let c = changes(&conn, &Filter::default(), T0_SECS as i64).expect("changes");
        assert_eq!(
            c.leases[1].changes[0].undo.as_deref(),
            Some("governor rollback --lease L2")
        );
        conn.execute(
            "DELETE FROM lease_lifecycle WHERE lease_id = 'L2' AND state = 'revoked'",
            [],
        )
        .expect("L2 live again");
        let c = changes(&conn, &Filter::default(), T0_SECS as i64).expect("changes");
        assert_eq!(
            c.leases[1].changes[0].undo.as_deref(),
            Some("governor rollback --lease L2 --revoke")
        );
    }

    #[test]
    fn since_and_agent_narrow_it() {
        let conn = fixture::db();
        let f = Filter {
            since_ns: Some(fixture::T0 + 25 * fixture::SEC),
            ..Filter::default()
        };
        let c = changes(&conn, &f, T0_SECS as i64).expect("changes");
        assert_eq!(c.leases.len(), 1);
        assert_eq!(c.leases[0].lease_id.as_deref(), Some("L2"));
        assert_eq!(ids(&c.observed), [fixture::EV_OBSERVE]);
        let f = Filter {
            agent: Some("codex".into()),
            ..Filter::default()
        };
        let c = changes(&conn, &f, T0_SECS as i64).expect("changes");
        assert!(c.leases.is_empty() && c.observed.is_empty());
    }
}
