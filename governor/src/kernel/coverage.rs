//! Which classes this kernel lets governor enforce, and whether the daemon may start with
//! that. governor's programs come in two independent families:
//! - BPF-LSM programs enforce every class but the network ones ([`LSM_CLASSES`]: file,
//!   unix-connect, exec, process and host-wide classes); kernels without BPF-LSM, or that
//!   refuse LSM programs (sandboxed, locked down), cannot run them;
//! - cgroup sock_addr programs enforce the network classes ([`NET_CLASSES`]); they load on
//!   kernels without BPF-LSM.
//!
//! With `--require-full`, the daemon refuses to start unless both families load. Without it
//! (the default) it starts with whatever loads, says at WARN level exactly which classes it
//! does not enforce and which policy rules are therefore inert, and refuses only when nothing
//! the policy asks for can be enforced.

use governor_common::Class;

/// Classes enforced by the cgroup sock_addr programs.
pub const NET_CLASSES: &[Class] = &[Class::Connect, Class::Bind, Class::Send];
/// Classes enforced by the BPF-LSM programs: every other class, in class order, derived from
/// [`Class::ALL`] so that a new class is counted where it belongs.
pub const LSM_CLASSES: &[Class] = &lsm_classes();

/// Every class of [`Class::ALL`] that is not in [`NET_CLASSES`].
const fn lsm_classes() -> [Class; Class::ALL.len() - NET_CLASSES.len()] {
    let mut out = [Class::Unlink; Class::ALL.len() - NET_CLASSES.len()];
    let (mut i, mut n) = (0, 0);
    while i < Class::ALL.len() {
        let c = Class::ALL[i];
        let mut net = false;
        let mut j = 0;
        while j < NET_CLASSES.len() {
            net |= NET_CLASSES[j] as u32 == c as u32;
            j += 1;
        }
        if !net {
            // Out of bounds here (a compile error) if NET_CLASSES lists a class twice.
            out[n] = c;
            n += 1;
        }
        i += 1;
    }
    // Fails to compile if NET_CLASSES lists a class that is not in Class::ALL.
    assert!(n == out.len());
    out
}

/// One program family that did not load, and why.
#[derive(Debug)]
pub struct Missing {
    /// "BPF-LSM" or "cgroup sock_addr".
    pub family: &'static str,
    pub classes: &'static [Class],
    pub reason: anyhow::Error,
}

/// What the daemon will enforce.
#[derive(Debug)]
pub struct Plan {
    pub lsm: bool,
    pub net: bool,
    /// Families that did not load (empty in full mode).
    pub missing: Vec<Missing>,
}

impl Plan {
    /// Every class this daemon does not enforce, in class order.
    pub fn not_enforced(&self) -> Vec<Class> {
        let mut v: Vec<Class> = self
            .missing
            .iter()
            .flat_map(|m| m.classes.iter().copied())
            .collect();
        v.sort_by_key(|c| *c as u32);
        v
    }

    /// Every class this daemon enforces, in class order.
    pub fn enforced(&self) -> Vec<Class> {
        let mut v: Vec<Class> = Vec::new();
        if self.lsm {
            v.extend_from_slice(LSM_CLASSES);
        }
        if self.net {
            v.extend_from_slice(NET_CLASSES);
        }
        v.sort_by_key(|c| *c as u32);
        v
    }
}

/// Decides from the outcome of loading each family. `used` are the classes the policy's
/// rules deny. Returns the refusal (an error that explains what is missing) when the daemon
/// must not start.
pub fn decide(
    lsm: Result<(), anyhow::Error>,
    net: Result<(), anyhow::Error>,
    used: &[Class],
    require_full: bool,
) -> Result<Plan, anyhow::Error> {
    let mut missing = Vec::new();
    if let Err(reason) = lsm {
        missing.push(Missing {
            family: "BPF-LSM",
            classes: LSM_CLASSES,
            reason,
        });
    }
    if let Err(reason) = net {
        missing.push(Missing {
            family: "cgroup sock_addr",
            classes: NET_CLASSES,
            reason,
        });
    }
    let plan = Plan {
        lsm: !missing.iter().any(|m| m.family == "BPF-LSM"),
        net: !missing.iter().any(|m| m.family == "cgroup sock_addr"),
        missing,
    };
    if plan.missing.is_empty() {
        return Ok(plan);
    }
    let enforced = plan.enforced();
    let why = if require_full {
        Some("--require-full was given")
    } else if enforced.is_empty() {
        Some("none of governor's programs can run here")
    } else if !used.iter().any(|c| enforced.contains(c)) {
        Some("nothing this policy denies could be enforced")
    } else {
        None
    };
    let Some(why) = why else {
        return Ok(plan);
    };
    let mut plan = plan;
    let first = plan.missing.remove(0);
    let names = class_list(first.classes);
    let mut err = first.reason.context(format!(
        "cannot enforce {names} ({} programs)",
        first.family
    ));
    for m in plan.missing {
        err = err.context(format!(
            "cannot enforce {} ({} programs): {:#}",
            class_list(m.classes),
            m.family,
            m.reason
        ));
    }
    Err(err.context(format!("refusing to start: {why}")))
}

