//! io_uring: operations submitted through a ring are decided by the same hooks (the kernel's
//! io_uring code calls the same VFS/LSM paths, from io-wq workers that belong to the
//! submitting task's cgroup).

use std::{ffi::CString, os::unix::ffi::OsStrExt, path::Path, process::Command};

use governor_kernel_tests::{
    assert_ok, governor_bin, policy_denying, require_bpf_lsm, scratch, write, Daemon,
};
use io_uring::{opcode, types, IoUring};

/// Env var naming the directory the helper operates on.
const TARGET_ENV: &str = "GOVERNOR_URING_DIR";

/// Submits one SQE and returns its result (negative errno on failure).
fn submit(ring: &mut IoUring, sqe: io_uring::squeue::Entry) -> i32 {
    // SAFETY: the entry's buffers (paths) outlive submit_and_wait below.
    unsafe { ring.submission().push(&sqe).expect("queue full") };
    ring.submit_and_wait(1).expect("io_uring_enter");
    ring.completion().next().expect("completion").result()
}

/// Not a test on its own: run by [`lsm_io_uring_ops_are_enforced`] (as the agent and as a
/// plain process) with `GOVERNOR_URING_DIR` set. Prints one `op=result` line per operation.
#[test]
#[ignore = "helper process for lsm_io_uring_ops_are_enforced"]
fn uring_helper() {
    let dir = std::env::var_os(TARGET_ENV).expect("GOVERNOR_URING_DIR");
    let dir = Path::new(&dir);
    let c = |rel: &str| CString::new(dir.join(rel).as_os_str().as_bytes()).expect("path");
    let mut ring = IoUring::new(8).expect("io_uring_setup");
    let cwd = types::Fd(libc::AT_FDCWD);
    let victim = c("prod/db.sqlite");
    let r = submit(
        &mut ring,
        opcode::UnlinkAt::new(cwd, victim.as_ptr()).build(),
    );
    println!("unlinkat={r}");
    let moved = c("scratch/moved");
    let r = submit(
        &mut ring,
        opcode::RenameAt::new(cwd, victim.as_ptr(), cwd, moved.as_ptr()).build(),
    );
    println!("renameat={r}");
    let r = submit(
        &mut ring,
        opcode::OpenAt::new(cwd, victim.as_ptr())
            .flags(libc::O_WRONLY | libc::O_TRUNC)
            .build(),
    );
    println!("openat_write={r}");
    if r >= 0 {
        // SAFETY: closing the descriptor the ring opened.
        unsafe { libc::close(r) };
    }
}

fn results(stdout: &[u8]) -> Vec<(String, i32)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn lsm_io_uring_ops_are_enforced() {
    require_bpf_lsm();
    let dir = scratch("io-uring");
    write(&dir.join("prod/db.sqlite"), "precious");
    std::fs::create_dir_all(dir.join("scratch")).expect("mkdir");
    let d = Daemon::start(
        &dir,
        &policy_denying("agent-uring", "enforce", &dir.join("prod"), "modify"),
    );
    let me = std::env::current_exe().expect("current exe");
    let helper = [
        "--exact",
        "io_uring::uring_helper",
        "--ignored",
        "--nocapture",
        "--quiet",
    ];

    let out = Command::new(governor_bin())
        .args(["run", "--policy"])
        .arg(&d.policy)
        .args(["--agent", "agent-uring", "--"])
        .arg(&me)
        .args(helper)
        .env(TARGET_ENV, &dir)
        .output()
        .expect("run helper as agent");
    assert_ok(&out, "io_uring helper (agent)");
    let got = results(&out.stdout);
    assert_eq!(
        got,
        vec![
            ("unlinkat".to_owned(), -libc::EPERM),
            ("renameat".to_owned(), -libc::EPERM),
            ("openat_write".to_owned(), -libc::EPERM),
        ],
        "agent's io_uring operations must all fail with EPERM; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("prod/db.sqlite")).expect("still there"),
        "precious"
    );
    for class in ["unlink", "rename", "write"] {
        d.wait_decision(&format!("io_uring {class}"), |v| {
            v["class"] == class && v["name"] == "db.sqlite"
        });
    }

    // The same ring operations from a non-agent process succeed.
    let out = Command::new(&me)
        .args(helper)
        .env(TARGET_ENV, &dir)
        .output()
        .expect("run helper on host");
    assert_ok(&out, "io_uring helper (host)");
    let got = results(&out.stdout);
    assert_eq!(got.first(), Some(&("unlinkat".to_owned(), 0)), "{got:?}");
    assert!(!dir.join("prod/db.sqlite").exists());
}
