//! The policy language's class table, lease TTLs and combination rules: every error with its
//! line and field, and how class decisions combine with a resource's lists.

use std::{path::Path, time::Duration};

use governor_common::Class;

use super::*;

const BASE: &str = r#"
[policy]
name = "lang"
owner = "platform@example.com"

[[agents]]
name = "coder"
"#;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(Path::new("p.toml"), text)
}

/// The single problem of `text`, as (line, field, why).
fn only_problem(text: &str) -> (usize, String, String) {
    match parse(text) {
        Err(PolicyError::Invalid(p)) => {
            assert_eq!(p.len(), 1, "{p:#?}");
            (p[0].line, p[0].field.clone(), p[0].why.clone())
        }
        other => panic!("expected one validation error, got {other:?}"),
    }
}

fn bits(classes: &[Class]) -> u32 {
    classes.iter().fold(0, |m, c| m | c.bit())
}

#[test]
fn agent_defaults_cgroup_and_lease_ttl() {
    let p = parse(BASE).expect("valid");
    assert_eq!(p.agents[0].cgroup, Path::new("governor/coder"));
    assert_eq!(p.agents[0].max_lease_ttl, Duration::from_secs(3600));
    let p = parse(&format!("{BASE}max_lease_ttl = \"90s\"\n")).expect("valid");
    assert_eq!(p.agents[0].max_lease_ttl, Duration::from_secs(90));
    let p = parse(&format!("{BASE}max_lease_ttl = \"7d\"\n")).expect("valid");
    assert_eq!(p.agents[0].max_lease_ttl, Duration::from_secs(7 * 86_400));
}

#[test]
fn bad_lease_ttls() {
    for (ttl, want) in [
        ("2 weeks", "not a unit"),
        ("1.5h", "not a unit"),
        ("15", "no unit"),
        ("h", "not a duration"),
        ("0s", "is zero"),
        ("8d", "longer than the 7d cap"),
        ("169h", "longer than the 7d cap"),
    ] {
        let (line, field, why) = only_problem(&format!("{BASE}max_lease_ttl = \"{ttl}\"\n"));
        assert_eq!(
            (line, field.as_str()),
            (8, "agents[0].max_lease_ttl"),
            "{ttl}"
        );
        assert!(why.contains(want), "{ttl}: {why}");
    }
}

