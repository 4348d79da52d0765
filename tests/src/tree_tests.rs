//! The manifest on the host: equal trees compare equal wherever they live, and every kind of
//! change a rollback must undo shows as a difference that names the path and what changed.

use std::os::unix::fs::{chown, symlink, PermissionsExt};

use super::*;

/// A fresh directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("governor-tree-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const T0: i128 = 1_600_000_000_123_456_789;

/// A small tree with one of everything: nested directories (one with mode 0750), files, a
/// hardlink pair, a symlink (dangling on purpose) and one to a directory outside the tree,
/// an xattr, and fixed mtimes.
fn sample(root: &Path, outside: &Path) {
    std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    std::fs::write(root.join("a/one"), "one").expect("write");
    std::fs::write(root.join("a/b/two"), "two").expect("write");
    std::fs::hard_link(root.join("a/one"), root.join("one-link")).expect("link");
    symlink("../nowhere", root.join("a/dangling")).expect("symlink");
    std::fs::create_dir_all(outside).expect("mkdir outside");
    std::fs::write(outside.join("secret"), "outside").expect("write");
    symlink(outside, root.join("out")).expect("symlink out");
    std::fs::set_permissions(root.join("a/b"), std::fs::Permissions::from_mode(0o750))
        .expect("chmod");
    set_xattr(&root.join("a/b/two"), "trusted.governor-test", b"v1");
    for (i, rel) in ["a/one", "a/b/two", "a/dangling", "out", "a/b", "a", "."]
        .iter()
        .enumerate()
    {
        set_mtime(&root.join(rel), T0 + i as i128);
    }
}

fn changed(name: &str, change: impl Fn(&Path)) -> Vec<String> {
    let s = Scratch::new(name);
    let root = s.0.join("tree");
    sample(&root, &s.0.join("outside"));
    let before = Manifest::of(&root);
    change(&root);
    before.diff(&Manifest::of(&root))
}

#[test]
fn equal_trees_are_equal_wherever_they_are() {
    let s = Scratch::new("equal");
    let (x, y) = (s.0.join("x"), s.0.join("y"));
    sample(&x, &s.0.join("outside"));
    sample(&y, &s.0.join("outside"));
    let (mx, my) = (Manifest::of(&x), Manifest::of(&y));
    assert_eq!(mx.diff(&my), Vec::<String>::new());
    assert_eq!(mx, my);
    mx.assert_same(&my, "two samples");
    // Nothing behind a symlink is read; the hardlink pair is one group.
    assert!(
        !mx.entries.contains_key(Path::new("out/secret")) && mx.entries.len() == 8,
        "{mx}"
    );
    assert_eq!(
        mx.hardlinks,
        [vec![PathBuf::from("a/one"), PathBuf::from("one-link")]]
    );
    assert_eq!(mx.files(), 3);
    let two = &mx.entries[Path::new("a/b/two")];
    assert_eq!(
        (two.size, two.mtime_ns, two.xattrs.clone()),
        (
            3,
            T0 + 1,
            vec![("trusted.governor-test".into(), b"v1".to_vec())]
        )
    );
    assert_eq!(mx.entries[Path::new("a/b")].mode, 0o750);
    assert_eq!(
        mx.entries[Path::new("out")].target.as_deref(),
        Some(s.0.join("outside").as_path())
    );
}

#[test]
fn every_change_shows_with_its_path() {
    let one = |d: Vec<String>| {
        assert_eq!(d.len(), 1, "{d:#?}");
        d[0].clone()
    };
    // Same size, same mtime, other bytes: the hash tells.
    let d = one(changed("content", |r| {
        std::fs::write(r.join("a/b/two"), "TWO").expect("write");
        set_mtime(&r.join("a/b/two"), T0 + 1);
    }));
    assert!(d.starts_with("a/b/two: content 3 bytes"), "{d}");
    let d = one(changed("mode", |r| {
        std::fs::set_permissions(r.join("a/b"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }));
    assert_eq!(d, "a/b: mode 0750 -> 0755");
    let d = one(changed("owner", |r| {
        chown(r.join("a/b/two"), Some(4242), Some(4343)).expect("chown");
    }));
    assert!(d.starts_with("a/b/two: owner 0:0 -> 4242:4343"), "{d}");
    let d = one(changed("mtime", |r| set_mtime(&r.join("a"), T0 + 6)));
    assert_eq!(d, format!("a: mtime {} -> {} (+1 ns)", T0 + 5, T0 + 6));
    let d = one(changed("xattr", |r| {
        set_xattr(&r.join("a/b/two"), "trusted.governor-test", b"v2");
    }));
    assert!(d.starts_with("a/b/two: xattrs"), "{d}");
    let d = one(changed("symlink", |r| {
        std::fs::remove_file(r.join("a/dangling")).expect("rm");
        symlink("../elsewhere", r.join("a/dangling")).expect("symlink");
        set_mtime(&r.join("a/dangling"), T0 + 2);
        set_mtime(&r.join("a"), T0 + 5);
    }));
    assert_eq!(
        d,
        "a/dangling: symlink target Some(\"../nowhere\") -> Some(\"../elsewhere\")"
    );
    // A hardlink replaced by an identical copy: only the grouping differs.
    let d = one(changed("hardlink", |r| {
        std::fs::remove_file(r.join("one-link")).expect("rm");
        std::fs::write(r.join("one-link"), "one").expect("write");
        set_mtime(&r.join("one-link"), T0);
        set_mtime(r, T0 + 6);
    }));
    assert_eq!(d, "hardlink groups: [[\"a/one\", \"one-link\"]] -> []");
    let d = changed("added and removed", |r| {
        std::fs::remove_file(r.join("a/b/two")).expect("rm");
        std::fs::write(r.join("a/b/three"), "3").expect("write");
        set_mtime(&r.join("a/b"), T0 + 4);
    });
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].starts_with("a/b/two: gone (was File 0644"), "{d:#?}");
    assert!(d[1].starts_with("a/b/three: new (File"), "{d:#?}");
    let d = one(changed("kind", |r| {
        std::fs::remove_file(r.join("a/b/two")).expect("rm");
        std::fs::create_dir(r.join("a/b/two")).expect("mkdir");
        set_mtime(&r.join("a/b"), T0 + 4);
    }));
    assert_eq!(d, "a/b/two: kind File -> Dir");
}

#[test]
fn an_acl_is_an_xattr_of_the_manifest() {
    let s = Scratch::new("acl");
    let f = s.0.join("f");
    std::fs::write(&f, "x").expect("write");
    set_xattr(&f, "system.posix_acl_access", &acl_granting(4242, 5));
    let m = Manifest::of(&s.0);
    let e = &m.entries[Path::new("f")];
    assert!(
        e.xattrs.iter().any(|(n, _)| n == "system.posix_acl_access"),
        "{e:?}"
    );
    // The mask is the ACL's group bits of the mode.
    assert_eq!(e.mode, 0o670, "{e:?}");
}
