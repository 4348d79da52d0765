//! An agent cannot control cgroups outside its own through files it opens itself: interface
//! files (freeze, kill, limits, subtree control), making, removing or renaming cgroups, and
//! its own top cgroup's files; the subtree below its top is its to manage, and a non-agent
//! does all of it.

use super::*;

#[test]
fn lsm_agent_cannot_control_cgroups_outside_its_own() {
    require_bpf_lsm();
    let dir = scratch("cg-ctl");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("control.py"), CONTROL);
    let script = dir.join("control.py");
    let agent = "cg-ctl";
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    let own = cg(&format!("governor-test/{agent}"));
    let outside = cg("governor-test/cg-ctl-outside");
    let child = outside.join("child");
    std::fs::create_dir_all(&child).expect("mkdir non-agent cgroups");
    enable_pids();
    assert!(
        outside.join("pids.max").exists() && own.join("pids.max").exists(),
        "the VM must offer the pids controller"
    );
    // A non-agent process lives in the outside cgroup's child.
    let mut sleeper = spawn_in_cgroup(
        "governor-test/cg-ctl-outside/child",
        0,
        0,
        &["sleep", "300"],
    );
    let w = |p: &Path, file: &str, v: &str| format!("w:{}:{v}", p.join(file).display());
    let on = |op: &str, p: &Path| format!("{op}:{}", p.display());

    // Outside its agent: every interface file, and making, removing or renaming cgroups.
    let mark = d.mark();
    let refused = [
        w(&outside, "cgroup.freeze", "1"),
        w(&child, "cgroup.kill", "1"),
        w(&outside, "pids.max", "1"),
        w(&outside, "cgroup.subtree_control", "-pids"),
        w(&outside, "cgroup.max.descendants", "0"),
        w(Path::new(CGROUP2), "cgroup.subtree_control", "-pids"),
        on("mkdir", &outside.join("new")),
        on("mkdir", &cg("cg-ctl-top")),
        on("rmdir", &child),
        // (cgroup v2 cannot rename at all; governor refuses before the kernel does: the
        // event below shows it.)
        format!("mv:{}:{}", child.display(), outside.join("moved").display()),
        // Its own top cgroup sits in governor-test: removing it is refused too.
        on("rmdir", &own),
        // Its top cgroup's interface files belong to governor and the operator.
        w(&own, "cgroup.freeze", "0"),
        w(&own, "cgroup.kill", "0"),
        w(&own, "pids.max", "1000"),
        w(&own, "cgroup.max.descendants", "0"),
        w(&own, "cgroup.subtree_control", "+pids"),
        w(&own, "cgroup.type", "domain"),
    ];
    let ops: Vec<(String, &str)> = refused
        .iter()
        .map(|op| {
            let want = if op.starts_with("w:") {
                "open-EPERM"
            } else {
                "EPERM"
            };
            (op.clone(), want)
        })
        .collect();
    control(&d, Some(agent), &script, &ops);
    // Nothing changed: the sleeper lives, unfrozen; limits and cgroups as they were.
    assert!(
        matches!(sleeper.try_wait(), Ok(None)),
        "cgroup.kill refused"
    );
    assert!(read(&outside.join("cgroup.events")).contains("frozen 0"));
    assert_eq!(read(&outside.join("pids.max")), "max");
    assert_eq!(read(&own.join("pids.max")), "max");
    assert_eq!(read(&outside.join("cgroup.max.descendants")), "max");
    assert_eq!(read(&own.join("cgroup.max.descendants")), "max");
    assert_eq!(read(&own.join("cgroup.type")), "domain");
    assert!(read(&outside.join("cgroup.subtree_control")).is_empty());
    assert!(child.exists() && own.exists());
    assert!(!outside.join("new").exists() && !outside.join("moved").exists());
    assert!(!cg("cg-ctl-top").exists());
    // One event per refusal, each naming the cgroup checked.
    let events = decisions_since(&d, mark, refused.len());
    assert_eq!(events.len(), refused.len(), "{events:#?}");
    for ev in &events {
        assert_eq!(ev["class"], "cgroup-control", "{ev}");
        assert_eq!(ev["decision"], "deny", "{ev}");
        assert_eq!(ev["agent"], agent, "{ev}");
        assert_eq!(ev["comm"], "python3", "{ev}");
        assert_eq!(ev["cgroup_id"], id(&own), "{ev}");
    }
    let find = |name: &str, cgroup: &Path| {
        let what = format!("cgroup id {}", id(cgroup));
        assert!(
            events
                .iter()
                .any(|v| v["name"] == name && v["what"] == what),
            "no event for {name} in {}: {events:#?}",
            cgroup.display()
        );
    };
    find("cgroup.freeze", &outside);
    find("cgroup.kill", &child);
    find("pids.max", &outside);
    // mkdir, rmdir and rename in it: the directory written is the cgroup itself.
    assert_eq!(
        events
            .iter()
            .filter(|v| v["name"] == "cg-ctl-outside"
                && v["what"] == format!("cgroup id {}", id(&outside)))
            .count(),
        3,
        "{events:#?}"
    );
    find("", Path::new(CGROUP2)); // mkdir in the root cgroup
    find("governor-test", &cg("governor-test")); // rmdir of its own top cgroup
    find("cgroup.freeze", &own);
    find("cgroup.kill", &own);

    // Its own subtree below the top: cgroups it makes are its to manage.
    let sub = own.join("sub");
    let mark = d.mark();
    let ops = [
        (on("mkdir", &sub), "ok"),
        (on("mkdir", &sub.join("deeper")), "ok"),
        (w(&sub, "cgroup.max.descendants", "3"), "ok"),
        (w(&sub, "cgroup.freeze", "1"), "ok"),
        (on("rmdir", &sub.join("deeper")), "ok"),
    ];
    let ops: Vec<(String, &str)> = ops.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control(&d, Some(agent), &script, &ops);
    assert_eq!(read(&sub.join("cgroup.max.descendants")), "3");
    assert!(read(&sub.join("cgroup.events")).contains("frozen 1"));
    assert!(!sub.join("deeper").exists());
    control(
        &d,
        Some(agent),
        &script,
        &[
            (w(&sub, "cgroup.freeze", "0"), "ok"),
            (on("rmdir", &sub), "ok"),
        ],
    );
    assert!(!sub.exists());
    d.none_since(mark, "the agent's own sub-cgroups");

    // A non-agent (root) does all of it, the refused writes included.
    let mark = d.mark();
    let host = [
        (w(&outside, "pids.max", "100"), "ok"),
        (w(&outside, "cgroup.max.descendants", "5"), "ok"),
        (w(&outside, "cgroup.freeze", "1"), "ok"),
        (w(&outside, "cgroup.freeze", "0"), "ok"),
        (w(&own, "pids.max", "1000"), "ok"),
        (on("mkdir", &outside.join("new")), "ok"),
        (on("rmdir", &outside.join("new")), "ok"),
        (w(&child, "cgroup.kill", "1"), "ok"),
    ];
    let host: Vec<(String, &str)> = host.iter().map(|(o, r)| (o.clone(), *r)).collect();
    control(&d, None, &script, &host);
    assert_eq!(read(&outside.join("pids.max")), "100");
    assert_eq!(read(&own.join("pids.max")), "1000");
    let status = sleeper.wait().expect("wait for the sleeper");
    assert!(!status.success(), "killed through cgroup.kill: {status}");
    d.none_since(mark, "non-agent cgroup writes");
    std::fs::write(own.join("pids.max"), "max").expect("reset pids.max");
    drop(d);
    remove(&[&child, &outside]);
}
