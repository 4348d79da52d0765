//! Times in the lineage: the kernel stamps events with `CLOCK_BOOTTIME`; rows also carry
//! Unix time, derived with the offset between the two clocks measured once, and the boot's
//! id (`/proc/sys/kernel/random/boot_id`), which makes boot times unambiguous across reboots.

use std::path::Path;

/// This boot's identity and the offset from boot time to Unix time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootClock {
    pub boot_id: String,
    /// Unix ns minus boot ns, as measured at [`BootClock::now`].
    pub offset_ns: i64,
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl BootClock {
    /// Reads the boot id and measures the offset now.
    pub fn now() -> std::io::Result<BootClock> {
        Self::with_boot_id_file(Path::new("/proc/sys/kernel/random/boot_id"))
    }

    fn with_boot_id_file(path: &Path) -> std::io::Result<BootClock> {
        let boot_id = std::fs::read_to_string(path)?.trim().to_owned();
        let offset_ns = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME);
        Ok(BootClock { boot_id, offset_ns })
    }

    /// Unix ns of a kernel boot-time stamp.
    pub fn wall_ns(&self, boot_ns: u64) -> i64 {
        (boot_ns as i64).saturating_add(self.offset_ns)
    }

    /// Unix ns now.
    pub fn now_ns() -> i64 {
        clock_ns(libc::CLOCK_REALTIME)
    }
}

/// One moment on both clocks: boot time measures a duration (immune to the wall clock being
/// set), Unix time places it across reboots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// `CLOCK_BOOTTIME`, ns.
    pub boot_ns: u64,
    /// Unix ns.
    pub unix_ns: i64,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp {
            boot_ns: u64::try_from(clock_ns(libc::CLOCK_BOOTTIME)).unwrap_or(0),
            unix_ns: clock_ns(libc::CLOCK_REALTIME),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_times_map_to_now() {
        let c = BootClock::now().expect("boot id");
        assert_eq!(c.boot_id.len(), 36, "{}", c.boot_id);
        let wall = c.wall_ns(clock_ns(libc::CLOCK_BOOTTIME) as u64);
        assert!((wall - BootClock::now_ns()).abs() < 1_000_000_000);
    }

    #[test]
    fn a_stamp_is_one_moment_on_both_clocks() {
        let c = BootClock::now().expect("boot id");
        let s = Stamp::now();
        assert!(
            (c.wall_ns(s.boot_ns) - s.unix_ns).abs() < 1_000_000_000,
            "{s:?}"
        );
        assert!(
            Stamp::now().boot_ns >= s.boot_ns,
            "boot time never goes back"
        );
    }
}
