//! The directory cache (governor-ebpf `dir_cache.rs`) never outlives what it rests on. An
//! agent works in an unprotected directory, so the kernel keeps that directory as lying
//! under no protected inode; then the directory is renamed under a protected one, the mount
//! it lives on is moved under one, or it is removed and a protected directory made in its
//! place, all by a non-agent — and the agent's next unlink there is refused. A protected file
//! in a kept directory is refused too: the target itself is always checked.

use std::path::Path;

use aya::maps::{HashMap, MapData};
use governor_common::{maps, DirClear, DirKey};
use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, daemon_map, mount_tmpfs, move_mount, policy_denying,
    require_bpf_lsm, scratch, unmount, write, Daemon,
};

/// Entries in the running daemon's `GOV_DIR_CACHE`.
fn entries() -> usize {
    let map: HashMap<MapData, DirKey, DirClear> = daemon_map(maps::DIR_CACHE);
    map.keys().filter_map(Result::ok).count()
}

/// The agent removes `file`, which must work, and so teaches the kernel its directory.
fn removed(d: &Daemon, agent: &str, file: &Path, what: &str) {
    assert_ok(&d.as_agent(agent, &["rm", &s(file)]), what);
    assert!(!file.exists(), "{what}: still there");
}

/// The agent's removal of `file` is refused and the file stays.
fn refused(d: &Daemon, agent: &str, file: &Path, what: &str) {
    assert_eperm(&d.as_agent(agent, &["rm", &s(file)]), what);
    assert!(file.exists(), "{what}: the file is gone");
}

#[test]
fn lsm_dir_cache_never_outlives_what_it_rests_on() {
    require_bpf_lsm();
    let dir = scratch("dir-cache");
    let prod = dir.join("prod");
    let free = dir.join("free");
    let lone = free.join("lone.txt");
    for f in ["x1", "x2", "a/f1", "a/f2", "a/f3", "b/f1", "mnt/"] {
        if let Some(d) = f.strip_suffix('/') {
            std::fs::create_dir_all(free.join(d)).expect("mkdir");
        } else {
            write(&free.join(f), "junk");
        }
    }
    write(&lone, "precious");
    write(&prod.join("keep.txt"), "precious");
    std::fs::create_dir_all(prod.join("mnt")).expect("mkdir prod/mnt");
    mount_tmpfs("dc-inner", &free.join("mnt"));
    for f in ["m1", "m2"] {
        write(&free.join("mnt").join(f), "junk");
    }
    let agent = "agent-dc";
    let mut policy = policy_denying(agent, "enforce", &prod, "modify");
    policy.push_str(&format!(
        "\n[[protect]]\npath = \"{}\"\ndeny = [\"modify\"]\n",
        lone.display()
    ));
    let d = Daemon::start(&dir, &policy);
    assert_eq!(entries(), 0, "nothing kept before any agent works");

    // A protected file in a kept directory: the target itself is checked.
    removed(&d, agent, &free.join("x1"), "rm free/x1");
    assert!(entries() >= 1, "the agent's directory was kept");
    removed(
        &d,
        agent,
        &free.join("x2"),
        "rm free/x2, its directory kept",
    );
    refused(
        &d,
        agent,
        &lone,
        "rm free/lone.txt, protected, in a kept directory",
    );

    // The kept directory is renamed under the protected one.
    removed(&d, agent, &free.join("a/f1"), "rm free/a/f1");
    removed(&d, agent, &free.join("a/f2"), "rm free/a/f2, a/ kept");
    assert_ok(
        &as_host(&["mv", &s(&free.join("a")), &s(&prod.join("a"))]),
        "host renames a/ into prod",
    );
    refused(
        &d,
        agent,
        &prod.join("a/f3"),
        "rm a/f3 after a/ moved into prod",
    );

    // The mount the kept directory lives on is moved under the protected directory.
    removed(&d, agent, &free.join("mnt/m1"), "rm free/mnt/m1");
    move_mount(&free.join("mnt"), &prod.join("mnt"));
    refused(
        &d,
        agent,
        &prod.join("mnt/m2"),
        "rm m2 after its mount moved",
    );
    unmount(&prod.join("mnt"));

    // The kept directory is removed and a protected one made, perhaps at its very address.
    removed(&d, agent, &free.join("b/f1"), "rm free/b/f1");
    assert_ok(&as_host(&["rmdir", &s(&free.join("b"))]), "host removes b/");
    write(&prod.join("b/f2"), "precious");
    refused(
        &d,
        agent,
        &prod.join("b/f2"),
        "rm prod/b/f2, made after b/ went",
    );

    assert_eq!(
        std::fs::read_to_string(prod.join("keep.txt")).expect("read keep"),
        "precious"
    );
}
