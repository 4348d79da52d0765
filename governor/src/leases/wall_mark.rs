//! The wall clock's high-water mark: the latest wall-clock time a daemon saw, kept in
//! `<state>/wall-clock.json` and only ever raised. After a reboot the boot clock tells
//! nothing about how much time passed, and the wall clock is all a daemon has to place a
//! lease in time; the mark says whether that wall clock went back since ([`super::window`]).
//!
//! The daemon raises the mark on every lease tick, writing it at most once per
//! [`WRITE_EVERY`] (atomically: temporary file, fsync, rename) and whenever a lease is
//! accepted. A mark file that cannot be read is reported, and leases from another boot are
//! not installed again (nothing says the wall clock did not go back); the next write
//! replaces it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{self, StoreError};
use crate::host::files;

/// File name of the mark in the state directory.
pub const FILE: &str = "wall-clock.json";
/// The most time between two writes of a rising mark (boot-clock nanoseconds).
pub const WRITE_EVERY_NS: u64 = 1_000_000_000;
/// Largest mark file read.
const MAX_BYTES: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct OnDisk {
    /// Unix milliseconds.
    wall_ms: u64,
}

/// What the state directory said about the wall clock when the daemon started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No daemon recorded a mark (a new state directory).
    None,
    Mark(u64),
    /// The file is there but unreadable: the message says why.
    Unreadable(String),
}

/// The mark, and when it was last written.
pub struct WallMark {
    path: PathBuf,
    mark_ms: Option<u64>,
    written_at_boot_ns: Option<u64>,
}

impl WallMark {
    /// Reads the mark in `state_dir`.
    pub fn open(state_dir: &Path) -> (WallMark, Found) {
        let path = state_dir.join(FILE);
        let found = match files::read_bounded(&path, MAX_BYTES) {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(d) => Found::Mark(d.wall_ms),
                Err(e) => Found::Unreadable(format!(
                    "{}: not governor's wall-clock mark ({e}); leases from an earlier boot are \
                     not installed again until the daemon rewrites it",
                    path.display()
                )),
            },
            Err(files::ReadError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Found::None
            }
            Err(e) => Found::Unreadable(e.to_string()),
        };
        let mark_ms = match found {
            Found::Mark(ms) => Some(ms),
            _ => None,
        };
        (
            WallMark {
                path,
                mark_ms,
                written_at_boot_ns: None,
            },
            found,
        )
    }

    /// The highest wall-clock time recorded (unix milliseconds).
    #[cfg(test)]
    pub fn mark_ms(&self) -> Option<u64> {
        self.mark_ms
    }

    /// Raises the mark to `wall_ms` if that is later, writing it if `force` or if the last
    /// write is [`WRITE_EVERY_NS`] old at `boot_ns`. A wall clock behind the mark leaves it.
    pub fn advance(&mut self, wall_ms: u64, boot_ns: u64, force: bool) -> Result<(), StoreError> {
        if self.mark_ms.is_some_and(|m| m >= wall_ms) {
            return Ok(());
        }
        let due = force
            || self
                .written_at_boot_ns
                .is_none_or(|at| boot_ns.saturating_sub(at) >= WRITE_EVERY_NS);
        if !due {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&OnDisk { wall_ms }).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        store::write_atomic(&self.path, &bytes)?;
        self.mark_ms = Some(wall_ms);
        self.written_at_boot_ns = Some(boot_ns);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        crate::host::scratch(&format!("mark-{name}"))
    }

    #[test]
    fn the_mark_only_rises_and_survives_a_restart() {
        let dir = scratch("rise");
        let (mut m, found) = WallMark::open(&dir);
        assert_eq!(found, Found::None);
        m.advance(5_000, 0, false).expect("first write");
        assert_eq!(m.mark_ms(), Some(5_000));
        // Behind the mark: unchanged, on disk too.
        m.advance(4_000, 10 * WRITE_EVERY_NS, true).expect("no-op");
        assert_eq!(WallMark::open(&dir).1, Found::Mark(5_000));
        // Later, but within the interval since the last write: not written yet.
        m.advance(6_000, 1, false).expect("not due");
        assert_eq!(WallMark::open(&dir).1, Found::Mark(5_000));
        m.advance(7_000, WRITE_EVERY_NS, false).expect("due");
        assert_eq!(WallMark::open(&dir).1, Found::Mark(7_000));
        m.advance(8_000, WRITE_EVERY_NS + 1, true).expect("forced");
        let (again, found) = WallMark::open(&dir);
        assert_eq!((again.mark_ms(), found), (Some(8_000), Found::Mark(8_000)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unreadable_mark_is_reported_and_counts_as_none() {
        let dir = scratch("bad");
        std::fs::write(dir.join(FILE), b"{").expect("write");
        let (m, found) = WallMark::open(&dir);
        assert_eq!(m.mark_ms(), None);
        match found {
            Found::Unreadable(why) => assert!(why.contains(FILE), "{why}"),
            other => panic!("expected unreadable, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
