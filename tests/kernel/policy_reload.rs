//! Live policy reload (`governor policy reload`, SIGHUP), one daemon for every case: bad
//! successors (a TOML syntax error, an unknown class, `/dev/zero`, a FIFO, a directory) are
//! refused with the file (and line) and change nothing (the old rules keep refusing, status keeps the old version); a good one
//! takes effect as soon as the reply is back (a newly protected path is refused, one no
//! longer protected is allowed, status shows the new version, one generation stays pinned);
//! a lease submitted before the reload still grants after it; and a reload through SIGHUP
//! drops the lease a new deny no longer allows.

use std::{path::Path, process::Output};

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, assert_eperm, assert_ok,
    operator::{err_stderr, governor, ok_stdout, submit, trusted_dir, Operator},
    require_bpf_lsm, scratch, write, Daemon,
};
use serde_json::Value;

const AGENT: &str = "rl";

/// A policy for agent `rl` denying delete on `denied`, leasing delete on `leased` (or
/// denying it, when `lease` is false).
fn policy(denied: &Path, leased: &Path, lease: bool) -> String {
    format!(
        r#"[policy]
name = "reload"
owner = "kernel-tests@example.com"

[[agents]]
name = "{AGENT}"
cgroup = "governor-test/{AGENT}"

[classes.delete]
decision = "lease"
approvals = 1

[[protect]]
path = "{}"
deny = ["delete"]

[[protect]]
path = "{}"
{} = ["delete"]
"#,
        denied.display(),
        leased.display(),
        if lease { "lease" } else { "deny" }
    )
}

/// The version `governor policy check` computes for `file`.
fn version_of(file: &Path) -> String {
    let out = ok_stdout(&governor(&["policy", "check", &s(file)]), "policy check");
    out.lines()
        .next()
        .and_then(|l| l.rsplit("version ").next())
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no version in {out}"))
}

/// `governor status --json`.
fn status() -> Value {
    let out = ok_stdout(&governor(&["status", "--json"]), "status");
    serde_json::from_str(&out).expect("status json")
}

fn reload(extra: &[&str]) -> Output {
    let mut args = vec!["policy", "reload"];
    args.extend_from_slice(extra);
    governor(&args)
}

/// The generation directories in the pin directory.
fn generations(pin_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(pin_dir)
        .expect("read pin dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gen-"))
        .collect();
    v.sort();
    v
}

