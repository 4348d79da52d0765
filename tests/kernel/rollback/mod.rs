//! Rollback: a lease on a directory tree snapshots it before the kernel allows anything, and
//! `governor rollback` gives the tree back byte- and metadata-identical to a manifest taken
//! before the lease (content, mode, owner, mtimes, xattrs and ACLs, symlinks, hardlinks; what
//! the agent created is gone, what it deleted or renamed away is back under its name), on
//! tmpfs, ext4 and btrfs (where the snapshot is a reflink). Snapshots that cannot be taken
//! (over budget, disk full) refuse the lease; a rollback of a live lease needs `--revoke`; an
//! outside edit after the lease ended is a conflict, left alone unless `--force`; `halt
//! --rollback` restores; a daemon restart loses nothing; and `lineage stats` counts what was
//! blocked and how long recovery took.
//!
//! This file holds the shared policy, the sample tree, the agent's destructive script and the
//! CLI helpers; `exact` has the scenario on every filesystem (with a restart, and the safety
//! figures), `refusals` the refusals, conflicts and `halt --rollback`, `harness` the manifest
//! and filesystems themselves (no daemon).
//!
//! May import the test library (`governor_kernel_tests`); the kernel tests' folders import
//! nothing from each other.

use std::{
    os::unix::fs::{chown, symlink, PermissionsExt},
    path::{Path, PathBuf},
    process::Output,
    thread,
    time::{Duration, Instant},
};

use governor_kernel_tests::loopfs::{assert_fs, FsKind, LoopFs, Mount};
use governor_kernel_tests::operator::{
    err_stderr, governor, lease_id, leases, listed, ok_stdout, trusted_dir, Operator,
};
use governor_kernel_tests::paths::s;
use governor_kernel_tests::tree::{acl_granting, set_mtime, set_xattr, Manifest};
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, pin_dir_for, require_bpf_lsm, scratch, state_dir_for, Daemon,
};
use serde_json::Value;

mod exact;
mod harness;
mod refusals;

const AGENT: &str = "ops";
const OPS_CGROUP: &str = "/sys/fs/cgroup/governor-test/ops";

/// A policy with agent `ops` whose every file class (`modify`) on each of `trees` needs a
/// lease of one approval, and a `[rollback]` table with `max_bytes` when given.
fn policy(trees: &[&Path], max_bytes: Option<u64>) -> String {
    let mut p = format!(
        r#"
[policy]
name = "rollback"
owner = "platform-team@example.com"

[[agents]]
name = "{AGENT}"
cgroup = "governor-test/{AGENT}"
max_lease_ttl = "1h"

# One operator may approve every class the tests lease (the high-risk ones default to two).
[classes.delete]
approvals = 1

[classes.truncate]
approvals = 1

[classes.chattr]
approvals = 1
"#
    );
    if let Some(max) = max_bytes {
        p += &format!("\n[rollback]\nmax_bytes = {max}\n");
    }
    for t in trees {
        p += &format!(
            "\n[[protect]]\npath = \"{}\"\nlease = [\"modify\"]\n",
            t.display()
        );
    }
    p
}

/// The daemon's snapshot store in the VM (`<state dir>/snapshots`).
fn snapshots_dir(dir: &Path) -> PathBuf {
    state_dir_for(&pin_dir_for(dir)).join("snapshots")
}

/// An mtime a test sets on every path of the sample tree (with `i` ns added), far from now
/// and with nanoseconds, so a restore that loses either shows.
const OLD_NS: i128 = 1_500_000_000_987_654_321;

