//! An agent cannot move a task out of its agent cgroup: not by writing `cgroup.procs` or
//! `cgroup.threads` (opened itself or received), nor by `clone3(CLONE_INTO_CGROUP)`.

use super::*;

#[test]
fn lsm_agent_cannot_move_tasks_out_of_its_cgroup() {
    require_bpf_lsm();
    let dir = scratch("cg-escape");
    write(&dir.join("prod/db.sqlite"), "precious");
    write(&dir.join("move.py"), MOVE);
    write(&dir.join("clone3.py"), CLONE3);
    // A regular file that merely has the name.
    write(&dir.join("cgroup.procs"), "");
    let agent = "cg-esc";
    let d = Daemon::start(&dir, &policy(agent, "enforce", &dir.join("prod")));
    let own = cg(&format!("governor-test/{agent}"));
    let own_rel = format!("/governor-test/{agent}");
    let sub = own.join("sub");
    let outside = cg("governor-test/cg-esc-outside");
    std::fs::create_dir_all(&outside).expect("mkdir non-agent cgroup");
    std::fs::create_dir_all(&sub).expect("mkdir the agent's sub-cgroup");
    let root = Path::new(CGROUP2);
    let mover = s(&dir.join("move.py"));

    // Writing its pid (opening cgroup.procs/threads for write) outside its agent: EPERM at
    // open, and it stays where it is. Inside its own subtree: allowed, both ways.
    let mark = d.mark();
    let targets = [
        root.join("cgroup.procs"),
        outside.join("cgroup.procs"),
        outside.join("cgroup.threads"),
        dir.join("cgroup.procs"),
        sub.join("cgroup.procs"),
        own.join("cgroup.procs"),
    ];
    let mut cmd = vec!["python3".to_owned(), mover.clone()];
    cmd.extend(targets.iter().map(|t| s(t)));
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let got = lines(&d.as_agent(agent, &cmd), "agent moves", targets.len());
    let want = [
        ("open EPERM", own_rel.clone()),
        ("open EPERM", own_rel.clone()),
        ("open EPERM", own_rel.clone()),
        ("ok", own_rel.clone()),
        ("ok", format!("{own_rel}/sub")),
        ("ok", own_rel.clone()),
    ];
    for ((line, t), (result, cgroup)) in got.iter().zip(&targets).zip(&want) {
        let result: Vec<&str> = result.split(' ').collect();
        assert_eq!(line[0], s(t), "{got:?}");
        assert_eq!(
            &line[1..line.len() - 1],
            result.as_slice(),
            "{}: {got:?}",
            t.display()
        );
        assert_eq!(line[line.len() - 1], *cgroup, "{}: {got:?}", t.display());
    }
    let ev = escape_event(&d, mark, agent, id(root));
    assert_eq!(ev["name"], "cgroup.procs", "{ev}");
    assert_eq!(ev["comm"], "python3", "{ev}");
    assert_eq!(ev["cgroup_id"], id(&own), "{ev}");
    let ev = escape_event(&d, mark, agent, id(&outside));
    assert!(
        ev["name"] == "cgroup.procs" || ev["name"] == "cgroup.threads",
        "{ev}"
    );
    assert_escapes_since(&d, mark, 3, "one event per refused open");

    // Descriptors opened by a non-agent and handed to the agent: writing through them is
    // refused outside its agent (the kernel checks the common ancestor of source and
    // destination, the root here), allowed into its own sub-cgroup.
    let mark = d.mark();
    let open_then_run = format!(
        "exec 3>>'{}' 4>>'{}' 5>>'{}'; exec \"$@\"",
        root.join("cgroup.procs").display(),
        outside.join("cgroup.procs").display(),
        sub.join("cgroup.procs").display()
    );
    let out = Command::new("sh")
        .args(["-c", &open_then_run, "sh"])
        .arg(governor_bin())
        .args(["run", "--policy"])
        .arg(&d.policy)
        .args([
            "--agent", agent, "--", "python3", &mover, "fd:3", "fd:4", "fd:5",
        ])
        .output()
        .expect("spawn sh");
    let got = lines(&out, "writes through received descriptors", 3);
    let sub_rel = format!("{own_rel}/sub");
    let want = [
        ["fd:3", "write", "EPERM", own_rel.as_str()],
        ["fd:4", "write", "EPERM", own_rel.as_str()],
        ["fd:5", "ok", sub_rel.as_str(), ""],
    ];
    for (line, want) in got.iter().zip(&want) {
        let want: Vec<&str> = want.iter().copied().filter(|w| !w.is_empty()).collect();
        assert_eq!(line, &want, "{got:?}");
    }
    escape_event(&d, mark, agent, id(root));
    assert_escapes_since(&d, mark, 2, "one event per refused write");

    // clone3(CLONE_INTO_CGROUP): refused outside its agent, allowed into its sub-cgroup.
    let mark = d.mark();
    let cloner = s(&dir.join("clone3.py"));
    let out = d.as_agent(
        agent,
        &["python3", &cloner, CGROUP2, &s(&outside), &s(&sub)],
    );
    let got = lines(&out, "agent clone3", 3);
    assert_eq!(got[0], [CGROUP2, "err", "EPERM"], "{got:?}");
    assert_eq!(got[1], [s(&outside).as_str(), "err", "EPERM"], "{got:?}");
    assert_eq!(
        got[2],
        [s(&sub).as_str(), "ok", sub_rel.as_str()],
        "{got:?}"
    );
    escape_event(&d, mark, agent, id(root));
    escape_event(&d, mark, agent, id(&outside));
    // The same clone3 from a non-agent works: the refusal above is governor's.
    let out = as_host(&["python3", &cloner, &s(&outside)]);
    let got = lines(&out, "host clone3", 1);
    assert_eq!(
        got[0],
        [s(&outside).as_str(), "ok", "/governor-test/cg-esc-outside"],
        "{got:?}"
    );
    remove(&[&sub, &outside]);
}

/// Asserts that exactly `n` cgroup-escape events were logged after `mark`.
fn assert_escapes_since(d: &Daemon, mark: usize, n: usize, what: &str) {
    let escapes = d
        .decisions()
        .into_iter()
        .skip(mark)
        .filter(|v| v["class"] == "cgroup-escape")
        .count();
    assert_eq!(escapes, n, "{what}: {:#?}", d.decisions());
}
