//! Test policies and the class names a daemon reports: one agent, one protected path, and
//! exactly the classes a test names denied.

use std::path::Path;

/// A policy with one agent (in cgroup `governor-test/<agent>`) and one protected path whose
/// `delete` class is denied.
pub fn policy(agent: &str, mode: &str, protected: &Path) -> String {
    policy_denying(agent, mode, protected, "delete")
}

/// Like [`policy`], denying the comma-separated quoted `classes` (e.g. `"modify"`), and
/// explicitly allowing every other class the built-in class table would deny by default
/// (README "Policies"), so the policy decides exactly the classes the test names.
pub fn policy_denying(agent: &str, mode: &str, protected: &Path, classes: &str) -> String {
    let denied: Vec<&str> = classes.split(',').map(str::trim).collect();
    let mut text = format!(
        r#"
[policy]
name = "test-{agent}"
owner = "kernel-tests@example.com"

[[agents]]
name = "{agent}"
cgroup = "governor-test/{agent}"
mode = "{mode}"

[[protect]]
path = "{}"
deny = [{}]
"#,
        protected.display(),
        denied
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let allow = allow_the_rest(&denied);
    if !allow.is_empty() {
        text.push_str(&format!("allow = [{allow}]\n"));
    }
    text
}

/// The classes of a `[[protect]]` entry that the built-in class table denies when the entry
/// does not name them (high-risk: irreversible or high blast radius).
pub const DENIED_BY_DEFAULT: &[&str] = &[
    "unlink",
    "rmdir",
    "rename",
    "truncate",
    "chattr",
    "utimes",
    "unix-connect",
];

/// `DENIED_BY_DEFAULT` minus the classes `denied` covers, quoted and comma-separated: the
/// `allow` list that keeps a test policy from denying more than it names.
pub fn allow_the_rest(denied: &[&str]) -> String {
    let covers = |name: &str, class: &str| match name {
        "delete" => matches!(class, "unlink" | "rmdir"),
        "modify" => class != "unix-connect",
        other => other == class,
    };
    DENIED_BY_DEFAULT
        .iter()
        .filter(|c| !denied.iter().any(|d| covers(d, c)))
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The network classes, as the daemon lists them (enforced by the cgroup sock_addr programs).
pub const NET_CLASS_NAMES: &str = "connect, bind, send";

/// Every other class, in class order, as the daemon lists them: what the BPF-LSM programs
/// enforce, and what a daemon without BPF-LSM says it does not.
pub fn lsm_class_names() -> String {
    use governor_common::Class;
    let names: Vec<&str> = Class::ALL
        .iter()
        .filter(|c| !matches!(c, Class::Connect | Class::Bind | Class::Send))
        .map(|c| c.name())
        .collect();
    names.join(", ")
}

/// Every class in class order, as a daemon in full mode lists what it enforces.
pub fn all_class_names() -> String {
    let names: Vec<&str> = governor_common::Class::ALL
        .iter()
        .map(|c| c.name())
        .collect();
    names.join(", ")
}