/// `unlink, rmdir`.
pub fn class_list(classes: &[Class]) -> String {
    classes
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no(what: &str) -> Result<(), anyhow::Error> {
        Err(anyhow::anyhow!("{what} unavailable"))
    }

    #[test]
    fn the_two_families_cover_every_class_once() {
        let mut all: Vec<Class> = LSM_CLASSES.iter().chain(NET_CLASSES).copied().collect();
        all.sort_by_key(|c| *c as u32);
        assert_eq!(all, Class::ALL);
        assert!(LSM_CLASSES
            .windows(2)
            .all(|w| (w[0] as u32) < (w[1] as u32)));
        // The network family is exactly what a policy calls `network`.
        assert_eq!(
            crate::policy::classes::classes_for_name("network"),
            Some(NET_CLASSES)
        );
    }

    #[test]
    fn full_when_both_load() {
        let p = decide(Ok(()), Ok(()), &[Class::Unlink], true).expect("full");
        assert!(p.lsm && p.net && p.missing.is_empty());
        assert!(p.not_enforced().is_empty());
    }

    #[test]
    fn degraded_network_only_without_lsm() {
        let p = decide(
            no("BPF-LSM"),
            Ok(()),
            &[Class::Unlink, Class::Connect],
            false,
        )
        .expect("degraded");
        assert!(!p.lsm && p.net);
        assert_eq!(p.not_enforced(), LSM_CLASSES);
        assert!(p.not_enforced().contains(&Class::Exec));
        assert!(p.not_enforced().contains(&Class::CgroupEscape));
        assert_eq!(p.enforced(), vec![Class::Connect, Class::Bind, Class::Send]);
    }

    #[test]
    fn require_full_refuses_with_the_reason() {
        let e = decide(no("BPF-LSM"), Ok(()), &[Class::Connect], true).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with("refusing to start: --require-full"),
            "{msg}"
        );
        assert!(
            msg.contains("cannot enforce unlink, rmdir, rename, truncate, write,"),
            "{msg}"
        );
        assert!(
            msg.contains(", kernel-tunable, raw-device, raw-socket (BPF-LSM programs)"),
            "{msg}"
        );
        assert!(msg.ends_with("BPF-LSM unavailable"), "{msg}");
    }

    #[test]
    fn refuses_when_nothing_used_is_enforceable() {
        let e = decide(no("BPF-LSM"), Ok(()), &[Class::Unlink], false).unwrap_err();
        assert!(
            format!("{e:#}").contains("nothing this policy denies"),
            "{e:#}"
        );
        let e = decide(no("BPF-LSM"), Ok(()), &[], false).unwrap_err();
        assert!(
            format!("{e:#}").contains("nothing this policy denies"),
            "{e:#}"
        );
    }

    #[test]
    fn refuses_when_nothing_loads() {
        let e = decide(no("BPF-LSM"), no("sock_addr"), &[Class::Connect], false).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("none of governor's programs"), "{msg}");
        assert!(msg.contains("sock_addr unavailable"), "{msg}");
    }

    #[test]
    fn degraded_file_only_without_network_programs() {
        let p = decide(
            Ok(()),
            no("sock_addr"),
            &[Class::Unlink, Class::Connect],
            false,
        )
        .expect("degraded");
        assert!(p.lsm && !p.net);
        assert_eq!(
            p.not_enforced(),
            vec![Class::Connect, Class::Bind, Class::Send]
        );
    }
}
