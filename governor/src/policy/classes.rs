//! Action classes: the names a policy may use, their built-in tags, and the `[classes.X]`
//! table that re-tags them and decides them policy-wide.
//!
//! ```toml
//! [classes.delete]
//! reversibility = "irreversible"   # or "reversible"
//! blast_radius = "high"            # "low", "medium" or "high"
//! decision = "lease"               # "allow", "lease" or "deny"
//! approvals = 2                    # only with lease: 1..=5 (default 2 for high, else 1)
//! ```
//!
//! Built-in tags (a `[classes.X]` entry may override them):
//!
//! | class | reversibility | blast radius | built-in decision |
//! |---|---|---|---|
//! | unlink, rmdir (`delete`) | irreversible | high | deny |
//! | rename | irreversible (replaces its destination) | medium | deny |
//! | truncate | irreversible | high | deny |
//! | write | reversible | medium | allow |
//! | chmod, chown | reversible | medium | allow |
//! | link | reversible | low | allow |
//! | xattr | reversible | medium | allow |
//! | mknod | reversible | low | allow |
//! | unix-connect | reversible | high | deny |
//! | exec | irreversible | high | deny |
//! | connect, send | reversible | medium | allow |
//! | bind | reversible | low | allow |
//! | read | reversible | low | allow |
//! | chattr | reversible | high | deny |
//! | utimes | irreversible (the old times are gone) | low | deny |
//! | bpf, kernel-module, setid, signal, ptrace, cgroup-escape, cgroup-control, tty-inject, kexec, settime, task-control, kernel-tunable, raw-device | irreversible | high | always deny |
//! | raw-socket | irreversible | high | always deny (an agent's `allow_raw_sockets` lifts it) |
//! | mount | reversible | high | always deny |
//!
//! The built-in decision follows from the tags: a class that is irreversible or has a high
//! blast radius is *high-risk* and denied; any other is allowed. A `[classes.X]` entry that
//! changes the tags but gives no `decision` gets the decision its new tags imply.
//!
//! The aggregate names `delete` (unlink + rmdir), `modify` (every file class) and `network`
//! (connect + bind + send) stand for their members: `[classes.delete]` sets both unlink and
//! rmdir. Asked about an aggregate, [`ClassTable::rule`] answers with the strictest of its
//! members (deny over lease over allow, most approvals, worst tags).

use std::collections::BTreeMap;

use governor_common::Class;
use toml::Spanned;

use super::{raw::RawClass, Validator};

/// How undoable an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reversibility {
    Reversible,
    Irreversible,
}

/// How much an action can damage when it goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BlastRadius {
    Low,
    Medium,
    High,
}

/// A decision on a class: allowed, allowed only under a lease, or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClassDecision {
    Allow,
    Lease,
    Deny,
}

impl Reversibility {
    pub fn name(self) -> &'static str {
        match self {
            Self::Reversible => "reversible",
            Self::Irreversible => "irreversible",
        }
    }
}

impl BlastRadius {
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl ClassDecision {
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Lease => "lease",
            Self::Deny => "deny",
        }
    }
}

/// One class's tags and policy-wide decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRule {
    pub name: String,
    pub reversibility: Reversibility,
    pub blast_radius: BlastRadius,
    /// What a protected resource that does not decide the class itself does with it.
    pub decision: ClassDecision,
    /// Approvals a lease on this class needs, wherever the lease is decided (the class
    /// table or a resource's `lease` list): the policy's `approvals`, else 2 for a high
    /// blast radius and 1 otherwise.
    pub approvals: u32,
}

