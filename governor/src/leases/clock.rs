//! The two clocks a lease lives on. Lease files speak wall-clock time (unix seconds, what an
//! operator reads and signs); the kernel checks expiry against `CLOCK_BOOTTIME`, which
//! setting the wall clock does not move. The daemon converts once, when it installs an entry:
//! the time left on the wall clock becomes a boot-time deadline, and from then on no change
//! of the wall clock can stretch it.

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

/// The boot-time deadline matching the wall-clock instant `not_after` (unix seconds), given
/// both clocks read now. An instant already past gives `boot_now` (expired at once).
pub fn boot_deadline(not_after_secs: u64, wall_now_ms: u64, boot_now_ns: u64) -> u64 {
    let left_ms = (not_after_secs.saturating_mul(1000)).saturating_sub(wall_now_ms);
    boot_now_ns.saturating_add(left_ms.saturating_mul(1_000_000))
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
    fn the_boot_clock_runs() {
        let a = boot_ns();
        assert!(a > 0);
        assert!(boot_ns() >= a);
    }
}
