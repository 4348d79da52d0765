//! What counts as a change, at restore: an entry still exactly as snapshotted (left
//! untouched), and a path changed after the lease ended (a conflict: left alone unless
//! `force`), judged against the sealed state. And the sealed state a restore leaves behind
//! ([`reseal`]): every path as the restore left it, except those it left alone.

use std::{collections::HashSet, os::unix::ffi::OsStrExt, path::PathBuf};

use super::{
    manifest::{Entry, Kind, Manifest, Sealed, State},
    snapshot::identities,
    Restored, SnapshotError,
};

/// `st`'s mtime and ctime.
pub fn t(st: &libc::stat) -> ([i64; 2], [i64; 2]) {
    (
        [st.st_mtime, st.st_mtime_nsec],
        [st.st_ctime, st.st_ctime_nsec],
    )
}

/// Whether `st` is still exactly the snapshotted `e` (nothing written, nothing changed).
pub fn same(st: &libc::stat, e: &Entry) -> bool {
    let (m, c) = t(st);
    st.st_ino == e.ino
        && st.st_dev == e.dev
        && st.st_size as u64 == e.size
        && m == e.mtime
        && c == e.ctime
}

/// Why the path now differs from its state when the lease ended, if it does.
pub fn changed(s: Option<&Sealed>, cur: Option<&libc::stat>) -> Option<String> {
    let (s, st) = match (s, cur) {
        (None, None) => return None,
        (None, Some(_)) => return Some("created after the lease ended".into()),
        (Some(_), None) => return Some("removed after the lease ended".into()),
        (Some(s), Some(st)) => (s, st),
    };
    let kind = Kind::of(st.st_mode);
    if kind != s.kind || st.st_ino != s.ino || st.st_dev != s.dev {
        return Some(format!(
            "replaced after the lease ended (was {:?} inode {}, now {:?} inode {})",
            s.kind, s.ino, kind, st.st_ino
        ));
    }
    if st.st_mode & 0o7777 != s.mode || st.st_uid != s.uid || st.st_gid != s.gid {
        return Some(format!(
            "mode or owner changed after the lease ended ({:o} {}:{} → {:o} {}:{})",
            s.mode,
            s.uid,
            s.gid,
            st.st_mode & 0o7777,
            st.st_uid,
            st.st_gid
        ));
    }
    // A directory's times change with its children, which are checked one by one.
    let (m, c) = t(st);
    if kind != Kind::Dir && (m != s.mtime || c != s.ctime || st.st_size as u64 != s.size) {
        return Some(format!(
            "modified after the lease ended (mtime {}.{:09} → {}.{:09})",
            s.mtime[0], s.mtime[1], m[0], m[1]
        ));
    }
    None
}

/// The sealed state after a restore: every path as the restore left it, except the paths
/// it left alone (conflicts, failures), which keep their record, so that they stay changes
/// made after the lease for the next restore too.
pub fn reseal(m: &Manifest, old: &State, out: &Restored) -> Result<State, SnapshotError> {
    let mut now = identities(m)?;
    for (ti, (fresh, before)) in now.iter_mut().zip(&old.targets).enumerate() {
        let base = PathBuf::from(m.targets[ti].path.os());
        // The paths left alone in this target, relative to it.
        let left: HashSet<&[u8]> = out
            .conflicts
            .iter()
            .chain(&out.failed)
            .filter_map(|c| {
                let rel = c.path.strip_prefix(&base).ok()?;
                Some(rel.as_os_str().as_bytes())
            })
            .collect();
        if left.is_empty() {
            continue;
        }
        // A path is kept if it or one of its ancestors was left alone.
        let kept = |rel: &[u8]| {
            left.contains(rel)
                || left.contains(&b""[..])
                || rel
                    .iter()
                    .enumerate()
                    .any(|(i, b)| *b == b'/' && left.contains(&rel[..i]))
        };
        fresh.retain(|s| !kept(&s.rel.0));
        fresh.extend(before.iter().filter(|s| kept(&s.rel.0)).cloned());
    }
    Ok(State {
        sealed_ms: old.sealed_ms,
        retain_until_ms: old.retain_until_ms,
        targets: now,
        restored_ms: Some(crate::time::now() * 1000),
    })
}