/// Every class name a policy may use, and the kernel classes each stands for. Single-class
/// names are the kernel's [`Class::name`]s; `delete`, `modify` and `network` are aggregates.
const NAMES: &[(&str, &[Class])] = &[
    ("unlink", &[Class::Unlink]),
    ("rmdir", &[Class::Rmdir]),
    ("delete", &[Class::Unlink, Class::Rmdir]),
    ("rename", &[Class::Rename]),
    ("truncate", &[Class::Truncate]),
    ("write", &[Class::Write]),
    ("chmod", &[Class::Chmod]),
    ("chown", &[Class::Chown]),
    ("link", &[Class::Link]),
    ("xattr", &[Class::Xattr]),
    ("mknod", &[Class::Mknod]),
    ("chattr", &[Class::Chattr]),
    ("utimes", &[Class::Utimes]),
    ("modify", super::FILE_CLASSES),
    ("read", &[Class::Read]),
    ("unix-connect", &[Class::UnixConnect]),
    ("exec", &[Class::Exec]),
    ("connect", &[Class::Connect]),
    ("bind", &[Class::Bind]),
    ("send", &[Class::Send]),
    ("network", &[Class::Connect, Class::Bind, Class::Send]),
    ("mount", &[Class::Mount]),
    ("signal", &[Class::Signal]),
    ("ptrace", &[Class::Ptrace]),
    ("setid", &[Class::Setid]),
    ("bpf", &[Class::Bpf]),
    ("kernel-module", &[Class::KernelModule]),
    ("cgroup-escape", &[Class::CgroupEscape]),
    ("cgroup-control", &[Class::CgroupControl]),
    ("tty-inject", &[Class::TtyInject]),
    ("kexec", &[Class::Kexec]),
    ("settime", &[Class::Settime]),
    ("task-control", &[Class::TaskControl]),
    ("kernel-tunable", &[Class::KernelTunable]),
    ("raw-device", &[Class::RawDevice]),
    ("raw-socket", &[Class::RawSocket]),
];

/// Classes every agent is always denied, whatever the policy says (`RULE_BUILTIN`; making
/// device nodes is refused the same way, under `mknod`). An agent's `allow_raw_sockets` is the
/// one exception: it lifts `raw-socket` for that agent.
pub const GLOBAL_CLASSES: &[Class] = &[
    Class::Mount,
    Class::Signal,
    Class::Ptrace,
    Class::Setid,
    Class::Bpf,
    Class::KernelModule,
    Class::CgroupEscape,
    Class::CgroupControl,
    Class::TtyInject,
    Class::Kexec,
    Class::Settime,
    Class::TaskControl,
    Class::KernelTunable,
    Class::RawDevice,
    Class::RawSocket,
];

/// The kernel classes a policy class name stands for (`delete` → unlink + rmdir), or `None`
/// for a name no policy may use. Covers every name: file, exec, network and global classes.
pub fn classes_for_name(name: &str) -> Option<&'static [Class]> {
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// Every class name a policy may use, in table order.
pub fn class_names() -> impl Iterator<Item = &'static str> {
    NAMES.iter().map(|(n, _)| *n)
}

/// The built-in tags of one kernel class.
fn builtin_tags(class: Class) -> (Reversibility, BlastRadius) {
    use BlastRadius::*;
    use Reversibility::*;
    match class {
        Class::Unlink | Class::Rmdir | Class::Truncate => (Irreversible, High),
        Class::Rename => (Irreversible, Medium),
        Class::Write | Class::Chmod | Class::Chown | Class::Xattr => (Reversible, Medium),
        Class::Read => (Reversible, Low),
        Class::Chattr => (Reversible, High),
        Class::Utimes => (Irreversible, Low),
        Class::Link | Class::Mknod | Class::Bind => (Reversible, Low),
        Class::UnixConnect => (Reversible, High),
        Class::Exec => (Irreversible, High),
        Class::Connect | Class::Send => (Reversible, Medium),
        Class::Mount => (Reversible, High),
        Class::Signal
        | Class::Ptrace
        | Class::Setid
        | Class::Bpf
        | Class::KernelModule
        | Class::CgroupEscape
        | Class::CgroupControl
        | Class::TtyInject
        | Class::Kexec
        | Class::Settime
        | Class::TaskControl
        | Class::KernelTunable
        | Class::RawDevice
        | Class::RawSocket => (Irreversible, High),
    }
}

