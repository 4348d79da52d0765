//! Mounts made while a policy is loaded: a filesystem mounted inside a protected tree after
//! the policy's scan (`policy::linked`) has its root registered in `GOV_LINKED` too, so that
//! hooks given no mount (`inode_setxattr`, `inode_setattr`, the inode hooks of stacked
//! filesystems) decide its files by the tree's rule.
//!
//! Agents cannot mount; the host can, at any time. A thread waits for the mount table to
//! change (`/proc/self/mountinfo` signals `POLLPRI` on every mount and unmount in the
//! daemon's mount namespace), reads it, and registers the roots of new mounts below
//! protected paths in the current generation's map (`Enforcer::register_mounts`). Between
//! the mount and that registration (the thread's wake-up) such a mount's files are decided
//! through hooks that are given the mount, and by the walk within it through the others.

use std::{
    io::{Read, Seek},
    os::fd::AsRawFd,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use governor_common::{InodeKey, ProtectedRule};

use super::loader::Enforcer;
use crate::host::inode;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mount points listed in `mountinfo` text (its fifth field, with the kernel's octal
/// escapes `\040` and the like undone).
pub fn mountpoints(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect()
}

fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let octal = |c: u8| (b'0'..=b'7').contains(&c).then(|| c - b'0');
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let (b'\\', Some(&[x, y, z])) = (
            b[i],
            b.get(i + 1..i + 4)
                .and_then(|s| <&[u8; 3]>::try_from(s).ok()),
        ) {
            if let (Some(x), Some(y), Some(z)) = (octal(x), octal(y), octal(z)) {
                out.push(x << 6 | y << 3 | z);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// For each mount point in `points` strictly below one of `roots` (canonical protected paths
/// with their rules; the deepest applies), the identity of the root of what is mounted
/// there now, with that rule. A protected path that is itself a mount point is its own
/// protected inode and needs nothing.
pub fn registrations(
    roots: &[(PathBuf, ProtectedRule)],
    points: &[PathBuf],
) -> Vec<(PathBuf, InodeKey, ProtectedRule)> {
    let mut out = Vec::new();
    for point in points {
        let deepest = roots
            .iter()
            .filter(|(root, _)| point != root && point.starts_with(root))
            .max_by_key(|(root, _)| root.components().count());
        let Some((_, rule)) = deepest else { continue };
        if let Ok(meta) = std::fs::metadata(point) {
            out.push((point.clone(), inode::key(point, &meta), *rule));
        }
    }
    out
}

/// Starts the thread that registers new mounts in `enforcer`'s current generation for as
/// long as the daemon runs. Failures are logged; the thread ends only if the mount table
/// cannot be watched at all.
pub fn watch(enforcer: Arc<Mutex<Enforcer>>) {
    let spawned = std::thread::Builder::new()
        .name("governor-mounts".into())
        .spawn(move || {
            if let Err(e) = run(&enforcer) {
                tracing::warn!(error = %e,
                    "cannot watch the mount table: filesystems mounted inside protected paths \
                     from now on are registered at the next policy load only");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the mount watcher");
    }
}

fn run(enforcer: &Mutex<Enforcer>) -> std::io::Result<()> {
    let mut file = std::fs::File::open(MOUNTINFO)?;
    loop {
        let mut text = String::new();
        file.rewind()?;
        file.read_to_string(&mut text)?;
        let points = mountpoints(&text);
        let registered = enforcer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register_mounts(&points);
        for path in registered {
            tracing::info!(mount = %path.display(),
                "a filesystem mounted inside a protected path: its root is protected by inode");
        }
        wait_for_change(&file)?;
    }
}

/// Blocks until the mount table changes (`POLLPRI` on mountinfo).
fn wait_for_change(file: &std::fs::File) -> std::io::Result<()> {
    let mut fds = [libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    }];
    loop {
        // SAFETY: poll(2) on one valid descriptor this function borrows.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, -1) };
        if n > 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: u32) -> ProtectedRule {
        ProtectedRule {
            rule_id: id,
            deny_mask: 2,
            lease_mask: 0,
            agent_mask: 0,
        }
    }

    #[test]
    fn mountinfo_points_are_unescaped() {
        let text = "36 35 98:0 / /srv/prod/data\\040dir rw,noatime - ext4 /dev/sda1 rw\n\
                    37 35 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(
            mountpoints(text),
            vec![PathBuf::from("/srv/prod/data dir"), PathBuf::from("/proc")]
        );
    }

    #[test]
    fn only_mounts_strictly_below_a_root_register_with_the_deepest_rule() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let top = tmp.path().join("top");
        let deep = top.join("deep");
        let inner = deep.join("inner");
        let outside = tmp.path().join("outside");
        for d in [&inner, &outside] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let roots = vec![(top.clone(), rule(1)), (deep.clone(), rule(2))];
        let regs = registrations(&roots, &[inner.clone(), outside.clone(), deep.clone()]);
        assert_eq!(regs.len(), 2, "{regs:?}");
        assert_eq!(regs[0].0, inner);
        assert_eq!(regs[0].2.rule_id, 2, "the deepest protected path decides");
        assert_eq!(regs[1].0, deep);
        assert_eq!(
            regs[1].2.rule_id, 1,
            "a protected path mounted over is below its parent"
        );
    }
}