/// Fills the empty directory `root` with one of everything a rollback must give back: files
/// (one 256 KiB of varied bytes), a read-only one, one owned by another user, nested
/// directories (one 0750, one empty), a hardlink pair, symlinks (relative, absolute within the
/// tree, dangling), xattrs (`trusted.*` everywhere; `user.*` where the filesystem has them:
/// not tmpfs, which lacks them on 6.1), an ACL, and fixed mtimes on every path.
fn sample_tree(root: &Path, kind: FsKind) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    };
    w("conf/app.conf", b"listen = 8080\nworkers = 4\n");
    w("conf/settings", b"mode = production\n");
    w("conf/readonly", b"do not touch\n");
    let big: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    w("data/big.bin", &big);
    w("data/a.txt", b"alpha\n");
    w("data/owned", b"someone else's\n");
    w("docs/old/1.md", b"# one\n");
    w("docs/old/2.md", b"# two\n");
    w("docs/old/nested/3.md", b"# three\n");
    w("links/hard1", b"shared inode\n");
    w("private/secret", b"s3cret\n");
    std::fs::create_dir_all(root.join("empty")).expect("mkdir empty");
    std::fs::hard_link(root.join("links/hard1"), root.join("links/hard2")).expect("link");
    symlink("1.md", root.join("docs/old/sym")).expect("symlink");
    symlink("../conf/app.conf", root.join("links/rel")).expect("symlink");
    symlink(root.join("data/a.txt"), root.join("links/abs")).expect("symlink");
    symlink("nowhere", root.join("links/dangling")).expect("symlink");
    let mode = |rel: &str, m: u32| {
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(m))
            .expect("chmod");
    };
    mode("conf/readonly", 0o444);
    mode("conf/app.conf", 0o640);
    mode("private", 0o750);
    chown(root.join("data/owned"), Some(1234), Some(5678)).expect("chown");
    for rel in ["conf/app.conf", "docs/old/1.md", "links/hard1", "private"] {
        set_xattr(&root.join(rel), "trusted.governor-test", rel.as_bytes());
        if kind != FsKind::Tmpfs {
            set_xattr(&root.join(rel), "user.governor-test", b"user value");
        }
    }
    set_xattr(
        &root.join("private/secret"),
        "system.posix_acl_access",
        &acl_granting(4242, 4),
    );
    // Every path's mtime, children before their directory (setting one touches nothing else).
    let m = Manifest::of(root);
    let mut paths: Vec<&PathBuf> = m.entries.keys().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, rel) in paths.into_iter().enumerate() {
        set_mtime(&root.join(rel), OLD_NS + i as i128);
    }
}

/// What the agent does to the sample tree at `root`, as one shell script: `rm -rf` of a
/// subtree, an overwrite, a truncate, chmods (a file and a directory), a chown, a rename
/// inside the tree, new files and a new directory, a file replaced by rename-over (`mv new
/// old`), a write through a hardlink, a hardlink removed, a symlink replaced, an xattr
/// changed and one removed, and an mtime set.
fn agent_script(root: &Path) -> String {
    format!(
        r#"set -eu
cd '{}'
rm -rf docs/old
printf 'overwritten\n' > conf/app.conf
truncate -s 100 data/big.bin
chmod 600 conf/app.conf
chmod 700 private
chown 1:1 data/owned
mv data/a.txt data/renamed.txt
mkdir new
printf 'new\n' > new/file
printf 'extra\n' > conf/extra
printf 'replacement\n' > conf/settings.tmp
mv conf/settings.tmp conf/settings
printf 'more\n' >> links/hard1
rm links/hard2
ln -sfn elsewhere links/rel
python3 -c 'import os; os.setxattr("private", "trusted.governor-test", b"changed"); os.removexattr("links/hard1", "trusted.governor-test")'
touch -d @0 empty
"#,
        root.display()
    )
}

/// `governor lease submit FILE --json`, which must succeed: the daemon's view of the lease,
/// with its `snapshot`.
fn submit_json(file: &Path) -> Value {
    let out = ok_stdout(
        &governor(&["lease", "submit", &s(file), "--json"]),
        &format!("lease submit {}", file.display()),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lease submit --json: {e}: {out}"))
}

/// The lease id and snapshot method of a `submit --json` reply; checks the snapshot's
/// figures are there.
fn id_and_method(v: &Value) -> (String, String) {
    let id = v["id"].as_str().unwrap_or_else(|| panic!("no id: {v}"));
    let snap = &v["snapshot"];
    for field in ["files", "bytes", "took_ms"] {
        assert!(snap[field].is_u64(), "snapshot.{field} missing: {v}");
    }
    let method = snap["method"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot.method: {v}"));
    (id.to_owned(), method.to_owned())
}

/// `governor rollback ARGS...`.
fn rollback(args: &[&str]) -> Output {
    let mut all = vec!["rollback"];
    all.extend_from_slice(args);
    governor(&all)
}

/// Fails if the daemon enforces any lease (`lease list --all --json`): what a refused
/// submit must leave.
fn assert_nothing_enforced(what: &str) {
    let live: Vec<Value> = leases()
        .into_iter()
        .filter(|l| l["state"] == "enforced")
        .collect();
    assert!(live.is_empty(), "{what}: leases enforced: {live:#?}");
}

/// `governor lineage stats --json`'s `safety`, once `ready` holds for it (the lineage writer
/// commits in batches), within 30 s.
fn safety_when(ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ok_stdout(&governor(&["lineage", "stats", "--json"]), "lineage stats");
        let v: Value = serde_json::from_str(&out).expect("lineage stats json");
        if ready(&v["safety"]) {
            return v["safety"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "lineage stats' safety never got there within 30 s: {v:#}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Thaws the agent's cgroup on drop, so a failed halt test cannot leave later tests frozen.
struct Thaw;

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("{OPS_CGROUP}/cgroup.freeze"), "0");
    }
}
