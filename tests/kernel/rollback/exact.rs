//! The whole change-and-rollback scenario on tmpfs, ext4 and btrfs with one daemon (restarted
//! between the lease and the rollback on the first): the sample tree is protected, the agent
//! is refused until a lease, the lease's snapshot is a reflink on btrfs and a copy elsewhere,
//! the agent's script changes everything, and `rollback --revoke` gives back the manifest
//! exactly. Then the safety figures: every refusal counted as blocked before execution, and
//! the recoveries timed.

use super::*;

#[test]
fn lsm_rollback_restores_trees_exactly_on_tmpfs_ext4_and_btrfs_across_a_restart() {
    require_bpf_lsm();
    let dir = scratch("rollback-exact");
    let fss: Vec<LoopFs> = FsKind::ALL
        .iter()
        .map(|k| LoopFs::new(*k, &dir.join(k.name()), 600))
        .collect();
    let trees: Vec<PathBuf> = fss.iter().map(|fs| fs.root.join("tree")).collect();
    for (fs, tree) in fss.iter().zip(&trees) {
        std::fs::create_dir(tree).expect("mkdir tree");
        sample_tree(tree, fs.kind);
    }
    let _ = std::fs::remove_dir_all(trusted_dir());
    let alice = Operator::new(&dir, "alice", true);
    let text = policy(
        &trees.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
        None,
    );
    let mut d = Daemon::start(&dir, &text);
    let mut denies = 0u64;
    let mut recoveries = 0u64;

    for (i, (fs, tree)) in fss.iter().zip(&trees).enumerate() {
        let name = fs.kind.name();
        let victim = s(&tree.join("conf/app.conf"));
        // The tree is protected: without a lease the agent is refused.
        let mark = d.mark();
        let out = d.as_agent(AGENT, &["rm", &victim]);
        assert!(
            !out.status.success() && tree.join("conf/app.conf").exists(),
            "{name}: without a lease the agent removed {victim}: governor does not protect \
             this tree (on btrfs, stat's st_dev is the subvolume's, not the superblock's \
             s_dev that the kernel side reads)"
        );
        assert_eperm(&out, &format!("{name}: rm without a lease"));
        d.one_since(mark, &format!("{name}: the refused rm"), |v| {
            v["class"] == "unlink" && v["decision"] == "deny"
        });
        denies += 1;
        let before = Manifest::of(tree);

        // On btrfs the snapshot store lives on the same filesystem, so a snapshot can be a
        // reflink of the tree's files.
        let store = (fs.kind == FsKind::Btrfs).then(|| {
            let on_btrfs = fs.root.join("snapshots");
            std::fs::create_dir(&on_btrfs).expect("mkdir snapshots on btrfs");
            std::fs::set_permissions(&on_btrfs, std::fs::Permissions::from_mode(0o700))
                .expect("chmod snapshots");
            Mount::bind(&on_btrfs, &snapshots_dir(&dir))
        });
        let lease = alice.issue(
            &dir.join(format!("{name}.lease")),
            AGENT,
            &[&format!("modify:{}", s(tree))],
            "30m",
        );
        let submitted = submit_json(&lease);
        let (id, method) = id_and_method(&submitted);
        let want = if fs.kind == FsKind::Btrfs {
            "reflink"
        } else {
            "copy"
        };
        assert_eq!(method, want, "{name}: snapshot method: {submitted:#}");
        let snap = &submitted["snapshot"];
        assert!(
            snap["files"].as_u64() >= Some(11) && snap["bytes"].as_u64() >= Some(256 * 1024),
            "{name}: the snapshot holds the whole tree: {submitted:#}"
        );
        let stored = snapshots_dir(&dir).join(&id);
        assert!(
            stored.join("manifest.json").is_file(),
            "{name}: no complete snapshot in {}",
            stored.display()
        );
        if fs.kind == FsKind::Btrfs {
            assert_fs(&stored, FsKind::Btrfs);
        }

        assert_ok(
            &d.as_agent(AGENT, &["sh", "-c", &agent_script(tree)]),
            &format!("{name}: the agent's changes under the lease"),
        );
        let diff = before.diff(&Manifest::of(tree));
        assert!(
            diff.len() >= 15,
            "{name}: the agent changed too little: {diff:#?}"
        );

        if i == 0 {
            // A restart between the lease and the rollback loses nothing: the lease is still
            // enforced and its snapshot complete.
            d.stop_keeping_pins();
            d = d.successor(&dir, "policy.toml", &text, &[]);
            assert_eq!(
                listed(&id).map(|l| l["state"].clone()),
                Some("enforced".into()),
                "{name}: the lease after the restart"
            );
            assert!(stored.join("manifest.json").is_file());
        }

        let out = ok_stdout(
            &rollback(&["--lease", &id, "--revoke", "--json"]),
            &format!("{name}: rollback --revoke"),
        );
        let done: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{name}: rollback --json: {e}: {out}"));
        let restored = &done["restores"][0];
        assert!(
            done["restores"].as_array().map(Vec::len) == Some(1)
                && restored["lease"] == id.as_str()
                && restored["revoked"] == true
                && restored["outcome"] == "restored"
                && restored["conflicts"].as_array().is_some_and(Vec::is_empty)
                && restored["took_ms"].is_u64(),
            "{name}: {done:#}"
        );
        recoveries += 1;
        before.assert_same(&Manifest::of(tree), &format!("{name}: after the rollback"));
        assert_eq!(
            listed(&id).map(|l| l["state"].clone()),
            Some("revoked".into()),
            "{name}: --revoke ended the lease"
        );
        d.refused(AGENT, "", &["rm", &victim], "unlink");
        denies += 1;
        drop(store);
    }

    // The safety figures: every refusal above blocked before execution, and each rollback a
    // timed recovery of agent ops.
    let safety = safety_when(|s| {
        s["blocked_before_execution"].as_u64() >= Some(denies)
            && s["time_to_recovery"]["count"].as_u64() >= Some(1)
    });
    assert_eq!(
        safety["blocked_before_execution"].as_u64(),
        Some(denies),
        "{safety:#}"
    );
    let mine = &safety["agents"][AGENT];
    assert_eq!(
        mine["blocked_before_execution"].as_u64(),
        Some(denies),
        "{safety:#}"
    );
    for ttr in [&safety["time_to_recovery"], &mine["time_to_recovery"]] {
        let count = ttr["count"].as_u64().unwrap_or(0);
        let (median, worst) = (ttr["median_ms"].as_u64(), ttr["worst_ms"].as_u64());
        assert!(
            (1..=recoveries).contains(&count) && median.is_some() && worst >= median,
            "time to recovery: {safety:#}"
        );
    }
    let status = ok_stdout(&governor(&["status", "--json"]), "status");
    let status: Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(
        status["safety"]["blocked_before_execution"].as_u64(),
        Some(denies),
        "status --json: {status:#}"
    );
    assert_eq!(
        rollback_rows(&dir, recoveries),
        recoveries,
        "lineage rollbacks rows"
    );
}

/// Rows of the lineage's `rollbacks` table (one per restore), once there are `want` (the
/// writer commits in batches), within 30 s.
fn rollback_rows(dir: &Path, want: u64) -> u64 {
    let db = state_dir_for(&pin_dir_for(dir)).join("lineage.db");
    let c = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: u64 = c
            .query_row("SELECT COUNT(*) FROM rollbacks", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("count the rollbacks rows of {}: {e}", db.display()));
        if n >= want || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(200));
    }
}
