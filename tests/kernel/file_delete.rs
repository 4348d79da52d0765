//! The first enforced class: unlink/rmdir under a protected directory from an agent cgroup.

use std::path::Path;

use governor_kernel_tests::paths::p;
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok, policy, policy_denying, require_bpf_lsm, scratch, write,
    Daemon,
};

/// A protected tree `prod/` (with a nested file) and an unprotected `scratch/`.
fn layout(dir: &Path) {
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("prod/deep/a/b/c/report.csv"), "precious");
    write(&dir.join("scratch/tmp.txt"), "junk");
}

#[test]
fn lsm_agent_delete_denied_host_allowed() {
    require_bpf_lsm();
    let dir = scratch("delete");
    layout(&dir);
    let d = Daemon::start(&dir, &policy("agent-del", "enforce", &dir.join("prod")));

    // The agent cannot unlink a file in the protected directory...
    let out = d.as_agent("agent-del", &["rm", &p(&dir, "prod/db.sqlite")]);
    assert_eperm(&out, "agent rm prod/db.sqlite");
    assert!(
        dir.join("prod/db.sqlite").exists(),
        "target must be unchanged"
    );
    let ev = d.wait_decision("deny unlink db.sqlite", |v| {
        v["decision"] == "deny" && v["name"] == "db.sqlite"
    });
    assert_eq!(ev["agent"], "agent-del");
    assert_eq!(ev["class"], "unlink");
    assert_eq!(ev["comm"], "rm");
    assert_eq!(ev["protected"], p(&dir, "prod"));
    assert_eq!(ev["depth"], 1);
    assert!(ev["pid"].as_u64().is_some_and(|x| x > 1), "{ev}");
    assert!(ev["cgroup_id"].as_u64().is_some_and(|x| x > 1), "{ev}");
    assert!(ev["boot_ns"].as_u64().is_some_and(|x| x > 0), "{ev}");
    assert_eq!(ev["uid"], 0);

    // ...nor anything deep below it, nor the directory itself (rm -rf: unlink + rmdir).
    let out = d.as_agent("agent-del", &["rm", "-rf", &p(&dir, "prod")]);
    assert_eperm(&out, "agent rm -rf prod");
    assert!(dir.join("prod/deep/a/b/c/report.csv").exists());
    assert!(dir.join("prod/db.sqlite").exists());
    let out = d.as_agent("agent-del", &["rmdir", &p(&dir, "prod/deep/a/b/c")]);
    assert!(!out.status.success(), "rmdir of non-empty dir fails anyway");
    d.wait_decision("deny unlink deep report.csv", |v| {
        v["name"] == "report.csv" && v["depth"] == 5
    });

    // An empty protected subdirectory: rmdir is denied by the policy, not by ENOTEMPTY.
    std::fs::create_dir_all(dir.join("prod/empty")).expect("mkdir");
    let out = d.as_agent("agent-del", &["rmdir", &p(&dir, "prod/empty")]);
    assert_eperm(&out, "agent rmdir prod/empty");
    assert!(dir.join("prod/empty").is_dir());
    d.wait_decision("deny rmdir empty", |v| {
        v["class"] == "rmdir" && v["name"] == "empty"
    });

    // The agent can still delete outside the protected directory.
    let out = d.as_agent("agent-del", &["rm", &p(&dir, "scratch/tmp.txt")]);
    assert_ok(&out, "agent rm scratch/tmp.txt");
    assert!(!dir.join("scratch/tmp.txt").exists());

    // A process outside agent cgroups can delete in the protected directory.
    let out = as_host(&["rm", &p(&dir, "prod/db.sqlite")]);
    assert_ok(&out, "host rm prod/db.sqlite");
    assert!(!dir.join("prod/db.sqlite").exists());

    // Nothing but the agent's operations produced events.
    let decisions = d.decisions();
    assert!(
        decisions.iter().all(|v| v["agent"] == "agent-del"),
        "{decisions:#?}"
    );
    let log = d.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("stopped; enforcement stays pinned")),
        "{log:#?}"
    );
}

#[test]
fn lsm_bypass_attempts_are_denied() {
    require_bpf_lsm();
    let dir = scratch("bypass");
    layout(&dir);
    std::os::unix::fs::symlink(dir.join("prod"), dir.join("via-symlink")).expect("symlink");
    let d = Daemon::start(&dir, &policy("agent-bypass", "enforce", &dir.join("prod")));

    // Through a symlink to the protected directory.
    let out = d.as_agent("agent-bypass", &["rm", &p(&dir, "via-symlink/db.sqlite")]);
    assert_eperm(&out, "rm via symlink");
    // Through `..` from inside the tree.
    let dotdot = p(&dir, "prod/deep/a/../../db.sqlite");
    let out = d.as_agent("agent-bypass", &["rm", &dotdot]);
    assert_eperm(&out, "rm via ..");
    // From an interpreter making the syscall itself.
    let script = format!("import os; os.remove({:?})", p(&dir, "prod/db.sqlite"));
    let out = d.as_agent("agent-bypass", &["python3", "-c", &script]);
    assert_eperm(&out, "python3 os.remove");
    // Relative to a directory descriptor (unlinkat with a dirfd inside the tree).
    let script = format!(
        "import os; fd = os.open({:?}, os.O_RDONLY); os.unlink('report.csv', dir_fd=fd)",
        p(&dir, "prod/deep/a/b/c")
    );
    let out = d.as_agent("agent-bypass", &["python3", "-c", &script]);
    assert_eperm(&out, "python3 unlinkat(dirfd)");
    assert!(dir.join("prod/db.sqlite").exists());
    assert!(dir.join("prod/deep/a/b/c/report.csv").exists());
    // A child of a child still counts (same cgroup).
    let out = d.as_agent(
        "agent-bypass",
        &[
            "sh",
            "-c",
            &format!("sh -c 'rm {}'", p(&dir, "prod/db.sqlite")),
        ],
    );
    assert!(!out.status.success(), "nested shell rm must fail");
    assert!(dir.join("prod/db.sqlite").exists());
}

#[test]
fn lsm_observe_mode_records_but_allows() {
    require_bpf_lsm();
    let dir = scratch("observe");
    layout(&dir);
    let d = Daemon::start(
        &dir,
        &policy_denying("agent-obs", "observe", &dir.join("prod"), "delete, write"),
    );
    let out = d.as_agent("agent-obs", &["rm", &p(&dir, "prod/db.sqlite")]);
    assert_ok(&out, "observe-mode agent rm");
    assert!(!dir.join("prod/db.sqlite").exists());
    let ev = d.wait_decision("observe-deny", |v| v["name"] == "db.sqlite");
    assert_eq!(ev["decision"], "observe-deny");
    assert_eq!(ev["agent"], "agent-obs");

    // A file made where writes are refused: one would-be deny, recorded once, although
    // open(O_CREAT) asks both `path_mknod` and `inode_create`.
    let mark = d.mark();
    let out = d.as_agent("agent-obs", &["touch", &p(&dir, "prod/made")]);
    assert_ok(&out, "observe-mode agent touch");
    assert!(dir.join("prod/made").exists());
    let ev = d.one_since(mark, "observe-deny create", |v| v["name"] == "made");
    assert_eq!(
        (&ev["decision"], &ev["class"]),
        (&"observe-deny".into(), &"write".into()),
        "{ev}"
    );
}
