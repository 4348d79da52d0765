//! The simulation on the host: policies compiled against a temporary tree, recorded
//! operations as the lineage holds them.

use std::path::Path;

use super::{decide::Decider, decide::Outcome, report::Report};
use crate::{host::inode, lineage::query::events::Event, policy::Policy};

fn policy(dir: &Path, lists: &str, extra: &str) -> Policy {
    let text = format!(
        "[policy]\nname = \"t\"\nowner = \"o@example.com\"\n\n[[agents]]\nname = \"a\"\n\n\
         [[protect]]\npath = \"{}\"\n{lists}\n{extra}",
        dir.join("data").display()
    );
    Policy::parse(&dir.join("p.toml"), &text).expect("policy")
}

/// A recorded operation of agent `a` on `path` (its inode as the kernel keys it, if it
/// exists), decided `decision`.
fn event(id: i64, class: &str, decision: &str, path: &Path) -> Event {
    let key = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| inode::key(path, &m));
    Event {
        id,
        ts_ns: id,
        time: String::new(),
        boot_id: "b".into(),
        boot_ns: id,
        agent: Some("a".into()),
        cgroup_id: 1,
        pid: 1,
        tgid: 1,
        uid: 0,
        gid: 0,
        comm: "x".into(),
        exe: None,
        class: class.into(),
        decision: decision.into(),
        target: path.display().to_string(),
        path: Some(path.display().to_string()),
        inode: key.map(|k| k.ino as i64),
        dev: key.map(|k| k.dev as i64),
        detail: None,
        rule: None,
        lease_id: None,
        policy_version: "v".into(),
    }
}

fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for f in ["data/a", "data/sub/b", "free/c"] {
        let p = tmp.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "x").unwrap();
    }
    tmp
}

#[test]
fn the_nearest_protected_path_that_decides_the_class_decides_as_in_the_kernel() {
    let tmp = tree();
    let dir = tmp.path();
    let mut d = Decider::new(&policy(dir, "allow = [\"chmod\"]", "")).expect("compile");
    let at = |f: &str| dir.join(f);
    // Below data: chmod allowed by its list, delete denied by the built-in table, write
    // allowed by it (and left to nothing above).
    assert_eq!(
        d.decide(&event(1, "chmod", "allow", &at("data/sub/b"))),
        Outcome::Allow
    );
    assert_eq!(
        d.decide(&event(2, "unlink", "deny", &at("data/a"))),
        Outcome::Deny
    );
    assert_eq!(
        d.decide(&event(3, "write", "allow", &at("data/a"))),
        Outcome::Allow
    );
    // Outside every protected path: allowed; a file deleted since is found by its name's
    // directories.
    assert_eq!(
        d.decide(&event(4, "unlink", "allow", &at("free/c"))),
        Outcome::Allow
    );
    let gone = event(5, "unlink", "deny", &at("data/gone"));
    assert_eq!(gone.inode, None);
    assert_eq!(d.decide(&gone), Outcome::Deny);
    // A class the kernel alone decides, an agent the policy does not have.
    assert_eq!(
        d.decide(&event(6, "bpf", "deny", &at("free/c"))),
        Outcome::Fixed
    );
    let own = Event {
        rule: Some("(governor's own: /var/lib/governor)".into()),
        ..event(7, "unlink", "deny", &at("free/c"))
    };
    assert_eq!(d.decide(&own), Outcome::Fixed);
    let stranger = Event {
        agent: Some("b".into()),
        ..event(8, "unlink", "deny", &at("data/a"))
    };
    assert_eq!(d.decide(&stranger), Outcome::NotAgent);
}

#[test]
fn an_agents_own_decisions_a_lease_and_a_nested_allow_are_the_kernels() {
    let tmp = tree();
    let dir = tmp.path();
    let nested = format!(
        "[[protect.agent]]\nname = \"a\"\nlease = [\"rename\"]\n\n[[protect]]\npath = \"{}\"\n\
         allow = [\"delete\"]\n",
        dir.join("data/sub").display()
    );
    let mut d = Decider::new(&policy(dir, "", &nested)).expect("compile");
    let at = |f: &str| dir.join(f);
    assert_eq!(
        d.decide(&event(1, "rename", "deny", &at("data/a"))),
        Outcome::Lease
    );
    assert_eq!(
        d.decide(&event(2, "unlink", "deny", &at("data/a"))),
        Outcome::Deny
    );
    assert_eq!(
        d.decide(&event(3, "unlink", "allow", &at("data/sub/b"))),
        Outcome::Allow
    );
}

#[test]
fn a_network_operation_is_decided_by_its_longest_prefix_and_port() {
    let tmp = tree();
    let dir = tmp.path();
    let net = "[[network]]\ncidr = \"10.0.0.0/8\"\ndeny = [\"connect\"]\n\n[[network]]\n\
               cidr = \"10.1.0.0/16\"\nports = [443]\nlease = [\"connect\"]\n";
    let mut d = Decider::new(&policy(dir, "", net)).expect("compile");
    let connect = |target: &str| Event {
        path: None,
        inode: None,
        dev: None,
        target: target.into(),
        ..event(1, "connect", "deny", &dir.join("free/c"))
    };
    assert_eq!(d.decide(&connect("10.2.3.4:80")), Outcome::Deny);
    assert_eq!(d.decide(&connect("10.1.3.4:80")), Outcome::Deny);
    assert_eq!(d.decide(&connect("10.1.3.4:443")), Outcome::Lease);
    assert_eq!(d.decide(&connect("[::ffff:10.2.3.4]:80")), Outcome::Deny);
    assert_eq!(d.decide(&connect("192.168.1.1:80")), Outcome::Allow);
}

#[test]
fn a_report_counts_only_what_changes_with_examples_once_each() {
    let tmp = tree();
    let dir = tmp.path();
    let p = policy(dir, "", "");
    let mut r = Report::new(&p);
    let a = event(1, "chmod", "allow", &dir.join("data/a"));
    r.add(&a, Some(Outcome::Allow), Outcome::Deny);
    r.add(
        &Event { id: 2, ..a.clone() },
        Some(Outcome::Allow),
        Outcome::Deny,
    );
    r.add(&a, Some(Outcome::Allow), Outcome::Allow);
    r.add(&a, Some(Outcome::Fixed), Outcome::Fixed);
    // No recorded policy: the kernel's decision stands in.
    r.add(&a, None, Outcome::Deny);
    assert_eq!((r.operations, r.unchanged, r.fixed), (5, 1, 1));
    assert_eq!(r.without_recorded_policy, 1);
    assert_eq!(r.changes.len(), 1);
    let c = &r.changes[0];
    assert_eq!(
        (c.before, c.after, c.count),
        (Outcome::Allow, Outcome::Deny, 3)
    );
    assert_eq!(c.examples, vec![dir.join("data/a").display().to_string()]);
    assert_eq!(c.events, vec![1, 2, 1]);
}

#[test]
fn a_candidate_that_names_a_missing_path_is_refused_with_the_file() {
    let tmp = tree();
    let dir = tmp.path();
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    let conn = crate::lineage::query::fixture::db();
    let err = super::simulate(&conn, &policy(dir, "", ""), &Default::default())
        .expect_err("missing path");
    let text = err.to_string();
    assert!(
        text.contains("p.toml") && text.contains("must exist"),
        "{text}"
    );
}
