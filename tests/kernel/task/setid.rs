//! setid transitions: an unprivileged agent gains nothing through a set-user-ID binary, and
//! a root agent's setuid, setgid and setgroups are each denied with one event; the host may,
//! and setting the ids an agent already has is no transition.

use super::*;

#[test]
fn lsm_setid_transitions() {
    require_bpf_lsm();
    let dir = scratch("setid");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let suid = dir.join("suid-id");
    std::fs::copy("/usr/bin/id", &suid).expect("copy id");
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let agent = "agent-setid";
    let d = Daemon::start(&dir, &policy("setid", &[A(agent, "enforce", false)], &[]));

    // The set-user-ID copy works for a plain host process: this mount honours suid bits.
    let out = as_host_user(NOBODY, NOBODY, &[&s(&suid)]);
    assert_ok(&out, "host nobody runs suid id");
    assert!(
        stdout(&out).contains("euid=0"),
        "suid must take effect here: {}",
        stdout(&out)
    );
    // The same unprivileged user inside the agent cannot gain root through it.
    let mark = d.mark();
    let out = run_in_cgroup(&cgroup(agent), NOBODY, NOBODY, &[&s(&suid)]);
    assert_eperm(&out, "agent nobody runs suid id");
    assert!(!stdout(&out).contains("euid=0"), "{}", stdout(&out));
    let ev = d.one_since(mark, "suid exec", |v| v["class"] == "setid");
    assert_event(&ev, agent, "setid", "deny");
    assert_eq!(ev["what"], "euid=0 by exec of a set-id file", "{ev}");
    assert_eq!(ev["name"], "suid-id", "{ev}");
    assert_eq!(ev["uid"], NOBODY, "{ev}");
    // Unprivileged agents still run ordinary binaries.
    let out = run_in_cgroup(&cgroup(agent), NOBODY, NOBODY, &["id", "-u"]);
    assert_ok(&out, "agent nobody runs id");
    assert_eq!(stdout(&out).trim(), NOBODY.to_string());

    // setuid, setgid, setgroups from a root agent: each change is denied with one event.
    for (call, what) in [
        ("os.setuid(65534)", "uid=65534"),
        ("os.seteuid(65534)", "euid=65534"),
        ("os.setgid(65534)", "gid=65534"),
        ("os.setgroups([4242])", "setgroups to 1 groups"),
    ] {
        let code = format!("import os; {call}; print(os.getresuid(), os.getresgid())");
        let mark = d.mark();
        let out = d.as_agent(agent, &python(&code));
        assert_eperm(&out, &format!("agent {call}"));
        let ev = d.one_since(mark, call, |v| v["class"] == "setid");
        assert_eq!(ev["what"], what, "{call}: {ev}");
        // The host may.
        let out = as_host(&python(&code));
        assert_ok(&out, &format!("host {call}"));
    }
    // Setting the ids an agent already has is no transition.
    let mark = d.mark();
    let out = d.as_agent(
        agent,
        &python(
            "import os; os.setresuid(0, 0, 0); os.setresgid(0, 0, 0); os.setgroups(os.getgroups())",
        ),
    );
    assert_ok(&out, "agent sets unchanged ids");
    d.none_since(mark, "unchanged ids");
}
