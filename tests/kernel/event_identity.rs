//! What a decision event says about the target and the actor, as the kernel recorded it at
//! decision time: the target's resolved path (through the mount it was reached by, marked
//! when truncated or when the mount is unknown) and the acting process's executable, right
//! even after that process has exited.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, policy_denying, require_bpf_lsm, scratch, write, Daemon,
};
use serde_json::Value;

/// The real path of `cmd` as found on PATH (what the kernel names as the executable: a
/// symlink such as /bin/sh -> dash is followed, busybox applets resolve to busybox).
fn which(cmd: &str) -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH is set");
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|c| c.is_file())
        .and_then(|c| std::fs::canonicalize(c).ok())
        .unwrap_or_else(|| panic!("{cmd} not found on PATH"))
}

/// The root of the filesystem holding `path`: its highest ancestor on the same device.
fn fs_root(path: &Path) -> PathBuf {
    let dev = std::fs::metadata(path).expect("stat").dev();
    let mut root = path.to_path_buf();
    while let Some(parent) = root.parent() {
        if std::fs::metadata(parent).expect("stat parent").dev() != dev {
            break;
        }
        root = parent.to_path_buf();
    }
    root
}

fn str_of<'a>(ev: &'a Value, key: &str) -> &'a str {
    ev[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}` in {ev}"))
}

#[test]
fn lsm_file_events_carry_the_resolved_path_and_exe() {
    require_bpf_lsm();
    let dir = std::fs::canonicalize(scratch("event-paths")).expect("canonical scratch");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("prod/deep/a/b/report.csv"), "precious");
    // Three 200-byte names: more than the 480 bytes an event holds.
    let long: Vec<String> = ["l", "m", "n"].iter().map(|c| c.repeat(200)).collect();
    let long_file = dir
        .join("prod")
        .join(&long[0])
        .join(&long[1])
        .join(&long[2])
        .join("f");
    write(&long_file, "precious");
    std::fs::create_dir_all(dir.join("prod/sub")).expect("mkdir sub");
    std::fs::create_dir_all(dir.join("scratch/mnt")).expect("mkdir mnt");
    // A filesystem mounted inside the protected tree, and a bind mount of the tree elsewhere.
    let sub = dir.join("prod/sub");
    assert_ok(
        &as_host(&["mount", "-t", "tmpfs", "evsub", &s(&sub)]),
        "mount tmpfs",
    );
    write(&sub.join("c.txt"), "precious");
    let bind = dir.join("scratch/mnt");
    assert_ok(
        &as_host(&["mount", "--bind", &s(&dir.join("prod")), &s(&bind)]),
        "bind mount",
    );
    let rm = which("rm");
    let a = "agent-evpath";
    let d = Daemon::start(
        &dir,
        &policy_denying(a, "enforce", &dir.join("prod"), "modify"),
    );

    // A nested protected file: the full absolute path, and the rm binary as exe.
    let target = dir.join("prod/deep/a/b/report.csv");
    let mark = d.mark();
    assert_eperm(&d.as_agent(a, &["rm", &s(&target)]), "rm nested");
    let ev = d.one_since(mark, "rm nested", |v| v["class"] == "unlink");
    assert_eq!(str_of(&ev, "path"), s(&target), "{ev}");
    assert_eq!(str_of(&ev, "exe"), s(&rm), "{ev}");
    assert_eq!(ev["name"], "report.csv", "{ev}");
    let rm_ino = std::fs::metadata(&rm).expect("stat rm").ino();
    assert_eq!(ev["exe_ino"], rm_ino, "{ev}");

    // Through the bind mount: named through the mount it was reached by.
    let via_bind = bind.join("deep/a/b/report.csv");
    let mark = d.mark();
    assert_eperm(&d.as_agent(a, &["rm", &s(&via_bind)]), "rm via bind mount");
    let ev = d.one_since(mark, "rm via bind", |v| v["class"] == "unlink");
    assert_eq!(str_of(&ev, "path"), s(&via_bind), "{ev}");

    // On a filesystem mounted inside the tree: the walk crosses to its mountpoint.
    let mark = d.mark();
    assert_eperm(
        &d.as_agent(a, &["rm", &s(&sub.join("c.txt"))]),
        "rm in inner mount",
    );
    let ev = d.one_since(mark, "rm inner", |v| v["class"] == "unlink");
    assert_eq!(str_of(&ev, "path"), s(&sub.join("c.txt")), "{ev}");

    // Longer than the field: the lowest components, marked as truncated.
    let mark = d.mark();
    assert_eperm(&d.as_agent(a, &["rm", &s(&long_file)]), "rm long path");
    let ev = d.one_since(mark, "rm long", |v| v["class"] == "unlink");
    assert_eq!(
        str_of(&ev, "path"),
        format!(".../{}/{}/f", long[1], long[2]),
        "{ev}"
    );

    // An inode hook gets no mount: the path is relative to the filesystem's root, and says so.
    let db = dir.join("prod/db.sqlite");
    let code = format!("import os; os.setxattr({:?}, 'trusted.gov', b'1')", s(&db));
    let mark = d.mark();
    assert_eperm(&d.as_agent(a, &["python3", "-c", &code]), "setxattr");
    let ev = d.one_since(mark, "setxattr", |v| v["class"] == "xattr");
    let root = fs_root(&db);
    let rel = db.strip_prefix(&root).expect("under its fs root");
    assert_eq!(
        str_of(&ev, "path"),
        format!("(fsroot)/{}", rel.display()),
        "{ev}"
    );
    assert_eq!(str_of(&ev, "exe"), s(&which("python3")), "{ev}");

    // A short-lived process: it has exited before the daemon reads the event, and its own
    // copy of rm is named, not whatever /proc would say later.
    let own_rm = dir.join("bin/rm");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir bin");
    std::fs::copy(&rm, &own_rm).expect("copy rm");
    let daemon = d.pid() as i32;
    let mark = d.mark();
    // SAFETY: plain kill(2) on the daemon we started.
    assert_eq!(
        unsafe { libc::kill(daemon, libc::SIGSTOP) },
        0,
        "SIGSTOP daemon"
    );
    let out = d.as_agent(a, &[&s(&own_rm), &s(&db)]);
    std::fs::remove_file(&own_rm).expect("remove own rm");
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::kill(daemon, libc::SIGCONT) },
        0,
        "SIGCONT daemon"
    );
    assert_eperm(&out, "short-lived rm");
    let ev = d.one_since(mark, "short-lived rm", |v| v["class"] == "unlink");
    assert_eq!(str_of(&ev, "exe"), s(&own_rm), "{ev}");
    assert_eq!(str_of(&ev, "path"), s(&db), "{ev}");

    assert!(target.exists() && db.exists() && long_file.exists());
    d.stop();
    let _ = as_host(&["umount", &s(&bind)]);
    let _ = as_host(&["umount", &s(&sub)]);
}

#[test]
fn lsm_exec_and_network_events_carry_the_exe() {
    require_bpf_lsm();
    let dir = std::fs::canonicalize(scratch("event-exe")).expect("canonical scratch");
    let listed = dir.join("bin/listed-true");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir bin");
    std::fs::copy(which("true"), &listed).expect("copy true");
    let a = "agent-evexe";
    let policy = format!(
        "[policy]\nname = \"test-{a}\"\nowner = \"kernel-tests@example.com\"\n\n\
         [[agents]]\nname = \"{a}\"\ncgroup = \"governor-test/{a}\"\nmode = \"enforce\"\n\n\
         [[binaries]]\npath = \"{}\"\ndeny = [\"exec\"]\n\n\
         [[network]]\ncidr = \"127.0.0.9\"\nports = [9]\ndeny = [\"connect\"]\n",
        s(&listed)
    );
    let d = Daemon::start(&dir, &policy);

    // exec: decided while the shell's child still runs the shell, so exe is the shell and
    // path is the binary it tried to run.
    let mark = d.mark();
    let out = d.as_agent(a, &["sh", "-c", &format!("{}; true", s(&listed))]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted")
            || String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "exec of the listed binary must fail: {out:?}"
    );
    let ev = d.one_since(mark, "exec", |v| v["class"] == "exec");
    assert_eq!(str_of(&ev, "exe"), s(&which("sh")), "{ev}");
    assert_eq!(str_of(&ev, "path"), s(&listed), "{ev}");

    // connect: no file target, so no path; the exe is the interpreter.
    let code = "import socket\ns = socket.socket()\ns.connect(('127.0.0.9', 9))";
    let mark = d.mark();
    assert_eperm(&d.as_agent(a, &["python3", "-c", code]), "connect");
    let ev = d.one_since(mark, "connect", |v| v["class"] == "connect");
    assert_eq!(str_of(&ev, "exe"), s(&which("python3")), "{ev}");
    assert_eq!(str_of(&ev, "path"), "", "{ev}");
    d.stop();
}