/// The decision implied by tags alone: deny for high-risk, allow otherwise.
fn implied(reversibility: Reversibility, blast_radius: BlastRadius) -> ClassDecision {
    if reversibility == Reversibility::Irreversible || blast_radius == BlastRadius::High {
        ClassDecision::Deny
    } else {
        ClassDecision::Allow
    }
}

fn default_approvals(blast_radius: BlastRadius) -> u32 {
    if blast_radius == BlastRadius::High {
        2
    } else {
        1
    }
}

/// The most approvals a `[classes.X]` entry may require.
pub const MAX_APPROVALS: u32 = 5;

/// The class table of a policy: one rule per kernel class, built-in unless the policy's
/// `[classes]` table says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassTable {
    /// One rule per class name of [`class_names`], in that order (aggregates derived).
    rules: Vec<ClassRule>,
    /// Classes a `[classes.X]` entry named (for the summary), one bit per class value
    /// (`1 << value`: built-in classes go beyond the 32 of [`Class::bit`]).
    written: u64,
}

impl Default for ClassTable {
    fn default() -> Self {
        Self::from_atomic(Class::ALL.iter().map(|&c| builtin(c)).collect(), 0)
    }
}

fn builtin(class: Class) -> ClassRule {
    let (reversibility, blast_radius) = builtin_tags(class);
    ClassRule {
        name: class.name().to_owned(),
        reversibility,
        blast_radius,
        decision: implied(reversibility, blast_radius),
        approvals: default_approvals(blast_radius),
    }
}

impl ClassTable {
    /// Builds the named rules from one rule per kernel class (in [`Class::ALL`] order).
    fn from_atomic(atomic: Vec<ClassRule>, written: u64) -> Self {
        let of = |c: &Class| &atomic[Class::ALL.iter().position(|x| x == c).unwrap_or(0)];
        let rules = NAMES
            .iter()
            .map(|(name, members)| {
                let mut rule = of(&members[0]).clone();
                for m in members.iter().skip(1).map(of) {
                    rule.reversibility = rule.reversibility.max(m.reversibility);
                    rule.blast_radius = rule.blast_radius.max(m.blast_radius);
                    rule.decision = rule.decision.max(m.decision);
                    rule.approvals = rule.approvals.max(m.approvals);
                }
                rule.name = (*name).to_owned();
                rule
            })
            .collect();
        Self { rules, written }
    }

    /// The rule for a class name (aggregates: the strictest of their members).
    pub fn rule(&self, name: &str) -> Option<&ClassRule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// The rule for one kernel class.
    pub fn of(&self, class: Class) -> &ClassRule {
        // Every kernel class has a name of its own in NAMES.
        self.rules
            .iter()
            .find(|r| r.name == class.name())
            .unwrap_or(&self.rules[0])
    }

    /// Every named rule, in [`class_names`] order.
    pub fn rules(&self) -> &[ClassRule] {
        &self.rules
    }

    /// Whether the policy's `[classes]` table named `class`.
    pub fn written(&self, class: Class) -> bool {
        self.written & (1u64 << class as u32) != 0
    }

    /// The classes among `applicable` whose policy-wide decision is `decision`, as a mask.
    pub fn mask(&self, applicable: &[Class], decision: ClassDecision) -> u32 {
        applicable
            .iter()
            .filter(|c| self.of(**c).decision == decision)
            .fold(0, |m, c| m | c.bit())
    }
}

/// An `approvals` written without `decision = "lease"`: where, the classes, the name.
pub(super) type PendingApprovals = (Spanned<u32>, &'static [Class], String);

/// Parses one value of a fixed set (a class tag, an agent's `record`), or says which exist.
pub(super) fn pick<T: Copy>(value: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            format!("`{value}` is not one of {}", names.join(", "))
        })
}

