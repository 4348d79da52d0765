//! Compiling validated policies into map entries: merged protected paths, binaries, agent
//! masks and governor's own directories.

use std::{os::unix::fs::MetadataExt, path::Path};

use governor_common::Class;

use super::*;
use crate::policy::Binary;

fn policy_with(binaries: &[&Path]) -> Policy {
    let mut p = Policy::parse(
        Path::new("p.toml"),
        "[policy]\nname = \"t\"\nowner = \"o@example.com\"\n",
    )
    .expect("valid");
    p.binaries = binaries
        .iter()
        .map(|path| Binary {
            path: path.to_path_buf(),
            decisions: crate::policy::Decisions {
                deny: vec![Class::Exec],
                ..Default::default()
            },
        })
        .collect();
    p
}

fn compile_binaries_for(policy: &Policy) -> Result<Vec<CompiledBinary>, CompileError> {
    compile_binaries(policy, &mut Vec::new())
}

#[test]
fn own_dirs_come_first_and_keep_their_rule() {
    let dir = std::env::temp_dir().join(format!("governor-compile-own-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).expect("mkdir");
    std::fs::create_dir_all(dir.join("prod")).expect("mkdir");
    let own = vec![OwnDir {
        what: "state",
        flag: "state-dir",
        path: dir.join("state"),
        mode: 0o700,
        connectable: false,
    }];
    let mut policy = policy_with(&[]);
    for (path, deny) in [("prod", Class::Unlink), ("state", Class::Rename)] {
        policy.protected.push(crate::policy::Protected {
            path: dir.join(path),
            decisions: crate::policy::Decisions {
                deny: vec![deny],
                ..Default::default()
            },
            optional: false,
            snapshot: Default::default(),
        });
    }
    let list = compile_protected(&policy, &own, &mut Vec::new()).expect("compiles");
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0].rule.rule_id, RULE_SELF);
    assert_eq!(list[0].path, dir.join("state"));
    let mask = list[0].rule.deny_mask;
    for c in crate::policy::FILE_CLASSES
        .iter()
        .chain([&Class::UnixConnect])
    {
        assert!(
            mask & c.bit() != 0,
            "{c:?} must be denied in governor's own dirs"
        );
    }
    assert_eq!(list[0].rule.lease_mask, 0);
    assert_eq!(
        list[1].rule.rule_id, 0,
        "the policy's own entry keeps its index"
    );
    assert_eq!(list[1].rule.deny_mask, Class::Unlink.bit());

    let missing = [OwnDir {
        path: dir.join("missing"),
        ..own[0].clone()
    }];
    let err = compile_protected(&policy, &missing, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, CompileError::OwnDir { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explicit_allow_stops_the_walk_and_class_table_fills_the_masks() {
    let dir = std::env::temp_dir().join(format!("governor-compile-allow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("srv/scratch")).expect("mkdir");
    let text = format!(
        "[policy]\nname = \"t\"\nowner = \"o@example.com\"\n\n[classes.write]\n\
         decision = \"lease\"\n\n[[protect]]\npath = \"{}\"\n\n[[protect]]\npath = \"{}\"\n\
         allow = [\"delete\", \"write\"]\n",
        dir.join("srv").display(),
        dir.join("srv/scratch").display()
    );
    let policy = Policy::parse(Path::new("p.toml"), &text).expect("valid");
    let list = compile_protected(&policy, &[], &mut Vec::new()).expect("compiles");
    let bits = |cs: &[Class]| cs.iter().fold(0, |m, c| m | c.bit());
    let srv = &list[0].rule;
    assert_eq!(
        srv.deny_mask,
        bits(&[
            Class::Unlink,
            Class::Rmdir,
            Class::Rename,
            Class::Truncate,
            Class::Chattr,
            Class::Utimes,
            Class::UnixConnect
        ])
    );
    assert_eq!(srv.lease_mask, Class::Write.bit());
    assert_eq!(srv.agent_mask, 0);
    let scratch = &list[1].rule;
    assert_eq!(
        scratch.agent_mask,
        bits(&[Class::Unlink, Class::Rmdir, Class::Write]),
        "explicitly allowed classes stop the kernel's walk here"
    );
    for c in [Class::Unlink, Class::Write] {
        assert_eq!(
            scratch.verdict(None, c.bit()),
            governor_common::maps::Verdict::Silent,
            "{c:?}: allowed (no agent entry)"
        );
    }
    assert_eq!(
        scratch.verdict(None, Class::Truncate.bit()),
        governor_common::maps::Verdict::Deny
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binaries_are_identified_by_inode_through_links() {
    let dir = std::env::temp_dir().join(format!("governor-compile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let bin = dir.join("tool");
    std::fs::write(&bin, "#!/bin/sh\n").expect("write");
    std::os::unix::fs::symlink(&bin, dir.join("via-symlink")).expect("symlink");
    std::fs::hard_link(&bin, dir.join("via-hardlink")).expect("link");
    let compiled = compile_binaries_for(&policy_with(&[
        &bin,
        &dir.join("via-symlink"),
        &dir.join("via-hardlink"),
    ]))
    .expect("compiles");
    assert_eq!(compiled.len(), 1, "three names, one inode: {compiled:?}");
    let meta = std::fs::metadata(&bin).expect("stat");
    assert_eq!(compiled[0].key.ino, meta.ino());
    assert_eq!(compiled[0].rule.deny_mask, Class::Exec.bit());

    let err = compile_binaries_for(&policy_with(&[&dir.join("missing")])).unwrap_err();
    assert!(matches!(err, CompileError::Binary { .. }), "{err}");
    assert!(err.to_string().contains("must exist"), "{err}");
    let err = compile_binaries_for(&policy_with(&[&dir])).unwrap_err();
    assert!(matches!(err, CompileError::NotAFile { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
