//! Lease decisions in the kernel: a class whose decision is `lease` is allowed only while a
//! matching, unexpired entry sits in the lease map; a lease grants exactly its scope (agent,
//! class, object and what is below it); `deny` cannot be lifted by any lease; expiry and
//! revocation block again at once; expiry runs on the boot-time clock, so setting the wall
//! clock back does not extend a lease. Agents' own decisions replace a resource's defaults.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use governor_common::Class;
use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    assert_eperm, assert_ok, lease::LeaseMap, require_bpf_lsm, scratch, write, Daemon,
};

/// Agent ids are the agents' positions in the policy.
const LESSEE: u32 = 0;

fn policy(dir: &Path) -> String {
    format!(
        r#"
[policy]
name = "leases"
owner = "kernel-tests@example.com"

[[agents]]
name = "lessee"
cgroup = "governor-test/lessee"

[[agents]]
name = "trusted"
cgroup = "governor-test/trusted"

[[protect]]
path = "{prod}"
deny = ["rmdir", "chmod"]
lease = ["unlink", "write"]
allow = ["rename", "truncate", "unix-connect"]

[[protect.agent]]
name = "trusted"
allow = ["unlink"]

[[binaries]]
path = "{tool}"
lease = ["exec"]
"#,
        prod = dir.join("prod").display(),
        tool = dir.join("bin/tool").display(),
    )
}

fn layout(dir: &Path) {
    for f in [
        "a",
        "b",
        "c",
        "w",
        "e",
        "clock",
        "t",
        "sub/x",
        "sub/y",
        "empty/.keep",
    ] {
        write(&dir.join("prod").join(f), "precious");
    }
    std::fs::remove_file(dir.join("prod/empty/.keep")).expect("empty dir");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir bin");
    // A copy, not a link: its own inode, so only it is listed.
    std::fs::copy("/bin/true", dir.join("bin/tool")).expect("copy true");
}

/// `sh -c 'echo more >> FILE'` as the lessee.
fn append(d: &Daemon, file: &Path) -> std::process::Output {
    d.as_agent(
        "lessee",
        &["sh", "-c", &format!("echo more >> '{}'", file.display())],
    )
}

/// Sets CLOCK_REALTIME to `secs` since the epoch.
fn set_wall_clock(secs: i64) {
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    // SAFETY: clock_settime reads the timespec we own.
    let rc = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) };
    assert_eq!(rc, 0, "clock_settime: {}", std::io::Error::last_os_error());
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs() as i64
}

