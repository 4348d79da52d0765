//! The two clocks a lease lives on. Lease files speak wall-clock time (unix seconds, what an
//! operator reads and signs); the kernel checks a lease's start and end against
//! `CLOCK_BOOTTIME`, which setting the wall clock does not move. The daemon converts once,
//! when it accepts a lease: the time to its start and to its end on the wall clock become
//! boot-time instants ([`super::window`]), and from then on no change of the wall clock can
//! bring the start closer or push the end away.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now (wall clock).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Unix seconds now (wall clock).
pub fn wall_secs() -> u64 {
    wall_ms() / 1000
}

/// Nanoseconds on `CLOCK_BOOTTIME`.
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Both clocks, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Unix milliseconds.
    pub wall_ms: u64,
    /// `CLOCK_BOOTTIME` nanoseconds.
    pub boot_ns: u64,
}

impl Now {
    pub fn read() -> Now {
        Now {
            wall_ms: wall_ms(),
            boot_ns: boot_ns(),
        }
    }
}

/// The boot-time deadline matching the wall-clock instant `not_after` (unix seconds), given
/// both clocks read now. An instant already past gives `boot_now` (expired at once).
pub fn boot_deadline(not_after_secs: u64, wall_now_ms: u64, boot_now_ns: u64) -> u64 {
    let left_ms = (not_after_secs.saturating_mul(1000)).saturating_sub(wall_now_ms);
    boot_now_ns.saturating_add(left_ms.saturating_mul(1_000_000))
}

/// The boot-time instant matching the wall-clock instant `at_secs` (unix seconds), past or
/// future, given both clocks read `now`; an instant before boot gives 0.
pub fn boot_instant(at_secs: u64, now: Now) -> u64 {
    let at_ms = at_secs.saturating_mul(1000);
    if at_ms >= now.wall_ms {
        boot_deadline(at_secs, now.wall_ms, now.boot_ns)
    } else {
        let ago_ns = (now.wall_ms - at_ms).saturating_mul(1_000_000);
        now.boot_ns.saturating_sub(ago_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_carry_the_time_left_over_to_boot_time() {
        // 90 s left on the wall clock.
        assert_eq!(
            boot_deadline(1_000_090, 1_000_000_000, 5_000_000_000),
            95_000_000_000
        );
        // Past or now: expired at once.
        assert_eq!(boot_deadline(1_000_000, 1_000_000_500, 7), 7);
        assert_eq!(boot_deadline(0, 0, 7), 7);
        // Sub-second precision from the wall clock.
        assert_eq!(boot_deadline(10, 9_250, 0), 750_000_000);
    }

    #[test]
    fn instants_past_and_future_keep_their_distance_from_now() {
        let now = Now {
            wall_ms: 1_000_000_000,
            boot_ns: 50_000_000_000,
        };
        // 30 s ahead, 20 s ago, now.
        assert_eq!(boot_instant(1_000_030, now), 80_000_000_000);
        assert_eq!(boot_instant(999_980, now), 30_000_000_000);
        assert_eq!(boot_instant(1_000_000, now), 50_000_000_000);
        // Before this boot: 0, not an underflow.
        assert_eq!(boot_instant(0, now), 0);
    }

    #[test]
    fn the_boot_clock_runs() {
        let a = boot_ns();
        assert!(a > 0);
        assert!(boot_ns() >= a);
    }
}
