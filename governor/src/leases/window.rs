//! A lease's window on the boot clock, and what a restarted daemon makes of it.
//!
//! When the daemon accepts a lease it converts the lease's start and end (wall-clock
//! seconds, as signed) into `CLOCK_BOOTTIME` instants once ([`BootWindow::from_wall`]) and
//! keeps them in the lease's record with the boot's id. From then on the kernel and the
//! daemon both go by the boot clock: setting the wall clock forward cannot start a scheduled
//! lease early, setting it back cannot extend one.
//!
//! A restarted daemon ([`on_restart`]) reuses the recorded window when it runs on the same
//! boot. After a reboot the boot clock starts again and only the wall clock is left: the
//! window is computed from it again, but only if the wall clock has not gone back behind
//! the highest time a daemon recorded ([`super::wall_mark`]); if it has, the daemon cannot
//! tell how much time passed, and the lease is not installed again. A restart never extends
//! a lease.

use governor_common::LeaseEntry;
use serde::{Deserialize, Serialize};

use super::{
    clock::{self, Now},
    wall_mark::Found,
};

/// Where a lease's start and end lie on one boot's `CLOCK_BOOTTIME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootWindow {
    /// `/proc/sys/kernel/random/boot_id` of the boot these instants belong to.
    pub boot_id: String,
    /// Boot-time nanoseconds from which the lease applies.
    pub not_before_ns: u64,
    /// Boot-time nanoseconds from which it no longer applies.
    pub not_after_ns: u64,
}

impl BootWindow {
    /// The window of a lease valid from `not_before` until `not_after` (unix seconds), with
    /// both clocks read `now` on boot `boot_id`.
    pub fn from_wall(boot_id: &str, not_before: u64, not_after: u64, now: Now) -> BootWindow {
        BootWindow {
            boot_id: boot_id.to_owned(),
            not_before_ns: clock::boot_instant(not_before, now),
            not_after_ns: clock::boot_instant(not_after, now),
        }
    }

    pub fn started(&self, boot_ns: u64) -> bool {
        self.not_before_ns <= boot_ns
    }

    pub fn ended(&self, boot_ns: u64) -> bool {
        self.not_after_ns <= boot_ns
    }

    /// The kernel's entry for this window under the lease's kernel id.
    pub fn entry(&self, lease_id: u64) -> LeaseEntry {
        LeaseEntry {
            lease_id,
            not_before_boot_ns: self.not_before_ns,
            not_after_boot_ns: self.not_after_ns,
        }
    }

    /// Whole seconds left at `boot_ns`, rounded up (0 once ended).
    pub fn left_secs(&self, boot_ns: u64) -> u64 {
        self.not_after_ns
            .saturating_sub(boot_ns)
            .div_ceil(1_000_000_000)
    }

    /// The wall-clock second this window says it is at `boot_ns`, for a lease ending at
    /// `not_after` (unix seconds): what a re-check of the signed lease compares its expiry
    /// with, so that a wall clock set forward does not end a lease the boot clock still
    /// runs, nor one set back revive it.
    pub fn wall_secs_at(&self, not_after: u64, boot_ns: u64) -> u64 {
        not_after.saturating_sub(self.left_secs(boot_ns))
    }
}

/// How a restarted daemon placed a lease on this boot's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// The window the previous daemon recorded on this same boot.
    SameBoot(BootWindow),
    /// Another boot (or a record from before windows were kept): the window computed from
    /// the wall clock, which has not gone back behind the mark.
    FromWallClock(BootWindow),
    /// Another boot, and the wall clock reads earlier than the highest time recorded: the
    /// lease cannot be placed without risking its extension.
    ClockBehind { wall_ms: u64, mark_ms: u64 },
    /// Another boot, and the mark could not be read (why): as above.
    MarkUnreadable(String),
}

