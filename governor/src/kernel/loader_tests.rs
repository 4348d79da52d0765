//! The compiled object, the hook list and the loader's lists agree: parsed (not loaded) from
//! the very bytes the loader embeds ([`OBJECT`]), the object holds exactly one BPF-LSM
//! program per hook of [`LSM_PROGRAMS`], exactly the tracepoint programs of
//! [`CGROUP_TRACEPOINTS`] and [`PROC_TRACEPOINTS`] and the network programs of
//! [`NET_PROGRAMS`], and nothing else; every optional hook is one of the LSM hooks.

use std::collections::BTreeSet;

use aya_obj::{Object, ProgramSection};

use super::{CGROUP_TRACEPOINTS, LSM_PROGRAMS, OBJECT, OPTIONAL_HOOKS, PROC_TRACEPOINTS};
use crate::kernel::net::NET_PROGRAMS;

/// The object's programs by kind: (BPF-LSM, raw tracepoint, cgroup sock_addr, any other).
fn programs_by_kind() -> [BTreeSet<String>; 4] {
    let object = Object::parse(OBJECT).expect("the embedded eBPF object parses");
    let mut kinds: [BTreeSet<String>; 4] = Default::default();
    for (name, program) in &object.programs {
        let kind = match program.section {
            ProgramSection::Lsm { .. } => 0,
            ProgramSection::RawTracePoint => 1,
            ProgramSection::CgroupSockAddr { .. } => 2,
            _ => 3,
        };
        kinds[kind].insert(name.clone());
    }
    kinds
}

/// `names` as a set, failing on a name listed twice.
fn set(what: &str, names: &[&str]) -> BTreeSet<String> {
    let set: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        set.len(),
        names.len(),
        "{what} lists a name twice: {names:?}"
    );
    set
}

/// Fails unless the object's programs of one kind are exactly those listed, naming the ones
/// on one side only.
fn same(what: &str, object: &BTreeSet<String>, listed: &BTreeSet<String>) {
    let unlisted: Vec<&String> = object.difference(listed).collect();
    let absent: Vec<&String> = listed.difference(object).collect();
    assert!(
        unlisted.is_empty() && absent.is_empty(),
        "{what}: in the object but not listed: {unlisted:?}; listed but not in the object: \
         {absent:?}"
    );
}

#[test]
fn the_object_holds_exactly_the_listed_programs() {
    let [lsm, tracepoints, net, other] = programs_by_kind();
    same(
        "BPF-LSM programs vs governor_common::programs::LSM_HOOKS",
        &lsm,
        &set("LSM_HOOKS", LSM_PROGRAMS),
    );
    let listed: Vec<&str> = CGROUP_TRACEPOINTS
        .iter()
        .chain(PROC_TRACEPOINTS)
        .copied()
        .collect();
    same(
        "raw tracepoint programs vs CGROUP_TRACEPOINTS and PROC_TRACEPOINTS",
        &tracepoints,
        &set("the tracepoint lists", &listed),
    );
    same(
        "cgroup sock_addr programs vs NET_PROGRAMS",
        &net,
        &set("NET_PROGRAMS", NET_PROGRAMS),
    );
    assert!(other.is_empty(), "programs of no listed kind: {other:?}");
}

#[test]
fn every_optional_hook_is_an_lsm_hook() {
    let optional: Vec<&str> = OPTIONAL_HOOKS.iter().map(|(hook, _)| *hook).collect();
    let optional = set("OPTIONAL_LSM_HOOKS", &optional);
    let hooks = set("LSM_HOOKS", LSM_PROGRAMS);
    let stray: Vec<&String> = optional.difference(&hooks).collect();
    assert!(
        stray.is_empty(),
        "optional hooks that are no LSM hook: {stray:?}"
    );
    for (hook, covered) in OPTIONAL_HOOKS {
        assert!(
            !covered.is_empty(),
            "optional hook {hook} says nothing of what covers it"
        );
    }
}
