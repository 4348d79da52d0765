//! What rollback refuses and reports, with one daemon: a lease whose snapshot would break the
//! byte budget, or cannot be written (disk full), is refused with the reason and installs
//! nothing (no lease, no snapshot left behind); a rollback of a live lease needs `--revoke`;
//! an outside edit after the lease ended is a conflict, reported and left alone, until
//! `--force`; and `halt --rollback` freezes the agent, ends its lease and restores.

use super::*;

const MIB: usize = 1024 * 1024;

#[test]
fn lsm_rollback_refuses_what_it_cannot_snapshot_reports_conflicts_and_halts_with_rollback() {
    require_bpf_lsm();
    let dir = scratch("rollback-refusals");
    // 3 MiB against a budget of 2 MiB; 1 MiB against a 64 KiB disk; the sample tree.
    let (big, small, work) = (dir.join("big"), dir.join("small"), dir.join("work"));
    for f in ["f0", "f1", "f2"] {
        governor_kernel_tests::write(&big.join(f), &"b".repeat(MIB));
    }
    governor_kernel_tests::write(&small.join("file1m"), &"s".repeat(MIB));
    std::fs::create_dir(&work).expect("mkdir work");
    assert_fs(&work, FsKind::Tmpfs);
    sample_tree(&work, FsKind::Tmpfs);
    let _ = std::fs::remove_dir_all(trusted_dir());
    let alice = Operator::new(&dir, "alice", true);
    let d = Daemon::start(&dir, &policy(&[&big, &small, &work], Some(2 * MIB as u64)));
    let scope = |p: &Path| format!("modify:{}", s(p));

    // Over the budget: refused, saying so; nothing installed, no snapshot kept.
    let l = alice.issue(&dir.join("big.lease"), AGENT, &[&scope(&big)], "30m");
    let e = err_stderr(
        &governor(&["lease", "submit", &s(&l)]),
        "a lease over the snapshot budget",
    );
    assert!(e.contains("snapshot") && e.contains("budget"), "{e}");
    d.refused(AGENT, "", &["rm", &s(&big.join("f0"))], "unlink");
    assert_nothing_enforced("after a lease over the budget");
    assert!(
        !snapshots_dir(&dir).join(lease_id(&l)).exists(),
        "a refused lease left its snapshot"
    );

    // Disk full while snapshotting: refused with the reason; nothing installed, and nothing
    // of the snapshot left on the full disk.
    let store = snapshots_dir(&dir);
    let made_store = !store.exists();
    {
        let tiny = Mount::tmpfs(&store, "size=64k");
        let file = small.join("file1m");
        let l = alice.issue(&dir.join("full.lease"), AGENT, &[&scope(&file)], "30m");
        let e = err_stderr(
            &governor(&["lease", "submit", &s(&l)]),
            "a lease whose snapshot fills the disk",
        );
        assert!(e.contains("snapshot") && e.contains("No space left"), "{e}");
        d.refused(AGENT, "", &["rm", &s(&file)], "unlink");
        assert_nothing_enforced("after a snapshot that filled the disk");
        let left: Vec<PathBuf> = std::fs::read_dir(&tiny.at)
            .expect("list the full store")
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(left.is_empty(), "left on the full disk: {left:?}");
    }
    if made_store {
        std::fs::remove_dir(&store).expect("remove the mount point the test made");
    }

    // A live lease is rolled back only with --revoke.
    let before = Manifest::of(&work);
    let l = alice.issue(&dir.join("work.lease"), AGENT, &[&scope(&work)], "30m");
    let (id, method) = id_and_method(&submit_json(&l));
    assert_eq!(method, "copy", "tmpfs to the state directory's tmpfs");
    let script = agent_script(&work);
    assert_ok(
        &d.as_agent(AGENT, &["sh", "-c", &script]),
        "the agent's changes",
    );
    let changed = Manifest::of(&work);
    let e = err_stderr(
        &rollback(&["--lease", &id]),
        "a rollback of a live lease without --revoke",
    );
    assert!(e.contains("--revoke"), "{e}");
    changed.assert_same(&Manifest::of(&work), "after the refused rollback");
    assert_eq!(
        listed(&id).map(|l| l["state"].clone()),
        Some("enforced".into())
    );

    // After the lease ended, a plain host process edits a file: the rollback restores the
    // rest, reports that file as a conflict and leaves it alone; --force restores it too.
    ok_stdout(
        &governor(&["lease", "revoke", &id, "--reason", "done"]),
        "revoke",
    );
    let edited = work.join("conf/app.conf");
    assert_ok(
        &as_host(&[
            "sh",
            "-c",
            &format!("printf 'host edit\\n' >> '{}'", edited.display()),
        ]),
        "the host's edit",
    );
    let host_version = std::fs::read(&edited).expect("read the edited file");
    let e = err_stderr(
        &rollback(&["--lease", &id]),
        "a rollback over an outside edit",
    );
    assert!(
        e.contains(&format!("conflict: {}", s(&edited))),
        "the conflict is named: {e}"
    );
    assert_eq!(
        std::fs::read(&edited).expect("read the edited file"),
        host_version,
        "the outside edit was overwritten without --force"
    );
    let diff = before.diff(&Manifest::of(&work));
    assert!(
        !diff.is_empty() && diff.iter().all(|l| l.starts_with("conf/app.conf:")),
        "all but the conflict restored: {diff:#?}"
    );
    ok_stdout(&rollback(&["--lease", &id, "--force"]), "rollback --force");
    before.assert_same(&Manifest::of(&work), "after rollback --force");

    // halt --rollback: the agent frozen, its lease ended, the tree restored, in one step.
    let _thaw = Thaw;
    let l = alice.issue(&dir.join("halt.lease"), AGENT, &[&scope(&work)], "30m");
    let (id, _) = id_and_method(&submit_json(&l));
    assert_ok(
        &d.as_agent(AGENT, &["sh", "-c", &script]),
        "the agent's changes before the halt",
    );
    assert!(!before.diff(&Manifest::of(&work)).is_empty());
    ok_stdout(
        &governor(&[
            "halt",
            "--agent",
            AGENT,
            "--rollback",
            "--reason",
            "incident",
        ]),
        "halt --rollback",
    );
    let events = std::fs::read_to_string(format!("{OPS_CGROUP}/cgroup.events")).expect("events");
    assert!(events.contains("frozen 1"), "the agent is frozen: {events}");
    assert_eq!(
        listed(&id).map(|l| l["state"].clone()),
        Some("revoked".into())
    );
    before.assert_same(&Manifest::of(&work), "after halt --rollback");
    ok_stdout(&governor(&["resume", "--agent", AGENT]), "resume");
    d.refused(
        AGENT,
        "",
        &["rm", &s(&work.join("conf/app.conf"))],
        "unlink",
    );
}