impl Restart {
    /// The window, unless the lease cannot be placed.
    pub fn window(&self) -> Option<&BootWindow> {
        match self {
            Restart::SameBoot(w) | Restart::FromWallClock(w) => Some(w),
            Restart::ClockBehind { .. } | Restart::MarkUnreadable(_) => None,
        }
    }

    /// In words, for the lease's history and the lineage.
    pub fn describe(&self) -> String {
        match self {
            Restart::SameBoot(_) => {
                "same boot: the boot-clock window recorded when the lease was accepted".to_owned()
            }
            Restart::FromWallClock(_) => "after a reboot: window computed again from the wall \
                                          clock, which is not behind the last recorded time"
                .to_owned(),
            Restart::ClockBehind { wall_ms, mark_ms } => format!(
                "after a reboot the wall clock ({}) reads earlier than the last time a daemon \
                 recorded ({}): how long the lease already ran cannot be told, so it is not \
                 installed again; issue a new lease once the clock is right",
                crate::time::rfc3339(wall_ms / 1000),
                crate::time::rfc3339(mark_ms / 1000)
            ),
            Restart::MarkUnreadable(why) => format!(
                "after a reboot the last recorded wall-clock time is unknown ({why}): how long \
                 the lease already ran cannot be told, so it is not installed again; issue a \
                 new lease"
            ),
        }
    }
}

/// Where a lease valid from `not_before` until `not_after` (unix seconds) lies on this boot
/// (`boot_id`, clocks read `now`), given the window a previous daemon recorded (`saved`) and
/// the wall clock's high-water mark as the daemon found it at start-up (`mark`).
pub fn on_restart(
    saved: Option<&BootWindow>,
    boot_id: &str,
    now: Now,
    mark: &Found,
    not_before: u64,
    not_after: u64,
) -> Restart {
    if let Some(w) = saved.filter(|w| w.boot_id == boot_id) {
        return Restart::SameBoot(w.clone());
    }
    match mark {
        Found::Mark(mark_ms) if now.wall_ms < *mark_ms => Restart::ClockBehind {
            wall_ms: now.wall_ms,
            mark_ms: *mark_ms,
        },
        Found::Unreadable(why) => Restart::MarkUnreadable(why.clone()),
        Found::None | Found::Mark(_) => {
            Restart::FromWallClock(BootWindow::from_wall(boot_id, not_before, not_after, now))
        }
    }
}

