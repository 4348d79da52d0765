//! Cgroups made below an agent cgroup are the agent's, at any depth, whether made after the
//! daemon started or before it.

use super::*;

#[test]
fn lsm_subcgroups_of_an_agent_are_the_agent() {
    require_bpf_lsm();
    let dir = scratch("cg-sub");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("prod/other.txt"), "precious");
    let agent = "cg-sub";
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    let own = cg(&format!("governor-test/{agent}"));
    let sub = own.join("sub");
    let deeper = sub.join("deeper");
    let db = s(&dir.join("prod/db.sqlite"));

    // The agent makes a cgroup below its own, moves in, and is still the agent; then once
    // more, one level further down.
    for (cgroup, depth) in [(&sub, "one level"), (&deeper, "two levels")] {
        let mark = d.mark();
        let script = format!(
            "mkdir -p '{c}' && echo $$ > '{c}/cgroup.procs' && grep -qx '0::{rel}' /proc/self/cgroup \
             && exec rm '{db}'",
            c = cgroup.display(),
            rel = cgroup.strip_prefix(CGROUP2).map(|r| format!("/{}", r.display())).unwrap_or_default(),
        );
        let out = d.as_agent(agent, &["sh", "-c", &script]);
        assert_eperm(&out, &format!("rm from a sub-cgroup ({depth})"));
        assert!(
            dir.join("prod/db.sqlite").exists(),
            "{depth}: target unchanged"
        );
        let ev = d.one_since(mark, "deny unlink from sub-cgroup", |v| {
            v["class"] == "unlink" && v["name"] == "db.sqlite"
        });
        assert_eq!(ev["decision"], "deny", "{ev}");
        assert_eq!(
            ev["agent"], agent,
            "{depth}: the event names the agent: {ev}"
        );
        assert_eq!(ev["comm"], "rm", "{ev}");
        assert_eq!(
            ev["cgroup_id"],
            id(cgroup),
            "{depth}: the event carries the sub-cgroup's own id: {ev}"
        );
    }

    // A non-agent's cgroup elsewhere, also with a sub-cgroup: unaffected.
    let plain = cg("governor-test/cg-sub-plain");
    let plain_sub = plain.join("sub");
    std::fs::create_dir_all(&plain_sub).expect("mkdir non-agent cgroups");
    let mark = d.mark();
    let out = run_in_cgroup(
        "governor-test/cg-sub-plain/sub",
        0,
        0,
        &["rm", &s(&dir.join("prod/other.txt"))],
    );
    assert_ok(&out, "non-agent rm from its own sub-cgroup");
    assert!(!dir.join("prod/other.txt").exists());
    d.none_since(mark, "non-agent sub-cgroup");

    // Removing the agent's sub-cgroups and making them again (new ids) works the same.
    remove(&[&deeper, &sub]);
    assert!(!sub.exists(), "sub-cgroups removed once empty");
    let mark = d.mark();
    let script = format!(
        "mkdir -p '{c}' && echo $$ > '{c}/cgroup.procs' && exec rm '{db}'",
        c = sub.display()
    );
    let out = d.as_agent(agent, &["sh", "-c", &script]);
    assert_eperm(&out, "rm from a re-made sub-cgroup");
    let ev = d.one_since(mark, "deny from re-made sub-cgroup", |v| {
        v["class"] == "unlink"
    });
    assert_eq!(ev["agent"], agent, "{ev}");
    assert_eq!(ev["cgroup_id"], id(&sub), "{ev}");
    remove(&[&sub, &plain_sub, &plain]);
}

#[test]
fn lsm_subcgroups_made_before_the_daemon_are_the_agent() {
    require_bpf_lsm();
    let dir = scratch("cg-pre");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("move.py"), MOVE);
    let agent = "cg-pre";
    let inner_rel = format!("governor-test/{agent}/pre/inner");
    let inner = cg(&inner_rel);
    std::fs::create_dir_all(&inner).expect("mkdir sub-cgroups before the daemon");
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    let registered = d
        .logged()
        .into_iter()
        .find(|v| v["message"] == "cgroups below the agent cgroup count as the agent's")
        .expect("a line about the agent's existing sub-cgroups");
    assert_eq!(registered["agent"], agent, "{registered}");
    assert_eq!(registered["existing"], 2, "{registered}");
    assert_eq!(registered["registered"], 2, "{registered}");

    let mark = d.mark();
    let out = run_in_cgroup(&inner_rel, 0, 0, &["rm", &s(&dir.join("prod/db.sqlite"))]);
    assert_eperm(&out, "rm from a sub-cgroup made before the daemon");
    assert!(dir.join("prod/db.sqlite").exists());
    let ev = d.one_since(mark, "deny unlink", |v| v["class"] == "unlink");
    assert_eq!(ev["agent"], agent, "{ev}");
    assert_eq!(ev["cgroup_id"], id(&inner), "{ev}");

    // And it cannot leave for the root cgroup from there either.
    let mark = d.mark();
    let out = run_in_cgroup(
        &inner_rel,
        0,
        0,
        &[
            "python3",
            &s(&dir.join("move.py")),
            &format!("{CGROUP2}/cgroup.procs"),
        ],
    );
    let got = lines(&out, "move from inner", 1);
    assert_eq!(
        got[0][1..],
        ["open", "EPERM", &format!("/{inner_rel}")],
        "{got:?}"
    );
    escape_event(&d, mark, agent, id(Path::new(CGROUP2)));
    drop(d);
    remove(&[&inner, inner.parent().expect("pre")]);
}
