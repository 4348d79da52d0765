//! Protection follows the object, whichever way an agent reaches it: another name (a hard
//! link made before the daemon started, or by the agent itself), a handle whose dentry the
//! cache no longer connects (open_by_handle_at(2) after the caches were dropped), a shared
//! writable mapping of a descriptor a non-agent handed over, the block device beneath the
//! filesystem, a filesystem mounted inside the tree (reached by hooks that get no mount),
//! inode flags, timestamps, and reading. For each: the agent gets EPERM, the target is
//! unchanged, exactly one event is recorded, and a non-agent doing the same succeeds.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Output,
};

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    allow_the_rest, as_host, assert_ok, kernel_module, load_module, require_bpf_lsm, scratch,
    unmount, write, Daemon,
};
use serde_json::Value;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"))
}

/// `Daemon::refused`.
fn refused(d: &Daemon, agent: &str, setup: &str, cmd: &[&str], class: &str) -> Value {
    d.refused(agent, setup, cmd, class)
}

fn ok(out: &Output, what: &str) {
    assert_ok(out, what);
}

/// Python: set argv[1]'s times to 2000-01-01 by name (utimensat; `touch -d` would open the
/// file for writing first, which is decided as a write).
const UTIME: &str = "import os, sys\n\
     os.utime(sys.argv[1], (946684800, 946684800))\n";

/// Python: open argv[1] for appending and write one byte.
const APPEND: &str = "import os, sys\n\
     fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n\
     os.write(fd, b'X')\n";

/// Python: a file handle for argv[1] (name_to_handle_at), printed as hex: type, then bytes.
const NAME_TO_HANDLE: &str = "import ctypes, os, sys\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     buf = ctypes.create_string_buffer(8 + 128)\n\
     ctypes.c_uint32.from_buffer(buf, 0).value = 128\n\
     mnt = ctypes.c_int()\n\
     if libc.name_to_handle_at(-100, sys.argv[1].encode(), buf, ctypes.byref(mnt), 0) != 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n\
     n = ctypes.c_uint32.from_buffer(buf, 0).value\n\
     print(buf.raw[:8 + n].hex())\n";

/// Python: open the handle argv[2] (hex, from NAME_TO_HANDLE) on the mount at argv[1] for
/// appending (open_by_handle_at), and write one byte.
const OPEN_BY_HANDLE: &str = "import ctypes, os, sys\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     raw = bytes.fromhex(sys.argv[2])\n\
     buf = ctypes.create_string_buffer(raw, len(raw))\n\
     mfd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n\
     fd = libc.open_by_handle_at(mfd, buf, os.O_WRONLY | os.O_APPEND)\n\
     if fd < 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n\
     os.write(fd, b'X')\n";

/// Python: map descriptor 3 shared and writable, and store one byte.
const MMAP_SHARED_WRITE: &str = "import mmap\n\
     m = mmap.mmap(3, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)\n\
     m[0:1] = b'X'\n\
     m.flush()\n";

/// Python: map descriptor 3 shared and read-only, then mprotect it writable and store.
const MPROTECT_WRITE: &str = "import ctypes, os\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     libc.mmap.restype = ctypes.c_void_p\n\
     libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, \
     ctypes.c_int, ctypes.c_long]\n\
     addr = libc.mmap(None, 4096, 1, 1, 3, 0)\n\
     if addr in (None, ctypes.c_void_p(-1).value):\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, 'mmap: ' + os.strerror(e))\n\
     if libc.mprotect(ctypes.c_void_p(addr), 4096, 3) != 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n\
     ctypes.memmove(addr, b'X', 1)\n";

/// Python: set the trusted xattr `trusted.governor` on argv[1].
const SETXATTR: &str = "import os, sys\nos.setxattr(sys.argv[1], 'trusted.governor', b'1')\n";

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

/// Python: open argv[1] for writing (device nodes).
const OPEN_WRITE: &str = "import os, sys\nos.open(sys.argv[1], os.O_WRONLY)\n";

/// The brd RAM disk, made for the test (`/dev/ram0`, 16 MiB): a real block device holding a
/// real filesystem (ext4), whose dentries the kernel can drop. Removed on drop.
struct RamDisk {
    mountpoint: PathBuf,
}