#[test]
fn version_is_the_files_sha256_prefix() {
    let a = parse(BASE).expect("valid");
    assert_eq!(a.version.len(), 32);
    assert!(a.version.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(a.version, parse(BASE).expect("valid").version, "stable");
    let b = parse(&format!("{BASE}# comment\n")).expect("valid");
    assert_ne!(a.version, b.version, "any byte changes it");
    // sha256("") starts e3b0c442 98fc1c14 9afbf4c8 996fb924.
    assert_eq!(version_of(b""), "e3b0c44298fc1c149afbf4c8996fb924");
}

#[test]
fn unknown_class_in_the_table() {
    let (line, field, why) =
        only_problem(&format!("{BASE}\n[classes.nuke]\ndecision = \"deny\"\n"));
    assert_eq!((line, field.as_str()), (9, "classes.nuke"));
    assert!(
        why.contains("unknown class `nuke`") && why.contains("delete"),
        "{why}"
    );
}

#[test]
fn bad_tag_values() {
    for (key, value, want) in [
        ("reversibility", "maybe", "\"reversible\", \"irreversible\""),
        ("blast_radius", "huge", "\"low\", \"medium\", \"high\""),
        ("decision", "perhaps", "\"allow\", \"lease\", \"deny\""),
    ] {
        let text = format!("{BASE}\n[classes.write]\n{key} = \"{value}\"\n");
        let (line, field, why) = only_problem(&text);
        assert_eq!(
            (line, field.as_str()),
            (10, format!("classes.write.{key}").as_str())
        );
        assert!(
            why.contains(&format!("`{value}`")) && why.contains(want),
            "{why}"
        );
    }
    let (_, field, why) = only_problem(&format!("{BASE}\n[classes.write]\n"));
    assert_eq!(field, "classes.write");
    assert!(why.contains("sets nothing"), "{why}");
}

#[test]
fn approvals_need_a_lease_and_a_range() {
    let (line, field, why) = only_problem(&format!("{BASE}\n[classes.write]\napprovals = 2\n"));
    assert_eq!((line, field.as_str()), (10, "classes.write.approvals"));
    assert!(
        why.contains("nothing in this policy leases `write`"),
        "{why}"
    );
    // A resource that leases the class makes them count.
    let p = parse(&format!(
        "{BASE}\n[classes.write]\napprovals = 3\n\n[[protect]]\npath = \"/srv\"\nlease = [\"write\"]\n"
    ))
    .expect("valid");
    assert_eq!(p.approvals_required("write"), 3);
    for n in [0, 6, -1] {
        let text = format!("{BASE}\n[classes.write]\ndecision = \"lease\"\napprovals = {n}\n");
        let (line, field, why) = only_problem(&text);
        assert_eq!(
            (line, field.as_str()),
            (11, "classes.write.approvals"),
            "{n}"
        );
        assert!(why.contains("1 to 5 approvals"), "{why}");
    }
}

#[test]
fn approvals_default_by_blast_radius() {
    let text = format!(
        "{BASE}\n[classes.delete]\ndecision = \"lease\"\n\n[classes.write]\ndecision = \"lease\"\n\n\
         [classes.chmod]\nblast_radius = \"high\"\ndecision = \"lease\"\n"
    );
    let p = parse(&text).expect("valid");
    assert_eq!(p.approvals_required("delete"), 2, "high blast radius");
    assert_eq!(p.approvals_required("unlink"), 2);
    assert_eq!(p.approvals_required("write"), 1);
    assert_eq!(p.approvals_required("chmod"), 2, "re-tagged high");
    assert_eq!(p.approvals_required("bpf"), u32::MAX, "never leasable");
    assert_eq!(p.approvals_required("nuke"), u32::MAX);
    let rule = p.class_rule("delete").expect("delete");
    assert_eq!(
        (rule.name.as_str(), rule.decision, rule.approvals),
        ("delete", ClassDecision::Lease, 2)
    );
    assert_eq!(
        p.class_rule("rename").expect("rename").decision,
        ClassDecision::Deny
    );
}

#[test]
fn global_classes_are_always_denied() {
    for class in [
        "bpf",
        "kernel-module",
        "mount",
        "signal",
        "ptrace",
        "setid",
        "cgroup-escape",
    ] {
        for decision in ["allow", "lease"] {
            let text = format!("{BASE}\n[classes.{class}]\ndecision = \"{decision}\"\n");
            let (line, field, why) = only_problem(&text);
            assert_eq!(
                (line, field.as_str()),
                (10, format!("classes.{class}.decision").as_str())
            );
            assert!(
                why.contains("always denied") && why.contains("self-protection"),
                "{why}"
            );
        }
        // Tags may change; the decision stays deny.
        let text = format!(
            "{BASE}\n[classes.{class}]\nreversibility = \"reversible\"\nblast_radius = \"low\"\n"
        );
        let p = parse(&text).expect("valid");
        let rule = p.class_rule(class).expect("rule");
        assert_eq!(rule.decision, ClassDecision::Deny, "{class}");
        assert_eq!(rule.blast_radius, classes::BlastRadius::Low);
        parse(&format!("{BASE}\n[classes.{class}]\ndecision = \"deny\"\n")).expect("deny is fine");
    }
}

#[test]
fn a_class_is_set_once_in_the_table() {
    let text = format!(
        "{BASE}\n[classes.delete]\ndecision = \"lease\"\n\n[classes.unlink]\ndecision = \"deny\"\n"
    );
    let (line, field, why) = only_problem(&text);
    assert_eq!((line, field.as_str()), (12, "classes.unlink"));
    assert!(why.contains("already set by [classes.delete]"), "{why}");
}

#[test]
fn allow_deny_lease_overlap_on_an_entry() {
    let entry = |lists: &str| format!("{BASE}\n[[protect]]\npath = \"/srv\"\n{lists}");
    let (line, field, why) = only_problem(&entry("lease = [\"write\"]\nallow = [\"write\"]\n"));
    assert_eq!((line, field.as_str()), (12, "protect[0].allow"));
    assert!(why.contains("write also in `lease`"), "{why}");
    let (_, field, why) = only_problem(&entry("deny = [\"delete\"]\nallow = [\"unlink\"]\n"));
    assert_eq!(field, "protect[0].allow");
    assert!(why.contains("unlink also in `deny`"), "{why}");
    let (_, field, why) = only_problem(&format!(
        "{BASE}\n[[network]]\ncidr = \"10.0.0.0/8\"\ndeny = [\"connect\"]\nallow = [\"network\"]\n"
    ));
    assert_eq!(field, "network[0].allow");
    assert!(why.contains("connect also in `deny`"), "{why}");
}

#[test]
fn class_table_decides_what_an_entry_does_not() {
    let text = format!(
        "{BASE}\n[classes.write]\ndecision = \"lease\"\n\n[classes.rename]\ndecision = \"allow\"\n\n\
         [[protect]]\npath = \"/srv\"\n\n\
         [[protect]]\npath = \"/srv/scratch\"\nallow = [\"delete\", \"write\"]\n\n\
         [[protect]]\npath = \"/etc\"\ndeny = [\"write\"]\n"
    );
    let p = parse(&text).expect("valid");
    // No lists: the class table (write leased, rename allowed by the policy; unlink, rmdir,
    // truncate, chattr, utimes, unix-connect not mentioned and high-risk, so denied).
    let srv = &p.protected[0].decisions;
    let m = srv.masks();
    assert_eq!(
        m.deny_mask,
        bits(&[
            Class::Unlink,
            Class::Rmdir,
            Class::Truncate,
            Class::Chattr,
            Class::Utimes,
            Class::UnixConnect
        ])
    );
    assert_eq!(m.lease_mask, Class::Write.bit());
    assert_eq!(srv.allow_mask(), 0);
    // Explicit allow wins for that resource, and stops the walk there.
    let scratch = &p.protected[1].decisions;
    let m = scratch.masks();
    assert_eq!(
        m.deny_mask,
        bits(&[
            Class::Truncate,
            Class::Chattr,
            Class::Utimes,
            Class::UnixConnect
        ])
    );
    assert_eq!(m.lease_mask, 0);
    assert_eq!(
        scratch.allow_mask(),
        bits(&[Class::Unlink, Class::Rmdir, Class::Write])
    );
    // The entry's own deny beats the class table's lease.
    let etc = &p.protected[2].decisions;
    assert_eq!(
        etc.masks().deny_mask & Class::Write.bit(),
        Class::Write.bit()
    );
    assert_eq!(etc.masks().lease_mask, 0);
    assert!(
        p.classes().contains(&Class::Write),
        "leased classes are enforced"
    );
}

#[test]
fn class_table_on_binaries_and_network() {
    let text = format!(
        "{BASE}\n[classes.connect]\ndecision = \"lease\"\n\n[classes.bind]\ndecision = \"deny\"\n\n\
         [[binaries]]\npath = \"/usr/bin/shred\"\n\n\
         [[network]]\ncidr = \"0.0.0.0/0\"\nports = [5432]\n\n\
         [[network]]\ncidr = \"10.0.0.0/8\"\nallow = [\"bind\"]\n"
    );
    let p = parse(&text).expect("valid");
    assert_eq!(
        p.binaries[0].decisions.masks().deny_mask,
        Class::Exec.bit(),
        "exec is high-risk: a listed binary with no lists is denied"
    );
    let db = p.network[0].decisions.masks();
    assert_eq!(db.deny_mask, Class::Bind.bit());
    assert_eq!(
        db.lease_mask,
        Class::Connect.bit(),
        "the class table's lease applies to a network rule that does not name the class"
    );
    let lan = &p.network[1].decisions;
    assert_eq!(lan.allow, vec![Class::Bind]);
    assert_eq!(lan.masks().deny_mask, 0);
    assert_eq!(lan.masks().lease_mask, Class::Connect.bit());
    // With the built-in table, a bare network rule decides nothing.
    let (line, field, why) = only_problem(&format!("{BASE}\n[[network]]\ncidr = \"10.0.0.0/8\"\n"));
    assert_eq!((line, field.as_str()), (10, "network[0].cidr"));
    assert!(why.contains("decides nothing"), "{why}");
}

#[test]
fn agent_entries_override_the_class_table() {
    let text = format!(
        "{BASE}\n[[protect]]\npath = \"/srv\"\n\n[[protect.agent]]\nname = \"coder\"\nlease = [\"delete\"]\n"
    );
    let p = parse(&text).expect("valid");
    let d = &p.protected[0].decisions;
    let own = d.agents[0].masks(d.masks());
    assert_eq!(own.lease_mask, bits(&[Class::Unlink, Class::Rmdir]));
    assert_eq!(
        own.deny_mask,
        bits(&[
            Class::Rename,
            Class::Truncate,
            Class::Chattr,
            Class::Utimes,
            Class::UnixConnect
        ])
    );
}

#[test]
fn shipped_policies_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files: Vec<std::path::PathBuf> = ["default.toml", "demo.toml"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    let examples = std::fs::read_dir(root.join("examples")).expect("policies/examples");
    let mut n_examples = 0;
    for e in examples {
        let path = e.expect("entry").path();
        if path.extension().is_some_and(|x| x == "toml") {
            files.push(path);
            n_examples += 1;
        }
    }
    assert!(n_examples >= 3, "examples: {files:?}");
    for f in &files {
        if let Err(e) = Policy::load(f) {
            panic!("{} does not validate:\n{e}", f.display());
        }
    }
    let default = Policy::load(&root.join("default.toml")).expect("default");
    for path in ["/etc", "/usr", "/boot", "/var/lib"] {
        assert!(
            default.protected.iter().any(|p| p.path == Path::new(path)),
            "default.toml protects {path}"
        );
    }
    for port in [5432u16, 3306, 6379, 27017, 9200, 1433] {
        assert!(
            default
                .network
                .iter()
                .any(
                    |n| n.decisions.masks().lease_mask & Class::Connect.bit() != 0
                        && n.ports.iter().any(|r| r.lo <= port && port <= r.hi)
                ),
            "default.toml leases connect to port {port}"
        );
    }
}
