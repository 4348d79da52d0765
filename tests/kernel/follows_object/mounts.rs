//! Filesystems mounted inside the protected tree or overlaid on it (reached by hooks that get
//! no mount), which cannot be taken away, moved or reconfigured (governor's pins neither);
//! inode flags, timestamps, reading, and a protected file the host replaces.

use super::*;

/// Python: set argv[1]'s times to 2000-01-01 by name (utimensat; `touch -d` would open the
/// file for writing first, which is decided as a write).
const UTIME: &str = "import os, sys\n\
     os.utime(sys.argv[1], (946684800, 946684800))\n";

/// Python: open argv[1] for reading and writing.
const OPEN_RDWR: &str = "import os, sys\nos.open(sys.argv[1], os.O_RDWR)\n";

/// Python: umount2(argv[1], int(argv[2])) (0, MNT_FORCE = 1, MNT_DETACH = 2).
const UMOUNT2: &str = "import ctypes, os, sys\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     if libc.umount2(sys.argv[1].encode(), int(sys.argv[2])) != 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n";

/// Python: the other ways to take a mount away or change it, by argv[1]: `move` (move_mount
/// of argv[2] onto argv[3]), `pivot` (pivot_root(argv[2], argv[2])), `fsconfig` (fspick
/// argv[2], set the flag `ro`, which no hook is asked about, and reconfigure:
/// `sb_remount`). x86-64 syscall numbers.
const MOUNT_OPS: &str = "import ctypes, os, sys\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     libc.syscall.restype = ctypes.c_long\n\
     def check(r):\n\
     \x20   if r < 0:\n\
     \x20       e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n\
     \x20   return r\n\
     op, a = sys.argv[1], sys.argv[2].encode()\n\
     if op == 'move':\n\
     \x20   check(libc.syscall(429, -100, a, -100, sys.argv[3].encode(), 0))\n\
     elif op == 'pivot':\n\
     \x20   check(libc.syscall(155, a, a))\n\
     else:\n\
     \x20   fd = check(libc.syscall(433, -100, a, 0))\n\
     \x20   check(libc.syscall(431, fd, 0, b'ro', None, 0))\n\
     \x20   check(libc.syscall(431, fd, 7, None, None, 0))\n";