impl Validator<'_> {
    /// Validates the `[classes]` table. Returns it and the entries that set `approvals`
    /// without `decision = "lease"` (checked once the resources are known: a resource's own
    /// `lease` list makes them meaningful).
    pub(super) fn class_table(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<RawClass>>,
    ) -> (ClassTable, Vec<PendingApprovals>) {
        let mut atomic: Vec<ClassRule> = Class::ALL.iter().map(|&c| builtin(c)).collect();
        let mut written = 0u64;
        let mut set_by: Vec<(Class, String)> = Vec::new();
        let mut pending = Vec::new();
        // In file order, so "already set" is reported on the later entry.
        let mut entries: Vec<(Spanned<String>, Spanned<RawClass>)> = raw.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (key, entry) in entries {
            let name = key.get_ref().clone();
            let field = format!("classes.{name}");
            let Some(members) = classes_for_name(&name) else {
                let known: Vec<&str> = class_names().collect();
                self.problem(
                    &key,
                    &field,
                    format!(
                        "unknown class `{name}`; known classes: {}",
                        known.join(", ")
                    ),
                );
                continue;
            };
            let mut clash = false;
            for m in members {
                if let Some((_, other)) = set_by.iter().find(|(c, _)| c == m) {
                    self.problem(
                        &key,
                        &field,
                        format!(
                            "{} is already set by [classes.{other}]; each class is set once",
                            m.name()
                        ),
                    );
                    clash = true;
                    break;
                }
            }
            if clash {
                continue;
            }
            set_by.extend(members.iter().map(|m| (*m, name.clone())));
            let raw = entry.into_inner();
            if raw.reversibility.is_none()
                && raw.blast_radius.is_none()
                && raw.decision.is_none()
                && raw.approvals.is_none()
            {
                self.problem(
                    &key,
                    &field,
                    "sets nothing: give reversibility, blast_radius, decision or approvals",
                );
            }
            let reversibility = raw.reversibility.as_ref().and_then(|v| {
                let options = [
                    ("reversible", Reversibility::Reversible),
                    ("irreversible", Reversibility::Irreversible),
                ];
                pick(v.get_ref(), &options)
                    .map_err(|why| self.problem(v, &format!("{field}.reversibility"), why))
                    .ok()
            });
            let blast_radius = raw.blast_radius.as_ref().and_then(|v| {
                let options = [
                    ("low", BlastRadius::Low),
                    ("medium", BlastRadius::Medium),
                    ("high", BlastRadius::High),
                ];
                pick(v.get_ref(), &options)
                    .map_err(|why| self.problem(v, &format!("{field}.blast_radius"), why))
                    .ok()
            });
            let decision = raw.decision.as_ref().and_then(|v| {
                let options = [
                    ("allow", ClassDecision::Allow),
                    ("lease", ClassDecision::Lease),
                    ("deny", ClassDecision::Deny),
                ];
                pick(v.get_ref(), &options)
                    .map_err(|why| self.problem(v, &format!("{field}.decision"), why))
                    .ok()
            });
            let global = members.iter().any(|m| GLOBAL_CLASSES.contains(m));
            if let (true, Some(d), Some(at)) = (global, decision, raw.decision.as_ref()) {
                if d != ClassDecision::Deny {
                    self.problem(
                        at,
                        &format!("{field}.decision"),
                        format!(
                            "`{name}` is always denied to agents: it would let an agent \
                             escape or disable enforcement itself (governor's self-protection), \
                             so no policy can allow or lease it; remove `decision` or set \
                             \"deny\""
                        ),
                    );
                }
            }
            let approvals = raw.approvals.as_ref().and_then(|v| {
                let n = *v.get_ref();
                if (1..=i64::from(MAX_APPROVALS)).contains(&n) {
                    Some(Spanned::new(v.span(), n as u32))
                } else {
                    self.problem(
                        v,
                        &format!("{field}.approvals"),
                        format!(
                            "{n} is out of range: a lease needs 1 to {MAX_APPROVALS} approvals"
                        ),
                    );
                    None
                }
            });
            if let Some(a) = &approvals {
                if global {
                    self.problem(
                        a,
                        &format!("{field}.approvals"),
                        format!("`{name}` is always denied, so no lease on it can be approved"),
                    );
                } else if decision != Some(ClassDecision::Lease) {
                    pending.push((a.clone(), members, name.clone()));
                }
            }
            for m in members {
                written |= 1u64 << *m as u32;
                let rule = &mut atomic[Class::ALL.iter().position(|c| c == m).unwrap_or(0)];
                if let Some(r) = reversibility {
                    rule.reversibility = r;
                }
                if let Some(b) = blast_radius {
                    rule.blast_radius = b;
                }
                rule.decision = if global {
                    ClassDecision::Deny
                } else {
                    decision.unwrap_or_else(|| implied(rule.reversibility, rule.blast_radius))
                };
                rule.approvals = approvals
                    .as_ref()
                    .map_or_else(|| default_approvals(rule.blast_radius), |a| *a.get_ref());
            }
        }
        (ClassTable::from_atomic(atomic, written), pending)
    }

    /// Reports each `approvals` of a class no decision of the policy leases.
    pub(super) fn approvals_need_a_lease(&mut self, pending: Vec<PendingApprovals>, leased: u32) {
        for (at, members, name) in pending {
            if members.iter().all(|m| leased & m.bit() == 0) {
                self.problem(
                    &at,
                    &format!("classes.{name}.approvals"),
                    format!(
                        "approvals only count for leases, and nothing in this policy leases \
                         `{name}`: set decision = \"lease\" here, lease it on a resource, or \
                         remove `approvals`"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_decisions_follow_the_tags() {
        let t = ClassTable::default();
        for c in Class::ALL {
            let r = t.of(c);
            assert_eq!(r.name, c.name());
            let high_risk = r.reversibility == Reversibility::Irreversible
                || r.blast_radius == BlastRadius::High;
            assert_eq!(
                r.decision == ClassDecision::Deny,
                high_risk,
                "{c:?}: high-risk classes are denied, others allowed"
            );
            assert_eq!(
                r.approvals,
                if r.blast_radius == BlastRadius::High {
                    2
                } else {
                    1
                }
            );
        }
        for c in GLOBAL_CLASSES {
            assert_eq!(t.of(*c).decision, ClassDecision::Deny, "{c:?}");
        }
        assert_eq!(t.of(Class::Unlink).decision, ClassDecision::Deny);
        assert_eq!(t.of(Class::Write).decision, ClassDecision::Allow);
        assert_eq!(t.of(Class::Connect).decision, ClassDecision::Allow);
    }

    #[test]
    fn aggregates_take_the_strictest_member() {
        let t = ClassTable::default();
        let modify = t.rule("modify").expect("modify");
        assert_eq!(modify.decision, ClassDecision::Deny);
        assert_eq!(modify.blast_radius, BlastRadius::High);
        assert_eq!(modify.approvals, 2);
        assert_eq!(
            t.rule("network").expect("network").decision,
            ClassDecision::Allow
        );
        assert!(t.rule("nuke").is_none());
    }

    #[test]
    fn every_name_resolves_and_every_class_has_a_name() {
        for n in class_names() {
            assert!(classes_for_name(n).is_some_and(|c| !c.is_empty()), "{n}");
        }
        for c in Class::ALL {
            assert_eq!(classes_for_name(c.name()), Some(&[c][..]), "{c:?}");
        }
        assert_eq!(
            classes_for_name("delete"),
            Some(&[Class::Unlink, Class::Rmdir][..])
        );
        assert_eq!(classes_for_name("nuke"), None);
    }
}