#[test]
fn lsm_policy_reload_is_atomic_and_gap_free() {
    require_bpf_lsm();
    let dir = scratch("policy_reload");
    let (prod, other, leased) = (dir.join("prod"), dir.join("other"), dir.join("leased"));
    for f in ["a", "b", "c"] {
        write(&prod.join(f), "precious");
        write(&other.join(f), "junk");
    }
    for f in ["l1", "l2"] {
        write(&leased.join(f), "leased");
    }
    let _ = std::fs::remove_dir_all(trusted_dir());
    let alice = Operator::new(&dir, "alice", true);
    let mut d = Daemon::start(&dir, &policy(&prod, &leased, true));
    let file = d.policy.clone();
    // `governor run` reads the agent's cgroup from a policy file: give it one that stays
    // valid while the daemon's file is broken on purpose (the cgroup never changes).
    let agent_policy = dir.join("agent.toml");
    write(&agent_policy, &policy(&prod, &leased, true));
    d.policy = agent_policy;
    let v1 = version_of(&file);
    let st = status();
    assert_eq!(st["policy"]["version"], v1.as_str(), "{st}");
    let g1 = st["policy"]["generation"].as_u64().expect("generation");
    assert!(g1 >= 1, "{st}");
    assert!(
        st["policy"]["loaded_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{st}"
    );
    let p = |d: &Path, f: &str| s(&d.join(f));
    assert_eperm(
        &d.as_agent(AGENT, &["rm", &p(&prod, "a")]),
        "rm prod/a (v1)",
    );
    assert_ok(
        &d.as_agent(AGENT, &["rm", &p(&other, "a")]),
        "rm other/a (v1)",
    );

    // A lease on leased/l1 and leased/l2, submitted before any reload.
    let lease = alice.issue(
        &dir.join("l.lease"),
        AGENT,
        &[
            &format!("delete:{}", p(&leased, "l1")),
            &format!("delete:{}", p(&leased, "l2")),
        ],
        "10m",
    );
    ok_stdout(&submit(&lease), "submit the lease");
    let lease_text = std::fs::read_to_string(&lease).expect("read lease");
    let lease_id = lease_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("id = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("lease id");

    // (b) A syntax error in the daemon's own file (line 3): refused with file:line, nothing
    // changes.
    write(
        &file,
        "[policy]\nname = \"reload\"\nowner = \n\n[[agents]]\nname = \"rl\"\n",
    );
    let e = err_stderr(&reload(&[]), "reload a file with a syntax error");
    assert!(e.contains(&format!("{}: 3:", s(&file))), "{e}");
    assert!(e.contains("nothing changed"), "{e}");
    assert!(e.contains(&format!("version {v1}")), "{e}");
    assert!(e.contains("governor policy check"), "{e}");
    d.wait_logged("policy reload refused, nothing changed");
    assert_eperm(
        &d.as_agent(AGENT, &["rm", &p(&prod, "a")]),
        "rm prod/a after the refused reload",
    );
    assert!(prod.join("a").exists());
    let st = status();
    assert_eq!(st["policy"]["version"], v1.as_str(), "{st}");
    assert_eq!(st["policy"]["generation"], g1, "{st}");

    // (b) An unknown class, given with --policy: refused with file:line:col and field.
    let bad = dir.join("bad.toml");
    write(
        &bad,
        &policy(&other, &leased, true).replace("deny = [\"delete\"]", "deny = [\"obliterate\"]"),
    );
    let e = err_stderr(
        &reload(&["--policy", &s(&bad)]),
        "reload a policy with an unknown class",
    );
    assert!(
        e.contains(&format!("{}:15:", s(&bad))) && e.contains("field `protect[0].deny`"),
        "{e}"
    );
    assert!(e.contains("unknown class `obliterate`"), "{e}");
    assert!(e.contains("nothing changed"), "{e}");
    assert_eperm(
        &d.as_agent(AGENT, &["rm", &p(&prod, "b")]),
        "rm prod/b after the second refused reload",
    );
    assert_ok(
        &d.as_agent(AGENT, &["rm", &p(&other, "b")]),
        "rm other/b: still not protected",
    );
    // (b) Files that are no policy at all: /dev/zero (the daemon read it without end, and
    // it is out of the OOM killer's reach), a FIFO nobody writes, a directory. Each is
    // refused at once, naming the file and what it is.
    let fifo = dir.join("policy.fifo");
    assert_ok(&as_host(&["mkfifo", &s(&fifo)]), "mkfifo");
    for (path, kind) in [
        ("/dev/zero".to_owned(), "a character device"),
        (s(&fifo), "a FIFO"),
        (s(&dir), "a directory"),
    ] {
        let e = err_stderr(&reload(&["--policy", &path]), &format!("reload {path}"));
        assert!(
            e.contains(&format!(
                "{path}: a policy file must be a regular file, and this is {kind}"
            )) && e.contains("nothing changed"),
            "{e}"
        );
    }
    let st = status();
    assert_eq!(st["policy"]["version"], v1.as_str(), "{st}");
    assert_eq!(st["policy"]["reloads"], 0, "{st}");
    assert_eq!(
        generations(&d.pin_dir).len(),
        1,
        "a refused reload leaves no generation"
    );

    // (a) A good successor in the daemon's file: `other` protected, `prod` no longer.
    write(&file, &policy(&other, &leased, true));
    let v2 = version_of(&file);
    assert_ne!(v1, v2);
    let out = ok_stdout(&reload(&[]), "reload a good policy");
    assert!(
        out.contains(&format!(
            "version {v1} (generation {g1}) replaced by `reload` version {v2}"
        )),
        "{out}"
    );
    assert!(
        out.contains("swap ") && out.contains("leases kept: 1"),
        "{out}"
    );
    let mark = d.mark();
    assert_eperm(
        &d.as_agent(AGENT, &["rm", &p(&other, "c")]),
        "rm other/c right after the reload",
    );
    assert!(other.join("c").exists());
    let ev = d.wait_decision_after(mark, "deny under the new policy", |v| {
        v["decision"] == "deny" && v["path"] == p(&other, "c").as_str()
    });
    // Read with the new policy: its agent and rule.
    assert_eq!(ev["agent"], AGENT, "{ev}");
    assert_eq!(ev["protected"], s(&other).as_str(), "{ev}");
    assert_ok(
        &d.as_agent(AGENT, &["rm", &p(&prod, "c")]),
        "rm prod/c: no longer protected",
    );
    let st = status();
    assert_eq!(st["policy"]["version"], v2.as_str(), "{st}");
    assert_eq!(st["policy"]["reloads"], 1, "{st}");
    let g2 = st["policy"]["generation"].as_u64().expect("generation");
    assert!(g2 > g1, "{st}");
    assert_eq!(
        generations(&d.pin_dir),
        vec![format!("gen-{g2:06}")],
        "the old generation is retired"
    );
    assert!(
        st["counters"]["denied"].as_u64().is_some_and(|n| n >= 4),
        "{st}"
    );

    // (c) The lease submitted before the reload still grants, and only its scope.
    assert_ok(
        &d.as_agent(AGENT, &["rm", &p(&leased, "l1")]),
        "rm leased/l1 under the lease after the reload",
    );
    d.wait_decision("lease-allow l1 after the reload", |v| {
        v["decision"] == "lease-allow" && v["path"] == p(&leased, "l1").as_str()
    });
    write(&leased.join("l3"), "leased");
    assert_eperm(
        &d.as_agent(AGENT, &["rm", &p(&leased, "l3")]),
        "rm leased/l3: outside the lease",
    );

    // SIGHUP reloads the daemon's file too. This successor denies what the lease leased:
    // the lease is dropped, with the reason, and leaves the kernel.
    write(&file, &policy(&prod, &leased, false));
    let v3 = version_of(&file);
    // l1 is back (the lease deleted it): every scope resolves, and meets the new deny.
    write(&leased.join("l1"), "leased");
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    let logged = d.wait_logged_within(&format!("policy reloaded: version {v2}"), 240);
    assert_eq!(logged["version"], v3.as_str(), "{logged}");
    assert_eq!(logged["leases_dropped"], 1, "{logged}");
    assert_eq!(status()["policy"]["version"], v3.as_str());
    assert_eperm(
        &d.as_agent(AGENT, &["rm", &p(&leased, "l2")]),
        "rm leased/l2: the lease was dropped by the reload",
    );
    assert_eperm(
        &d.as_agent(AGENT, &["rm", &p(&prod, "b")]),
        "rm prod/b: protected again",
    );
    assert_ok(
        &d.as_agent(AGENT, &["rm", &p(&other, "c")]),
        "rm other/c: no longer protected",
    );
    let out = ok_stdout(
        &governor(&["lease", "list", "--all", "--json"]),
        "lease list",
    );
    let listed: Value = serde_json::from_str(&out).expect("lease list json");
    let shown = listed["leases"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l["id"] == lease_id.as_str()).cloned())
        .unwrap_or_else(|| panic!("lease {lease_id} not listed: {listed}"));
    assert_eq!(shown["state"], "dropped", "{shown}");
    let reason = shown["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("policy reload to `reload` version {v3}"))
            && reason.contains("a lease cannot lift a deny"),
        "{shown}"
    );
    d.stop();
}