#[test]
fn lsm_mounts_inside_flags_times_and_reads() {
    require_bpf_lsm();
    let dir = scratch("follows-mounts");
    let prod = dir.join("prod");
    let secret = dir.join("secret");
    write(&prod.join("db"), "precious");
    write(&secret.join("key"), "s3cret");
    let shadow = dir.join("shadow");
    write(&shadow, "s3cret");
    let inner = prod.join("inner");
    std::fs::create_dir_all(&inner).expect("mkdir");
    // A filesystem mounted inside the tree before the daemon starts (its root is
    // registered), holding a file.
    ok(
        &as_host(&["mount", "-t", "tmpfs", "inner", &s(&inner)]),
        "host mounts a tmpfs inside the tree",
    );
    write(&inner.join("f"), "precious");
    // An overlay whose upper and work directories lie in the tree, merged outside it, over a
    // lower layer that holds a listed binary.
    let lower = dir.join("lower");
    let upper = prod.join("upper");
    let merged = dir.join("merged");
    for d in [&lower, &upper, &prod.join("work"), &merged] {
        std::fs::create_dir_all(d).expect("mkdir overlay dirs");
    }
    write(&upper.join("up-file"), "precious");
    write(&lower.join("low-file"), "lower");
    std::fs::copy("/bin/true", lower.join("tool")).expect("copy a binary into the lower layer");
    let layers = format!(
        "lowerdir={},upperdir={},workdir={}",
        s(&lower),
        s(&upper),
        s(&prod.join("work"))
    );
    ok(
        &as_host(&["mount", "-t", "overlay", "ovl", "-o", &layers, &s(&merged)]),
        "host mounts the overlay",
    );
    let a = "agent-mounts";
    let mut text = policy(
        a,
        &[
            (prod.as_path(), "modify"),
            (secret.as_path(), "read"),
            (shadow.as_path(), "read"),
        ],
    );
    text += &format!(
        "\n[[binaries]]\npath = \"{}\"\ndeny = [\"exec\"]\n",
        s(&lower.join("tool"))
    );
    let d = Daemon::start(&dir, &text);

    // xattr and timestamps are decided by inode hooks, which get no mount: the walk from the
    // mounted file stops at the tmpfs root, which is registered.
    let f = s(&inner.join("f"));
    let ev = refused(&d, a, "", &["python3", "-c", SETXATTR, &f], "xattr");
    assert_eq!(
        ev["protected"],
        format!("(by inode, from) {}", s(&prod)),
        "{ev}"
    );
    let before = std::fs::metadata(inner.join("f")).expect("stat").mtime();
    refused(&d, a, "", &["python3", "-c", UTIME, &f], "utimes");
    assert_eq!(
        std::fs::metadata(inner.join("f")).expect("stat").mtime(),
        before
    );
    // A filesystem the host mounts inside the tree while the daemon runs: the daemon's mount
    // watcher registers its root.
    let later = prod.join("later");
    std::fs::create_dir_all(&later).expect("mkdir");
    ok(
        &as_host(&["mount", "-t", "tmpfs", "later", &s(&later)]),
        "host mounts a tmpfs inside the tree later",
    );
    write(&later.join("g"), "precious");
    let logged = d.wait_logged("a filesystem mounted inside a protected path");
    assert_eq!(logged["mount"], s(&later), "{logged}");
    refused(
        &d,
        a,
        "",
        &["python3", "-c", SETXATTR, &s(&later.join("g"))],
        "xattr",
    );
    // ...and on the tree itself.
    refused(
        &d,
        a,
        "",
        &["python3", "-c", UTIME, &s(&prod.join("db"))],
        "utimes",
    );
    // Setting the times to now records nothing false: allowed.
    let mark = d.mark();
    ok(
        &d.as_agent(
            a,
            &[
                "python3",
                "-c",
                "import os, sys; os.utime(sys.argv[1])",
                &s(&prod.join("db")),
            ],
        ),
        "agent sets the times to now (utimensat with no times; `touch` would open for writing)",
    );
    d.none_since(mark, "touch to now");

    // The mount cannot be taken away: umount in every form.
    let target = s(&inner);
    for flags in ["0", "1", "2"] {
        let ev = refused(
            &d,
            a,
            "",
            &["python3", "-c", UMOUNT2, &target, flags],
            "mount",
        );
        assert_eq!(ev["what"], "umount", "{ev}");
        assert_eq!(ev["path"], target, "{ev}");
    }
    // ...nor moved away, pivoted into or reconfigured (remount, fsconfig).
    let away = s(&dir.join("away"));
    std::fs::create_dir_all(&away).expect("mkdir away");
    for (cmd, what) in [
        (vec!["mount", "-o", "remount,ro", &target], "remount"),
        (
            vec!["python3", "-c", MOUNT_OPS, "move", &target, &away],
            "move_mount",
        ),
        (
            vec!["python3", "-c", MOUNT_OPS, "pivot", &target],
            "pivot_root",
        ),
        (
            vec!["python3", "-c", MOUNT_OPS, "fsconfig", &target],
            "fsconfig",
        ),
    ] {
        let ev = refused(&d, a, "", &cmd, "mount");
        assert_eq!(ev["agent"], a, "{what}: {ev}");
    }
    // governor's own pins too (lazily: they would vanish from view and be lost on the next
    // restart).
    refused(
        &d,
        a,
        "",
        &["python3", "-c", UMOUNT2, "/sys/fs/bpf", "2"],
        "mount",
    );
    // The manifest is a symlink whose target says what is pinned (it names no file).
    assert!(std::fs::symlink_metadata("/sys/fs/bpf/governor/manifest").is_ok());
    assert_eq!(read(&inner.join("f")), "precious");

    // Inode flags (chattr +i/+a): decided like any change.
    let ev = refused(&d, a, "", &["chattr", "+i", &s(&prod.join("db"))], "chattr");
    assert_eq!(ev["what"], "FS_IOC_SETFLAGS", "{ev}");

    // Reading where reads are denied: open, list, and open for reading and writing.
    refused(&d, a, "", &["cat", &s(&secret.join("key"))], "read");
    refused(&d, a, "", &["ls", &s(&secret)], "read");
    refused(
        &d,
        a,
        "",
        &["python3", "-c", OPEN_RDWR, &s(&secret.join("key"))],
        "read",
    );
    // A protected file the host replaces (write a new one, rename it over, as `passwd` does)
    // stays protected: the new inode takes the old one's rule.
    refused(&d, a, "", &["cat", &s(&shadow)], "read");
    write(&dir.join("shadow.new"), "n3w s3cret");
    ok(
        &as_host(&["mv", &s(&dir.join("shadow.new")), &s(&shadow)]),
        "host replaces the file",
    );
    let ev = refused(&d, a, "", &["cat", &s(&shadow)], "read");
    assert_eq!(
        ev["protected"],
        format!("(by inode, from) {}", s(&shadow)),
        "{ev}"
    );
    // Reading elsewhere is not decided.
    let mark = d.mark();
    let out = d.as_agent(a, &["cat", &s(&prod.join("db"))]);
    ok(&out, "agent cat of a modify-protected file");
    d.none_since(mark, "a read nothing denies");

    // Through the overlay: what overlayfs does on its upper layer is decided on the real,
    // backing inode there, and a listed binary is the same binary through the overlay.
    let up = s(&merged.join("up-file"));
    refused(&d, a, "", &["rm", "-f", &up], "unlink");
    refused(&d, a, "", &["mv", &up, &s(&merged.join("moved"))], "rename");
    refused(
        &d,
        a,
        "",
        &[
            "python3",
            "-c",
            &format!("import os; os.truncate({up:?}, 0)"),
        ],
        "truncate",
    );
    refused(&d, a, "", &["chmod", "600", &up], "chmod");
    refused(&d, a, "", &["python3", "-c", APPEND, &up], "write");
    refused(&d, a, "", &["mkdir", &s(&merged.join("new-dir"))], "write");
    // A lower file is hidden by a whiteout made in the upper layer.
    refused(
        &d,
        a,
        "",
        &["rm", "-f", &s(&merged.join("low-file"))],
        "mknod",
    );
    let ev = refused(&d, a, "", &[&s(&merged.join("tool"))], "exec");
    assert_eq!(ev["protected"], s(&lower.join("tool")), "{ev}");
    assert_eq!(read(&upper.join("up-file")), "precious");
    assert!(
        merged.join("low-file").exists(),
        "the lower file is still visible"
    );
    assert_eq!(read(&lower.join("low-file")), "lower");

    // A non-agent does all of it.
    let mark = d.mark();
    ok(
        &as_host(&[&s(&merged.join("tool"))]),
        "host runs the tool through the overlay",
    );
    ok(
        &as_host(&["chmod", "600", &up]),
        "host chmod through the overlay",
    );
    ok(
        &as_host(&["rm", "-f", &s(&merged.join("low-file"))]),
        "host rm of a lower file",
    );
    ok(&as_host(&["python3", "-c", SETXATTR, &f]), "host setxattr");
    ok(
        &as_host(&["touch", "-d", "2000-01-01", &f]),
        "host touch -d",
    );
    ok(&as_host(&["cat", &s(&secret.join("key"))]), "host cat");
    d.none_since(mark, "the host's operations");
    drop(d);
    unmount(&merged);
    unmount(&later);
    unmount(&inner);
}