impl RamDisk {
    fn new(dir: &Path) -> RamDisk {
        let module = kernel_module(dir, "kernel/drivers/block/brd.ko");
        load_module(&module, "rd_nr=1 rd_size=16384 max_part=0");
        let dev = Path::new("/dev/ram0");
        assert!(dev.exists(), "brd made no /dev/ram0");
        ok(
            &as_host(&["mkfs.ext4", "-q", "-F", "/dev/ram0"]),
            "mkfs.ext4 /dev/ram0",
        );
        let mountpoint = dir.join("ext4");
        std::fs::create_dir_all(&mountpoint).expect("mkdir");
        ok(
            &as_host(&["mount", "-t", "ext4", "/dev/ram0", &s(&mountpoint)]),
            "mount /dev/ram0",
        );
        RamDisk { mountpoint }
    }
}

impl Drop for RamDisk {
    fn drop(&mut self) {
        let _ = as_host(&["umount", &s(&self.mountpoint)]);
        let _ = as_host(&[
            "python3",
            "-c",
            "import ctypes, os; ctypes.CDLL(None).syscall(176, b'brd', os.O_NONBLOCK)",
        ]);
    }
}

/// A policy with enforcing agent `agent` protecting each of `trees` against `classes`.
fn policy(agent: &str, trees: &[(&Path, &str)]) -> String {
    let mut s = format!(
        "[policy]\nname = \"test-{agent}\"\nowner = \"kernel-tests@example.com\"\n\n\
         [[agents]]\nname = \"{agent}\"\ncgroup = \"governor-test/{agent}\"\nmode = \"enforce\"\n"
    );
    for (path, classes) in trees {
        let denied: Vec<&str> = classes.split(',').map(str::trim).collect();
        let quoted: Vec<String> = denied.iter().map(|c| format!("{c:?}")).collect();
        s += &format!(
            "\n[[protect]]\npath = \"{}\"\ndeny = [{}]\n",
            path.display(),
            quoted.join(", ")
        );
        let rest = allow_the_rest(&denied);
        if !rest.is_empty() {
            s += &format!("allow = [{rest}]\n");
        }
    }
    s
}