/// The entry the kernel holds for one key that several live leases may share: the lease in
/// force now with the latest end; else the next one to start (installed ahead, the kernel
/// opens it on time); else none. `holders` are (kernel id, window) of the live leases that
/// hold the key, on this boot.
pub fn choose<'a>(
    holders: impl IntoIterator<Item = (u64, &'a BootWindow)>,
    boot_ns: u64,
) -> Option<LeaseEntry> {
    let mut current: Option<(u64, &BootWindow)> = None;
    let mut next: Option<(u64, &BootWindow)> = None;
    for (id, w) in holders {
        if w.ended(boot_ns) {
            continue;
        }
        if w.started(boot_ns) {
            if current.is_none_or(|(_, c)| c.not_after_ns < w.not_after_ns) {
                current = Some((id, w));
            }
        } else if next.is_none_or(|(_, n)| w.not_before_ns < n.not_before_ns) {
            next = Some((id, w));
        }
    }
    current.or(next).map(|(id, w)| w.entry(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn now(wall_secs: u64, boot_secs: u64) -> Now {
        Now {
            wall_ms: wall_secs * 1000,
            boot_ns: boot_secs * S,
        }
    }

    fn window(boot: &str, from: u64, to: u64) -> BootWindow {
        BootWindow {
            boot_id: boot.to_owned(),
            not_before_ns: from * S,
            not_after_ns: to * S,
        }
    }

    #[test]
    fn both_bounds_go_to_the_boot_clock() {
        // Accepted at wall 1000 = boot 50: starts in 30 s, ends in 90 s.
        let w = BootWindow::from_wall("b", 1030, 1090, now(1000, 50));
        assert_eq!(w, window("b", 80, 140));
        assert!(!w.started(79 * S) && w.started(80 * S));
        assert!(!w.ended(139 * S) && w.ended(140 * S));
        let e = w.entry(9);
        assert!(!e.applies_at(79 * S) && e.applies_at(80 * S) && !e.applies_at(140 * S));
        assert_eq!(w.left_secs(139 * S + 1), 1);
        assert_eq!(w.left_secs(140 * S), 0);
        // The wall second the boot clock implies: 1 s left of a lease ending at 1090.
        assert_eq!(w.wall_secs_at(1090, 139 * S), 1089);
    }

    #[test]
    fn the_same_boot_keeps_its_window_whatever_the_wall_clock_says() {
        let saved = window("b", 80, 140);
        // Wall clock set back 500 s: the recorded window stands (the lease stays expired at
        // boot 200, however valid it looks by wall time).
        let mark = Found::Mark(1_100_000);
        let r = on_restart(Some(&saved), "b", now(500, 200), &mark, 1030, 1090);
        assert_eq!(r, Restart::SameBoot(saved.clone()));
        assert!(r.window().is_some_and(|w| w.ended(200 * S)));
    }

    #[test]
    fn another_boot_trusts_the_wall_clock_only_if_it_did_not_go_back() {
        let saved = window("old", 80, 140);
        let mark = Found::Mark(1_040_000);
        // Rebooted: boot clock at 10, wall clock 1050, last recorded 1040: 40 s left.
        let r = on_restart(Some(&saved), "new", now(1050, 10), &mark, 1030, 1090);
        assert_eq!(r, Restart::FromWallClock(window("new", 0, 50)));
        // The wall clock reads earlier than the mark: not placed.
        let r = on_restart(Some(&saved), "new", now(1030, 10), &mark, 1030, 1090);
        assert_eq!(
            r,
            Restart::ClockBehind {
                wall_ms: 1_030_000,
                mark_ms: 1_040_000
            }
        );
        assert!(r.window().is_none());
        assert!(
            r.describe().contains("earlier than the last time"),
            "{}",
            r.describe()
        );
        // An unreadable mark: not placed either, and the reason says why.
        let bad = Found::Unreadable("wall-clock.json: not JSON".into());
        let r = on_restart(Some(&saved), "new", now(1050, 10), &bad, 1030, 1090);
        assert!(
            r.window().is_none() && r.describe().contains("not JSON"),
            "{r:?}"
        );
        // ...but on the same boot the recorded window needs no mark.
        let r = on_restart(Some(&saved), "old", now(1050, 10), &bad, 1030, 1090);
        assert_eq!(r, Restart::SameBoot(saved.clone()));
        // A record without a window (an older daemon's) is placed like another boot's.
        let r = on_restart(None, "new", now(1050, 10), &Found::None, 1030, 1090);
        assert_eq!(r, Restart::FromWallClock(window("new", 0, 50)));
    }

    #[test]
    fn shared_keys_hold_the_lease_in_force_else_the_next_to_start() {
        let a = window("b", 0, 100);
        let b = window("b", 50, 200);
        let c = window("b", 150, 300);
        let pick = |at: u64, ws: &[(u64, &BootWindow)]| choose(ws.iter().copied(), at * S);
        // Both in force: the later end.
        assert_eq!(pick(60, &[(1, &a), (2, &b)]).map(|e| e.lease_id), Some(2));
        // Only `a` in force; `c` waits.
        assert_eq!(pick(10, &[(1, &a), (3, &c)]).map(|e| e.lease_id), Some(1));
        // None in force: the next to start, with its start for the kernel to check.
        let e = pick(120, &[(1, &a), (3, &c)]).expect("c ahead");
        assert_eq!((e.lease_id, e.not_before_boot_ns), (3, 150 * S));
        assert!(!e.applies_at(120 * S));
        // All ended: nothing.
        assert_eq!(pick(400, &[(1, &a), (3, &c)]), None);
    }
}
