//! The rollback tests' own ground, checked without a daemon on every filesystem they use: the
//! test filesystems mount as what they claim (btrfs clones), a faithful copy (`cp -a`) of the
//! sample tree has the same manifest as the tree (so the manifest asks nothing a restore
//! cannot give), and the agent's script changes every path it names (so a rollback test that
//! passes undid real changes).

use super::*;

/// The paths (or the hardlink line) each of the agent script's steps must show up as.
const CHANGED: &[&str] = &[
    "docs/old",
    "docs/old/nested/3.md",
    "conf/app.conf",
    "data/big.bin",
    "private",
    "data/owned",
    "data/a.txt",
    "data/renamed.txt",
    "new",
    "new/file",
    "conf/extra",
    "conf/settings",
    "links/hard1",
    "links/hard2",
    "links/rel",
    "empty",
    "hardlink groups",
];

#[test]
fn rollback_harness_holds_on_tmpfs_ext4_and_btrfs() {
    require_bpf_lsm();
    let dir = scratch("rollback-harness");
    for kind in FsKind::ALL {
        let fs = LoopFs::new(kind, &dir.join(kind.name()), 256);
        let tree = fs.root.join("tree");
        std::fs::create_dir(&tree).expect("mkdir tree");
        sample_tree(&tree, kind);
        assert_fs(&tree, kind);
        let before = Manifest::of(&tree);
        assert_eq!(before.files(), 12, "{before}");
        assert_eq!(before.hardlinks.len(), 1, "{before}");
        let copy = fs.root.join("copy");
        assert_ok(
            &as_host(&["cp", "-a", &s(&tree), &s(&copy)]),
            "cp -a the sample tree",
        );
        before.assert_same(
            &Manifest::of(&copy),
            &format!("a cp -a copy on {}", kind.name()),
        );

        assert_ok(
            &as_host(&["sh", "-c", &agent_script(&copy)]),
            &format!("the agent's script, run by the host on {}", kind.name()),
        );
        let diff = before.diff(&Manifest::of(&copy));
        for path in CHANGED {
            assert!(
                diff.iter().any(|d| d.starts_with(&format!("{path}:"))),
                "{}: the script left {path} as it was:\n  {}",
                kind.name(),
                diff.join("\n  ")
            );
        }
    }
}
