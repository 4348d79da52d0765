//! Other names, handles, mappings and devices lead to the protected inode: hard links (made
//! before the daemon started, or by the agent), handles opened after the caches were dropped
//! (open_by_handle_at(2)), shared writable mappings of a handed descriptor, and the block
//! device beneath the filesystem (a brd RAM disk).

use super::*;

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