#[test]
fn lsm_names_handles_mappings_and_devices_lead_to_the_inode() {
    require_bpf_lsm();
    let dir = scratch("follows-inode");
    let disk = RamDisk::new(&dir);
    let prod = dir.join("prod");
    let outside = dir.join("outside");
    let ext4_prod = disk.mountpoint.join("prod");
    write(&prod.join("db"), "precious");
    write(&prod.join("made-before"), "precious");
    write(&prod.join("agent-linked"), "precious");
    write(&ext4_prod.join("deep/file"), "precious");
    std::fs::create_dir_all(&outside).expect("mkdir");
    // A second name made before the daemon starts: its scan registers the inode.
    let old_link = outside.join("old-link");
    std::fs::hard_link(prod.join("made-before"), &old_link).expect("host link");
    let a = "agent-inode";
    // Links are allowed (a new name is harmless when protection follows the inode); every
    // other change is denied.
    let changes = "unlink, rmdir, rename, truncate, write, chmod, chown, xattr, mknod, chattr, \
                   utimes";
    let d = Daemon::start(
        &dir,
        &policy(
            a,
            &[(prod.as_path(), changes), (ext4_prod.as_path(), changes)],
        ),
    );

    // A name made before the daemon: every class through it is decided by the inode.
    let old = s(&old_link);
    let ev = refused(&d, a, "", &["python3", "-c", APPEND, &old], "write");
    assert_eq!(
        ev["protected"],
        format!("(by inode, from) {}", s(&prod)),
        "{ev}"
    );
    assert_eq!(ev["name"], "old-link", "{ev}");
    // The event names the file's own inode, not the last directory the walk passed (6.1
    // once hard-wired the walk's "target still unset" test to true).
    let ino = std::fs::metadata(&old_link).expect("stat").ino();
    assert_eq!(ev["target_ino"], ino, "{ev}");
    refused(
        &d,
        a,
        "",
        &[
            "python3",
            "-c",
            &format!("import os; os.truncate({old:?}, 0)"),
        ],
        "truncate",
    );
    refused(&d, a, "", &["chmod", "600", &old], "chmod");
    refused(&d, a, "", &["python3", "-c", SETXATTR, &old], "xattr");
    assert_eq!(read(&old_link), "precious");

    // A name the agent makes itself (allowed), then writes through.
    let new_link = outside.join("agent-link");
    let mark = d.mark();
    ok(
        &d.as_agent(a, &["ln", &s(&prod.join("agent-linked")), &s(&new_link)]),
        "agent ln (a new name is allowed)",
    );
    d.none_since(mark, "an allowed link");
    refused(
        &d,
        a,
        "",
        &["python3", "-c", APPEND, &s(&new_link)],
        "write",
    );
    assert_eq!(read(&prod.join("agent-linked")), "precious");

    // A handle opened after the dentry cache was dropped: its dentry is disconnected, and a
    // walk from it cannot tell where it lies (unresolved: refused and counted).
    let file = ext4_prod.join("deep/file");
    let out = d.as_agent(a, &["python3", "-c", NAME_TO_HANDLE, &s(&file)]);
    ok(&out, "agent name_to_handle_at");
    let handle = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ok(
        &as_host(&["sh", "-c", "sync; echo 2 > /proc/sys/vm/drop_caches"]),
        "host drops the dentry cache",
    );
    let ev = refused(
        &d,
        a,
        "",
        &[
            "python3",
            "-c",
            OPEN_BY_HANDLE,
            &s(&disk.mountpoint),
            &handle,
        ],
        "write",
    );
    assert_eq!(ev["protected"], "(unresolved: failed closed)", "{ev}");
    assert_eq!(read(&file), "precious");

    // A descriptor a non-agent opened for writing and handed over: no shared writable
    // mapping of it, by mmap or mprotect.
    let db = s(&prod.join("db"));
    let handed = format!("exec 3<>{db}");
    let ev = refused(
        &d,
        a,
        &handed,
        &["python3", "-c", MMAP_SHARED_WRITE],
        "write",
    );
    assert_eq!(ev["what"], "mmap MAP_SHARED PROT_WRITE", "{ev}");
    let ev = refused(&d, a, &handed, &["python3", "-c", MPROTECT_WRITE], "write");
    assert_eq!(
        ev["what"], "mprotect PROT_WRITE of a shared mapping",
        "{ev}"
    );
    assert_eq!(read(&prod.join("db")), "precious");

    // The block device beneath every file rule, and memory.
    let ev = refused(
        &d,
        a,
        "",
        &["python3", "-c", OPEN_WRITE, "/dev/ram0"],
        "raw-device",
    );
    assert_eq!(ev["what"], "block device 1:0", "{ev}");
    let mem = outside.join("mem");
    ok(
        &as_host(&["mknod", &s(&mem), "c", "1", "1"]),
        "host mknod mem",
    );
    let ev = refused(
        &d,
        a,
        "",
        &["python3", "-c", OPEN_WRITE, &s(&mem)],
        "raw-device",
    );
    assert_eq!(ev["what"], "character device 1:1", "{ev}");

    // A non-agent does all of it.
    let mark = d.mark();
    ok(
        &as_host(&["python3", "-c", APPEND, &old]),
        "host write through the old link",
    );
    ok(
        &as_host(&[
            "python3",
            "-c",
            OPEN_BY_HANDLE,
            &s(&disk.mountpoint),
            &handle,
        ]),
        "host open_by_handle_at",
    );
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("{handed}; exec python3 -c \"$0\""),
            MMAP_SHARED_WRITE,
        ])
        .output()
        .expect("sh");
    ok(&out, "host shared writable mapping");
    ok(
        &as_host(&["python3", "-c", OPEN_WRITE, "/dev/ram0"]),
        "host opens the block device for writing",
    );
    d.none_since(mark, "the host's operations");
    assert_eq!(read(&prod.join("db")), "Xrecious");
    drop(d);
    drop(disk);
}

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