#[test]
fn lsm_leases_grant_exactly_their_scope_until_they_end() {
    require_bpf_lsm();
    let dir = scratch("leases");
    layout(&dir);
    let prod = dir.join("prod");
    let d = Daemon::start(&dir, &policy(&dir));
    let mut leases = LeaseMap::open();
    let long = Duration::from_secs(600);

    // No lease: a lease-class operation is denied, and the event says a lease is required.
    let mark = d.mark();
    assert_eperm(
        &d.as_agent("lessee", &["rm", &s(&prod.join("a"))]),
        "rm a, no lease",
    );
    assert!(prod.join("a").exists());
    let ev = d.one_since(mark, "deny unlink a", |v| v["name"] == "a");
    assert_eq!(
        (
            &ev["decision"],
            &ev["class"],
            &ev["lease_required"],
            &ev["lease_id"]
        ),
        (&"deny".into(), &"unlink".into(), &true.into(), &0.into()),
        "{ev}"
    );

    // A lease on exactly that file: allowed, and recorded once with the lease id.
    leases.grant(LESSEE, Class::Unlink, &prod.join("a"), long, 7);
    let mark = d.mark();
    assert_ok(
        &d.as_agent("lessee", &["rm", &s(&prod.join("a"))]),
        "rm a, leased",
    );
    assert!(!prod.join("a").exists());
    let ev = d.one_since(mark, "lease-allow unlink a", |v| v["name"] == "a");
    assert_eq!(
        (&ev["decision"], &ev["class"], &ev["lease_id"], &ev["agent"]),
        (
            &"lease-allow".into(),
            &"unlink".into(),
            &7.into(),
            &"lessee".into()
        ),
        "{ev}"
    );

    // ...and nothing more: another file, another class, another agent.
    assert_eperm(&d.as_agent("lessee", &["rm", &s(&prod.join("b"))]), "rm b");
    leases.grant(LESSEE, Class::Unlink, &prod.join("c"), long, 8);
    assert_eperm(
        &append(&d, &prod.join("c")),
        "write c under an unlink lease",
    );
    assert_eq!(
        std::fs::read_to_string(prod.join("c")).expect("read c"),
        "precious"
    );

    // A lease on a directory covers what is below it.
    leases.grant(LESSEE, Class::Unlink, &prod.join("sub"), long, 9);
    assert_ok(
        &d.as_agent("lessee", &["rm", &s(&prod.join("sub/x"))]),
        "rm sub/x",
    );
    d.wait_decision("lease-allow sub/x", |v| {
        v["name"] == "x" && v["lease_id"] == 9
    });
    assert_eperm(
        &d.as_agent("lessee", &["rm", &s(&prod.join("b"))]),
        "rm b again",
    );

    // `deny` is not liftable, whatever the lease map holds.
    leases.grant(LESSEE, Class::Chmod, &prod.join("c"), long, 10);
    assert_eperm(
        &d.as_agent("lessee", &["chmod", "600", &s(&prod.join("c"))]),
        "chmod c",
    );
    leases.grant(LESSEE, Class::Rmdir, &prod.join("empty"), long, 11);
    assert_eperm(
        &d.as_agent("lessee", &["rmdir", &s(&prod.join("empty"))]),
        "rmdir empty",
    );
    assert!(prod.join("empty").is_dir());

    // A file made in a leased directory is one decision, recorded once: open(O_CREAT) asks
    // both `path_mknod` and `inode_create`, and the second is the same operation.
    leases.grant(LESSEE, Class::Write, &prod.join("sub"), long, 15);
    let mark = d.mark();
    assert_ok(
        &d.as_agent("lessee", &["touch", &s(&prod.join("sub/made"))]),
        "touch sub/made, leased",
    );
    assert!(prod.join("sub/made").exists());
    let ev = d.one_since(mark, "lease-allow create sub/made", |v| v["name"] == "made");
    assert_eq!(
        (&ev["decision"], &ev["class"], &ev["lease_id"]),
        (&"lease-allow".into(), &"write".into(), &15.into()),
        "{ev}"
    );
    // ...and without the lease, refused by the first of them, with one event.
    leases.revoke(LESSEE, Class::Write, &prod.join("sub"));
    let mark = d.mark();
    assert_eperm(
        &d.as_agent("lessee", &["touch", &s(&prod.join("sub/unmade"))]),
        "touch sub/unmade, lease revoked",
    );
    assert!(!prod.join("sub/unmade").exists());
    d.one_since(mark, "deny create sub/unmade", |v| {
        v["name"] == "unmade" && v["decision"] == "deny"
    });

    // Revocation blocks at once.
    leases.grant(LESSEE, Class::Write, &prod.join("w"), long, 12);
    let mark = d.mark();
    assert_ok(&append(&d, &prod.join("w")), "write w, leased");
    // The open is recorded; the write(2) through it only counted.
    d.one_since(mark, "lease-allow write w", |v| {
        v["decision"] == "lease-allow" && v["class"] == "write" && v["lease_id"] == 12
    });
    // A shared writable mapping would go on writing after the lease ends, with no hook to
    // ask: refused even under the lease, with one deny event.
    let mark = d.mark();
    assert_eperm(
        &d.as_agent(
            "lessee",
            &[
                "python3",
                "-c",
                "import mmap, os, sys\n\
                 fd = os.open(sys.argv[1], os.O_RDWR)\n\
                 mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)\n",
                &s(&prod.join("w")),
            ],
        ),
        "shared writable mapping of w under a write lease",
    );
    let ev = d.wait_decision_after(mark, "deny of the mapping under a lease", |v| {
        v["decision"] == "deny" && v["class"] == "write"
    });
    assert_eq!(ev["what"], "mmap MAP_SHARED PROT_WRITE", "{ev}");
    // The open for reading and writing is the lease's (recorded); the mapping is refused.
    let since: Vec<_> = d.decisions().into_iter().skip(mark).collect();
    let decisions: Vec<_> = since.iter().map(|v| v["decision"].clone()).collect();
    assert_eq!(decisions, ["lease-allow", "deny"], "{since:#?}");
    leases.revoke(LESSEE, Class::Write, &prod.join("w"));
    assert_eperm(&append(&d, &prod.join("w")), "write w, revoked");

    // Expiry blocks again at once: the first write after the expiry instant is refused.
    let ttl = Duration::from_secs(3);
    leases.grant(LESSEE, Class::Write, &prod.join("e"), ttl, 13);
    let granted = Instant::now();
    assert_ok(&append(&d, &prod.join("e")), "write e before expiry");
    assert!(
        granted.elapsed() < ttl,
        "the VM was too slow to write before expiry"
    );
    thread::sleep(ttl.saturating_sub(granted.elapsed()));
    assert_eperm(&append(&d, &prod.join("e")), "write e, just expired");

    // Setting the wall clock back a day does not extend a lease: expiry is boot time.
    leases.grant(LESSEE, Class::Write, &prod.join("clock"), ttl, 14);
    let granted = Instant::now();
    let now = wall_clock();
    set_wall_clock(now - 86_400);
    assert_ok(
        &append(&d, &prod.join("clock")),
        "write clock before expiry",
    );
    thread::sleep(ttl.saturating_sub(granted.elapsed()));
    let out = append(&d, &prod.join("clock"));
    set_wall_clock(now + granted.elapsed().as_secs() as i64);
    assert_eperm(&out, "write clock after expiry, wall clock set back a day");

    // An agent's own decision replaces the default: `trusted` may unlink without a lease.
    let mark = d.mark();
    assert_ok(
        &d.as_agent("trusted", &["rm", &s(&prod.join("t"))]),
        "trusted rm t",
    );
    d.none_since(mark, "trusted rm t is a plain allow");
    // ...but not what it does not name: write stays `lease` for it too.
    assert_eperm(
        &d.as_agent(
            "trusted",
            &[
                "sh",
                "-c",
                &format!("echo more >> '{}'", prod.join("b").display()),
            ],
        ),
        "trusted write b",
    );

    // Exec of a listed binary under `lease`.
    let tool = s(&dir.join("bin/tool"));
    assert_eperm(&d.as_agent("lessee", &[&tool]), "exec tool, no lease");
    leases.grant(LESSEE, Class::Exec, &dir.join("bin/tool"), long, 15);
    let mark = d.mark();
    assert_ok(&d.as_agent("lessee", &[&tool]), "exec tool, leased");
    let ev = d.one_since(mark, "lease-allow exec", |v| v["class"] == "exec");
    assert_eq!(
        (&ev["decision"], &ev["lease_id"]),
        (&"lease-allow".into(), &15.into())
    );
}
