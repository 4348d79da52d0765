//! The lease manager on the boot clock: a scheduled lease's kernel entry opens at its boot-time
//! start whatever the wall clock says, and a restarted lease manager never extends a lease: on
//! the same boot it keeps the recorded window, on another it trusts the wall clock only if
//! it is not behind the recorded high-water mark. Real authorities on scratch state
//! directories (the lineage tests' fixture), with the kernel's lease map stood in for.

use super::{
    clock,
    lineage_tests::{fixture, states, Fixture},
    store::State,
    wall_mark,
};
use crate::lineage::record::Record;

const S: u64 = 1_000_000_000;

/// The entry of the fixture's one lease (`delete` is two kernel keys, unlink and rmdir,
/// with the same entry).
fn only_entry(f: &Fixture) -> governor_common::LeaseEntry {
    let map = f.map.lock().expect("map");
    let first = *map.0.values().next().expect("an entry");
    assert!(
        map.0.values().all(|e| *e == first),
        "one lease: {:?}",
        map.0
    );
    first
}

/// Rewrites lease `id`'s stored record with `edit` (what a previous daemon left).
fn edit_record(f: &mut Fixture, id: &str, edit: impl FnOnce(&mut super::store::Record)) {
    let r = f.auth.records.get_mut(id).expect("record");
    edit(r);
    f.auth.store.save(r).expect("save");
}

/// The detail of the lifecycle row in `state` among `rows`.
fn detail(rows: &[Record], state: &str) -> String {
    rows.iter()
        .find_map(|r| match r {
            Record::Lifecycle(l) if l.state == state => l.detail.clone(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {state} row in {rows:?}"))
}

#[test]
fn a_scheduled_lease_opens_at_its_boot_clock_start_whatever_the_wall_clock_says() {
    let mut f = fixture("scheduled");
    let now = clock::wall_secs();
    let text = f.lease_between("l-later", now + 30, now + 600, None);
    let before = clock::boot_ns();
    let r = f.auth.submit(&text, "later.lease", 0).expect("accepted");
    assert_eq!(r.state, State::Scheduled);
    // In the kernel already, with its start 30 s ahead on the boot clock: not usable now.
    let e = only_entry(&f);
    assert!(!e.applies_at(clock::boot_ns()), "{e:?}");
    let start = e.not_before_boot_ns;
    assert!(
        start >= before + 28 * S && start <= clock::boot_ns() + 31 * S,
        "start {start} vs boot {before}"
    );
    assert!(e.applies_at(start) && !e.applies_at(e.not_after_boot_ns));
    // The wall clock jumps past `not_before` (as if set forward): the recorded wall time
    // says due, the boot clock does not, and the tick goes by the boot clock.
    edit_record(&mut f, "l-later", |r| r.not_before = 0);
    f.auth.tick();
    assert_eq!(f.auth.records["l-later"].state, State::Scheduled);
    assert_eq!(only_entry(&f).not_before_boot_ns, start);
    // Its boot-clock start reached: enforced, same entry.
    edit_record(&mut f, "l-later", |r| {
        r.boot.as_mut().expect("window").not_before_ns = clock::boot_ns();
    });
    f.auth.tick();
    assert_eq!(f.auth.records["l-later"].state, State::Enforced);
}

#[test]
fn a_restart_on_the_same_boot_keeps_an_ended_lease_ended() {
    let mut f = fixture("same-boot");
    let text = f.lease("l-ended", 600, None);
    f.auth.submit(&text, "e.lease", 0).expect("accepted");
    // The lease ran out on the boot clock while no daemon ran, and the wall clock was set
    // back: by wall time it still has ten minutes.
    edit_record(&mut f, "l-ended", |r| {
        r.boot.as_mut().expect("window").not_after_ns = clock::boot_ns() - 1;
    });
    // The restarted daemon's new generation starts with an empty map.
    f.map.lock().expect("map").0.clear();
    f.drain();
    let (again, rows) = f.reopen();
    let rows: Vec<Record> = rows.try_iter().collect();
    assert_eq!(again.records["l-ended"].state, State::Expired);
    assert!(
        f.map.lock().expect("map").0.is_empty(),
        "not installed again"
    );
    assert_eq!(states(&rows), ["expired"], "{rows:?}");
    let history = &again.records["l-ended"].history;
    let last = history.last().expect("history");
    assert!(
        last.what == "expired" && last.detail.contains("same boot"),
        "{history:?}"
    );
}

#[test]
fn a_restart_after_a_reboot_trusts_the_wall_clock_only_if_it_did_not_go_back() {
    let mut f = fixture("reboot");
    for id in ["l-behind", "l-fine"] {
        let text = f.lease(id, 600, None);
        f.auth.submit(&text, "r.lease", 0).expect("accepted");
        // Recorded on another boot.
        edit_record(&mut f, id, |r| {
            r.boot.as_mut().expect("window").boot_id = "another-boot".into();
        });
    }
    let mark = f.dir.join("state").join(wall_mark::FILE);
    // The last recorded time is a day ahead of the wall clock: it went back.
    let ahead = clock::wall_ms() + 86_400_000;
    std::fs::write(&mark, format!("{{\"wall_ms\":{ahead}}}")).expect("mark");
    f.map.lock().expect("map").0.clear();
    edit_record(&mut f, "l-fine", |r| {
        r.state = State::Revoked {
            by_uid: 0,
            reason: None,
        }
    });
    let (again, rows) = f.reopen();
    let rows: Vec<Record> = rows.try_iter().collect();
    assert!(
        matches!(&again.records["l-behind"].state, State::Dropped { reason }
            if reason.contains("earlier than the last time")),
        "{:?}",
        again.records["l-behind"].state
    );
    assert!(detail(&rows, "dropped").contains("earlier than the last time"));
    assert!(
        f.map.lock().expect("map").0.is_empty(),
        "not installed again"
    );
    drop(again);

    // A mark in the past: the wall clock is trusted, and the window computed from it.
    std::fs::write(&mark, "{\"wall_ms\":1000}").expect("mark");
    edit_record(&mut f, "l-fine", |r| r.state = State::Enforced);
    let boot = clock::boot_ns();
    let (again, rows) = f.reopen();
    let rows: Vec<Record> = rows.try_iter().collect();
    let r = &again.records["l-fine"];
    assert_eq!(r.state, State::Enforced);
    let w = r.boot.as_ref().expect("window");
    assert_eq!(w.boot_id, again.boot_id);
    assert!(w.not_after_ns <= clock::boot_ns() + 601 * S && w.not_after_ns >= boot + 590 * S);
    assert_eq!(only_entry(&f).not_after_boot_ns, w.not_after_ns);
    assert!(
        detail(&rows, "enforced").contains("after a reboot"),
        "{rows:?}"
    );
}
