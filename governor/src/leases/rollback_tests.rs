//! Snapshots and rollbacks through a real lease manager (scratch state directory and policy,
//! a stand-in kernel map): the snapshot is taken before any entry exists, a lease whose
//! snapshot cannot be taken is not installed, a live lease is rolled back only with
//! `revoke`, and a restore is recorded in the lease's record and the lineage.

use super::{
    lineage_tests::{fixture, fixture_with, states},
    LeaseError, Trigger,
};
use crate::lineage::record::Record;

#[test]
fn a_lease_is_snapshotted_before_its_entries_exist_and_the_row_says_what_it_cost() {
    let mut f = fixture("rb-taken");
    f.drain();
    let text = f.lease("l-snap", 600, None);
    let r = f.auth.submit(&text, "l.lease", 0).expect("accepted");
    let s = r.snapshot.expect("a snapshot");
    assert_eq!(s.state, "taken");
    assert_eq!((s.files, s.bytes), (1, 1), "{s:?}");
    assert_eq!(s.targets, vec![f.dir.join("prod/a").display().to_string()]);
    assert!(!f.map.lock().expect("map").0.is_empty(), "installed");
    let rows = f.drain();
    let st = states(&rows);
    let snap = st.iter().position(|s| *s == "snapshotted").expect("row");
    let enforced = st.iter().position(|s| *s == "enforced").expect("enforced");
    assert!(snap < enforced, "{st:?}");
    let detail = rows
        .iter()
        .find_map(|r| match r {
            Record::Lifecycle(l) if l.state == "snapshotted" => l.detail.clone(),
            _ => None,
        })
        .expect("detail");
    assert!(detail.contains("\"took_ms\""), "{detail}");
}

#[test]
fn a_lease_over_budget_is_refused_and_nothing_of_it_stays() {
    let mut f = fixture_with("rb-budget", "", "[rollback]\nmax_bytes = 0");
    f.drain();
    let text = f.lease("l-big", 600, None);
    let err = f.auth.submit(&text, "l.lease", 0).expect_err("over budget");
    let msg = err.to_string();
    assert!(matches!(err, LeaseError::Rejected(_)), "{msg}");
    assert!(msg.contains("max_bytes"), "{msg}");
    assert!(f.map.lock().expect("map").0.is_empty(), "nothing installed");
    assert!(f.auth.list(true).is_empty(), "nothing recorded as a lease");
    let snaps = f.dir.join("state/snapshots/l-big");
    assert!(!snaps.exists(), "{} left behind", snaps.display());
    assert_eq!(states(&f.drain()), vec!["refused"]);
}

#[test]
fn a_live_lease_is_rolled_back_only_with_revoke_and_the_restore_is_recorded() {
    let mut f = fixture("rb-live");
    let text = f.lease("l-undo", 600, None);
    f.auth.submit(&text, "l.lease", 0).expect("accepted");
    let a = f.dir.join("prod/a");
    std::fs::remove_file(&a).expect("the lessee deletes it");
    f.drain();
    let err = f
        .auth
        .rollback("l-undo", 0, false, false, Trigger::Rollback)
        .expect_err("live");
    assert!(err.to_string().contains("--revoke"), "{err}");
    assert!(!a.exists(), "a refused rollback changes nothing");
    let v = f
        .auth
        .rollback("l-undo", 0, true, false, Trigger::Rollback)
        .expect("rolled back");
    assert!(v.revoked);
    assert_eq!(v.recreated, vec![a.display().to_string()]);
    assert_eq!(std::fs::read(&a).expect("back"), b"x");
    assert!(f.map.lock().expect("map").0.is_empty(), "revoked first");
    let rows = f.drain();
    assert!(states(&rows).contains(&"revoked"), "{:?}", states(&rows));
    assert!(
        rows.iter().any(|r| matches!(r, Record::Rollback(_))),
        "a rollback row"
    );
    let shown = f.auth.show("l-undo").expect("shown");
    let s = shown.snapshot.expect("snapshot");
    assert_eq!(s.rollbacks.len(), 1);
    assert_eq!(s.rollbacks[0].outcome, "restored");
}

#[test]
fn a_resource_with_rollback_none_takes_no_snapshot_and_says_so() {
    let mut f = fixture_with("rb-none", "rollback = \"none\"", "");
    let text = f.lease("l-none", 600, None);
    let r = f.auth.submit(&text, "l.lease", 0).expect("accepted");
    let s = r.snapshot.expect("snapshot view");
    assert_eq!(s.state, "none");
    assert!(
        s.skipped.iter().any(|w| w.contains("rollback = \"none\"")),
        "{s:?}"
    );
    let err = f
        .auth
        .rollback("l-none", 0, true, false, Trigger::Rollback)
        .expect_err("nothing to restore");
    assert!(err.to_string().contains("no snapshot"), "{err}");
}

#[test]
fn a_restarted_lease_manager_rolls_back_what_the_first_one_snapshotted() {
    let mut f = fixture("rb-restart");
    let text = f.lease("l-keep", 600, None);
    f.auth.submit(&text, "l.lease", 0).expect("accepted");
    f.auth
        .revoke("l-keep", 0, None)
        .expect("revoked: the seal is taken now");
    let a = f.dir.join("prod/a");
    std::fs::write(&a, b"changed after the lease").expect("write");
    let (mut again, _rows) = f.reopen();
    let v = again
        .rollback("l-keep", 0, false, false, Trigger::Rollback)
        .expect("rolled back");
    // Written after the lease ended: an outside change, reported and left alone.
    assert_eq!(v.conflicts.len(), 1, "{v:?}");
    assert_eq!(std::fs::read(&a).expect("a"), b"changed after the lease");
    let v = again
        .rollback("l-keep", 0, false, true, Trigger::Rollback)
        .expect("forced");
    assert!(v.conflicts.is_empty() && v.forced, "{v:?}");
    assert_eq!(std::fs::read(&a).expect("a"), b"x");
}

#[test]
fn the_cost_of_an_approval_is_stated_before_anyone_signs() {
    let f = fixture("rb-cost");
    let cost = f
        .auth
        .cost_of(
            "coder",
            &[crate::api::protocol::ScopeAsk {
                class: "delete".into(),
                target: f.dir.join("prod").display().to_string(),
            }],
        )
        .expect("cost");
    assert_eq!((cost.files, cost.bytes), (1, 1), "{cost:?}");
    assert_eq!(cost.budget_bytes, 1 << 30);
    assert!(super::describe_cost(&cost).contains("about 1 files"));
}
