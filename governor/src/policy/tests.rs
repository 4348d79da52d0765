//! Policy validation: the good case and every error, each with its line and field.

use std::path::Path;

use super::*;

const GOOD: &str = r#"
[policy]
name = "prod-guard"
owner = "platform@example.com"

[[agents]]
name = "coder"
cgroup = "governor/coder"
mode = "observe"

[[agents]]
name = "ops"
cgroup = "/sys/fs/cgroup/agents/ops/"

[[protect]]
path = "/srv/prod"
deny = ["delete"]

[[protect]]
path = "/etc"
deny = ["unlink"]
"#;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(Path::new("p.toml"), text)
}

fn problems(text: &str) -> Vec<Located> {
    match parse(text) {
        Err(PolicyError::Invalid(p)) => p,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

#[test]
fn good_policy_validates() {
    let p = parse(GOOD).expect("valid");
    assert_eq!(p.name, "prod-guard");
    assert_eq!(p.owner, "platform@example.com");
    assert_eq!(p.agents.len(), 2);
    assert_eq!(p.agents[0].mode, Mode::Observe);
    assert_eq!(p.agents[1].mode, Mode::Enforce);
    assert_eq!(p.agents[1].cgroup, Path::new("agents/ops"));
    assert_eq!(
        p.protected[0].decisions.deny,
        vec![Class::Unlink, Class::Rmdir]
    );
    assert_eq!(p.protected[1].decisions.deny, vec![Class::Unlink]);
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let err = parse("[policy]\nname = \"x\"\nowner = \n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("p.toml: 3:"), "{err}");
}

#[test]
fn unknown_field_is_an_error() {
    let err = parse(&GOOD.replace("mode = \"observe\"", "mdoe = \"observe\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("mdoe"), "{err}");
}

#[test]
fn missing_header_is_an_error() {
    let err = parse("[[agents]]\nname = \"a\"\ncgroup = \"a\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("policy"), "{err}");
}

#[test]
fn bad_name_points_at_its_line() {
    let p = problems(&GOOD.replace("name = \"prod-guard\"", "name = \"prod guard!\""));
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].line, p[0].field.as_str()), (3, "policy.name"));
    assert!(p[0].to_string().starts_with("p.toml:3:"), "{}", p[0]);
}

#[test]
fn empty_owner() {
    let p = problems(&GOOD.replace("platform@example.com", " "));
    assert_eq!(p[0].field, "policy.owner");
    assert!(p[0].why.contains("accountable"));
}

#[test]
fn bad_mode() {
    let p = problems(&GOOD.replace("\"observe\"", "\"enforcing\""));
    assert_eq!((p[0].line, p[0].field.as_str()), (9, "agents[0].mode"));
    assert!(p[0].why.contains("\"enforce\" or \"observe\""));
}

#[test]
fn record_is_per_agent_decisions_by_default_and_checked() {
    let p = parse(&GOOD.replace("mode = \"observe\"", "mode = \"observe\"\nrecord = \"all\""))
        .expect("valid");
    assert_eq!(p.agents[0].record, Record::All);
    assert_eq!(p.agents[1].record, Record::Decisions);
    let p = problems(&GOOD.replace("mode = \"observe\"", "record = \"everything\""));
    assert_eq!((p[0].line, p[0].field.as_str()), (9, "agents[0].record"));
    assert!(p[0].why.contains("\"decisions\"") && p[0].why.contains("\"all\""));
}

#[test]
fn an_agent_that_records_all_records_exactly_the_modify_classes() {
    let modify = FILE_CLASSES.iter().fold(0, |m, c| m | c.bit());
    assert_eq!(governor_common::maps::RECORD_ALL_CLASSES, modify);
}

#[test]
fn bad_cgroup_paths() {
    for bad in ["../escape", "/other/mount/x", "", "a/./b"] {
        let p = problems(&GOOD.replace("governor/coder", bad));
        assert_eq!(p[0].field, "agents[0].cgroup", "{bad}");
    }
}

#[test]
fn allow_outside_abstract_unix_is_per_agent_and_off_by_default() {
    let p = parse(GOOD).expect("valid");
    assert!(!p.agents[0].allow_outside_abstract_unix, "default is deny");
    let text = GOOD.replace(
        "mode = \"observe\"\n",
        "mode = \"observe\"\nallow_outside_abstract_unix = true\n",
    );
    let p = parse(&text).expect("valid");
    assert!(p.agents[0].allow_outside_abstract_unix);
    assert!(
        !p.agents[1].allow_outside_abstract_unix,
        "only the agent that sets it"
    );
    let err = parse(&text.replace("abstract_unix = true", "abstract_unix = \"yes\""))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("p.toml: 10:"), "{err}");
    let err = parse(&text.replace("allow_outside_abstract_unix", "allow_abstract_unix"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("allow_abstract_unix"), "{err}");
}

#[test]
fn duplicate_agent() {
    let p = problems(&GOOD.replace("name = \"ops\"", "name = \"coder\""));
    assert_eq!((p[0].line, p[0].field.as_str()), (12, "agents[1].name"));
    assert!(p[0].why.contains("defined twice"));
}

#[test]
fn relative_or_dotted_protect_path() {
    for bad in ["srv/prod", "/srv/../etc", "/srv/./prod"] {
        let p = problems(&GOOD.replace("/srv/prod", bad));
        assert_eq!(
            (p[0].line, p[0].field.as_str()),
            (16, "protect[0].path"),
            "{bad}"
        );
    }
}

#[test]
fn duplicate_protect_path() {
    let p = problems(&GOOD.replace("\"/etc\"", "\"/srv/prod\""));
    assert_eq!(p[0].field, "protect[1].path");
    assert!(p[0].why.contains("twice"));
}

#[test]
fn unknown_and_empty_classes() {
    let p = problems(&GOOD.replace("[\"delete\"]", "[\"delete\", \"nuke\"]"));
    assert_eq!((p[0].line, p[0].field.as_str()), (17, "protect[0].deny"));
    assert!(p[0].why.contains("unknown class `nuke`"));
    let p = problems(&GOOD.replace("[\"delete\"]", "[]"));
    assert!(p[0].why.contains("is empty"));
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = GOOD
        .replace("\"observe\"", "\"bogus\"")
        .replace("/srv/prod", "relative");
    assert_eq!(problems(&text).len(), 2);
}

/// GOOD with lease decisions and agent entries on /srv/prod.
fn with_decisions(extra: &str) -> String {
    GOOD.replace(
        "deny = [\"delete\"]\n",
        &format!("deny = [\"delete\"]\nlease = [\"write\", \"truncate\"]\n{extra}"),
    )
}

#[test]
fn lease_and_agent_decisions_validate() {
    let text = with_decisions(
        "[[protect.agent]]\nname = \"ops\"\nallow = [\"write\"]\nlease = [\"delete\"]\n",
    );
    let p = parse(&text).expect("valid");
    let d = &p.protected[0].decisions;
    assert_eq!(d.lease, vec![Class::Write, Class::Truncate]);
    assert_eq!(d.agents.len(), 1);
    assert_eq!(d.agents[0].agent, "ops");
    assert_eq!(d.agents[0].allow, vec![Class::Write]);
    assert_eq!(d.agents[0].lease, vec![Class::Unlink, Class::Rmdir]);
    let own = d.agents[0].masks(d.masks());
    assert_eq!(
        own.deny_mask,
        Class::Rename.bit() | Class::Chattr.bit() | Class::Utimes.bit() | Class::UnixConnect.bit(),
        "delete moved to lease for ops; rename, chattr, utimes and unix-connect are denied by \
         the class table"
    );
    assert_eq!(
        own.lease_mask,
        Class::Unlink.bit() | Class::Rmdir.bit() | Class::Truncate.bit()
    );
    assert!(
        p.classes().contains(&Class::Truncate),
        "leased classes count"
    );
}

#[test]
fn a_class_gets_one_decision() {
    let p = problems(&GOOD.replace(
        "deny = [\"delete\"]\n",
        "deny = [\"delete\"]\nlease = [\"unlink\"]\n",
    ));
    assert_eq!((p[0].line, p[0].field.as_str()), (18, "protect[0].lease"));
    assert!(p[0].why.contains("unlink also in `deny`"), "{}", p[0].why);
    let p = problems(&with_decisions(
        "[[protect.agent]]\nname = \"ops\"\nallow = [\"chmod\"]\ndeny = [\"chmod\"]\n",
    ));
    assert_eq!(p[0].field, "protect[0].agent[0].deny");
    assert!(p[0].why.contains("chmod also in `allow`"), "{}", p[0].why);
}

#[test]
fn agent_decisions_must_name_a_known_agent() {
    let p = problems(&with_decisions(
        "[[protect.agent]]\nname = \"ghost\"\nallow = [\"write\"]\n",
    ));
    assert_eq!(
        (p[0].line, p[0].field.as_str()),
        (20, "protect[0].agent[0].name")
    );
    assert!(
        p[0].why.contains("`ghost` is not an agent") && p[0].why.contains("coder, ops"),
        "{}",
        p[0].why
    );
}

#[test]
fn agent_decisions_must_decide_something_once() {
    let p = problems(&with_decisions("[[protect.agent]]\nname = \"ops\"\n"));
    assert_eq!(p[0].field, "protect[0].agent[0].name");
    assert!(p[0].why.contains("decides nothing"), "{}", p[0].why);
    let twice = "[[protect.agent]]\nname = \"ops\"\nallow = [\"write\"]\n";
    let p = problems(&with_decisions(&format!("{twice}{twice}")));
    assert_eq!(p[0].field, "protect[0].agent[1].name");
    assert!(p[0].why.contains("two entries"), "{}", p[0].why);
    let p = problems(&with_decisions(
        "[[protect.agent]]\nname = \"ops\"\nallow = []\n",
    ));
    assert_eq!(p[0].field, "protect[0].agent[0].allow");
    assert!(p[0].why.contains("is empty"), "{}", p[0].why);
}

#[test]
fn a_resource_with_no_lists_gets_the_class_table() {
    let p = parse(&GOOD.replace("deny = [\"delete\"]\n", "")).expect("valid");
    let m = p.protected[0].decisions.masks();
    let high_risk = [
        Class::Unlink,
        Class::Rmdir,
        Class::Rename,
        Class::Truncate,
        Class::Chattr,
        Class::Utimes,
        Class::UnixConnect,
    ];
    assert_eq!(m.deny_mask, high_risk.iter().fold(0, |m, c| m | c.bit()));
    assert_eq!(m.lease_mask, 0);
    // A class table that allows every class leaves a bare resource deciding nothing.
    let all_allowed: String = [
        "delete",
        "rename",
        "truncate",
        "chattr",
        "utimes",
        "unix-connect",
    ]
    .iter()
    .map(|c| format!("[classes.{c}]\ndecision = \"allow\"\n"))
    .collect();
    let p = problems(&format!(
        "{}{all_allowed}",
        GOOD.replace("deny = [\"delete\"]\n", "")
    ));
    assert_eq!((p[0].line, p[0].field.as_str()), (16, "protect[0].path"));
    assert!(p[0].why.contains("decides nothing"), "{}", p[0].why);
    // Agent decisions alone are enough.
    parse(&format!(
        "{}{all_allowed}",
        GOOD.replace(
            "deny = [\"delete\"]\n",
            "[[protect.agent]]\nname = \"coder\"\ndeny = [\"write\"]\n",
        )
    ))
    .expect("valid");
}

#[test]
fn protect_classes_are_the_file_classes_then_read_and_unix_connect() {
    assert_eq!(PROTECT_CLASSES.len(), 14);
    assert_eq!(&PROTECT_CLASSES[..12], FILE_CLASSES);
    assert_eq!(FILE_CLASSES.first(), Some(&Class::Unlink));
    assert_eq!(FILE_CLASSES.last(), Some(&Class::Utimes));
    assert_eq!(&PROTECT_CLASSES[12..], &[Class::Read, Class::UnixConnect]);
}
