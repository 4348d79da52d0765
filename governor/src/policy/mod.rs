//! Policies: raw TOML (`raw`) → validated domain types (this module) → kernel map entries
//! (`compile`). Validation collects every problem with its file, line and field.
//!
//! The folder owns the policy language and its meaning: `raw.rs` (the TOML as written),
//! this file (agents, `[[protect]]`, validation), `classes.rs` (class names, tags,
//! `[classes]`), `decisions.rs` (allow/lease/deny and how they combine), `net.rs`
//! (`[[network]]`, flattened into tries), `binaries.rs`, `linked.rs` (inodes with names
//! elsewhere), `error.rs` (located problems), `compile.rs` (kernel map entries). Durations
//! (`max_lease_ttl`) use the one grammar in `crate::time`.
//!
//! May import: `governor_common` (classes, map entry types), `crate::time`, and `crate::host`
//! (bounded reads, cgroup ids, governor's own directories) — nothing of the daemon, the
//! kernel loader, leases or lineage, which all import this folder.

mod binaries;
pub mod classes;
mod compile;
mod decisions;
mod error;
pub mod linked;
pub mod net;
mod raw;
pub mod rollback;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use governor_common::Class;
use toml::Spanned;

pub use binaries::Binary;
pub use classes::{classes_for_name, ClassDecision, ClassRule, ClassTable};
pub use compile::{compile, compile_rules, CompileError, Compiled, CompiledAgent, CompiledProtect};
pub use decisions::Decisions;
pub use error::{Located, PolicyError};
pub use net::NetRule;
pub use rollback::{Rollback, Snapshot};

use decisions::RawLists;
use error::LineIndex;
use raw::{RawAgent, RawPolicy, RawProtect};

/// The longest `max_lease_ttl` an agent may have.
pub const MAX_LEASE_TTL_CAP: Duration = Duration::from_secs(7 * 86_400);
/// `max_lease_ttl` when an agent does not set it.
pub const DEFAULT_MAX_LEASE_TTL: Duration = Duration::from_secs(3600);

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub source: PathBuf,
    /// Hex SHA-256 (first 16 bytes) of the policy file's bytes.
    pub version: String,
    /// The policy file as loaded (recorded in the lineage).
    pub text: std::sync::Arc<str>,
    pub name: String,
    pub owner: String,
    /// Every class's tags and policy-wide decision (`[classes]` over the built-in table).
    pub class_table: ClassTable,
    pub agents: Vec<Agent>,
    pub protected: Vec<Protected>,
    /// `[[network]]` rules, in policy order (a rule's index is its `rule_id`).
    pub network: Vec<NetRule>,
    /// `[[binaries]]` whose exec is denied to agents.
    pub binaries: Vec<Binary>,
    /// `[rollback]`: snapshot budgets and retention.
    pub rollback: Rollback,
}

/// Whether an agent's would-be denies are enforced or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Observe,
    Enforce,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Enforce => "enforce",
        }
    }
}

/// An agent: the processes in one cgroup v2 subtree.
#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    /// Path of the agent's cgroup relative to the cgroup v2 mount, e.g. `governor/demo`
    /// (`governor/<name>` when the policy does not say).
    pub cgroup: PathBuf,
    pub mode: Mode,
    /// May execute files with no name on any filesystem (memfd, `O_TMPFILE`, deleted).
    pub allow_fileless_exec: bool,
    /// The longest lease this agent may be granted (default 1h, at most 7d).
    pub max_lease_ttl: Duration,
    /// May connect and send to abstract unix sockets created outside its cgroup subtree.
    pub allow_outside_abstract_unix: bool,
    /// May create raw and packet sockets (`SOCK_RAW`, `AF_PACKET`).
    pub allow_raw_sockets: bool,
    /// What the kernel records of the agent's operations.
    pub record: Record,
}

/// What the kernel records of an agent's operations (`record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Refusals, would-be refusals (observe mode) and lease allows: `"decisions"`, the default.
    Decisions,
    /// Also every allowed operation of a file class (`modify`): `"all"`, so that a tighter
    /// policy can be simulated against the agent's history (`governor simulate`).
    All,
}

/// A protected subtree and the decisions on it.
#[derive(Debug, Clone)]
pub struct Protected {
    pub path: PathBuf,
    pub decisions: Decisions,
    /// The path may be missing when the policy is loaded: it is then skipped (and logged),
    /// and protected from the first load that finds it. For control planes a host may not
    /// have, such as a container runtime's socket.
    pub optional: bool,
    /// Whether leases here are snapshotted (`rollback = "none"` says they need not be).
    pub snapshot: Snapshot,
}

/// The class names a policy may use, and the kernel classes each stands for.
const CLASS_NAMES: &[(&str, &[Class])] = &[
    ("delete", &[Class::Unlink, Class::Rmdir]),
    ("unlink", &[Class::Unlink]),
    ("rmdir", &[Class::Rmdir]),
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
    ("modify", FILE_CLASSES),
    ("read", &[Class::Read]),
    ("unix-connect", &[Class::UnixConnect]),
];

/// The classes a `[[protect]]` entry decides: every file class ([`FILE_CLASSES`]), then read
/// and unix-connect.
pub const PROTECT_CLASSES: &[Class] = &{
    let mut all = [Class::Read; FILE_CLASS_LIST.len() + 2];
    let mut i = 0;
    while i < FILE_CLASS_LIST.len() {
        all[i] = FILE_CLASS_LIST[i];
        i += 1;
    }
    all[i] = Class::Read;
    all[i + 1] = Class::UnixConnect;
    all
};

/// Every class that changes a protected path ("modify"). `read` and `unix-connect`
/// (connecting to unix sockets bound below the path) are listed on their own.
pub const FILE_CLASSES: &[Class] = &FILE_CLASS_LIST;

const FILE_CLASS_LIST: [Class; 12] = [
    Class::Unlink,
    Class::Rmdir,
    Class::Rename,
    Class::Truncate,
    Class::Write,
    Class::Chmod,
    Class::Chown,
    Class::Link,
    Class::Xattr,
    Class::Mknod,
    Class::Chattr,
    Class::Utimes,
];

impl Policy {
    /// Reads (a regular file of at most [`crate::host::files::POLICY`]'s size) and validates a
    /// policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = crate::host::files::read_text(path, crate::host::files::POLICY)?;
        Self::parse(path, &text)
    }

    /// Validates policy `text`, reporting errors against `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            path: path.to_owned(),
            message: syntax_message(text, &e),
        })?;
        let mut v = Validator {
            path,
            lines: LineIndex::new(text),
            problems: Vec::new(),
            agent_names: Vec::new(),
            table: ClassTable::default(),
            leased: 0,
        };
        let mut policy = v.policy(raw);
        policy.version = version_of(text.as_bytes());
        policy.text = text.into();
        if v.problems.is_empty() {
            Ok(policy)
        } else {
            // In file order (validation visits [classes] before the agents above it).
            v.problems.sort_by_key(|p| (p.line, p.column));
            Err(PolicyError::Invalid(v.problems))
        }
    }

    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// The tags and policy-wide decision of a class name (`delete`, `write`, `connect`, …;
    /// an aggregate answers with its strictest member), or `None` for an unknown name.
    pub fn class_rule(&self, class_name: &str) -> Option<&ClassRule> {
        self.class_table.rule(class_name)
    }

    /// How many approvals a lease on `class_name` needs: the class's `approvals` (default 2
    /// for a high blast radius, else 1), whether the lease comes from the class table or
    /// from a resource's `lease` list. An unknown name or an always-denied global class
    /// gets `u32::MAX` (no lease on it can be approved).
    pub fn approvals_required(&self, class_name: &str) -> u32 {
        match self.class_rule(class_name) {
            Some(rule)
                if !classes_for_name(class_name)
                    .is_some_and(|cs| cs.iter().any(|c| classes::GLOBAL_CLASSES.contains(c))) =>
            {
                rule.approvals
            }
            _ => u32::MAX,
        }
    }

    /// Every class some rule of this policy denies or leases, in class order.
    pub fn classes(&self) -> Vec<Class> {
        // One pass over the entries (a policy may hold tens of thousands), not one per class.
        let decided = self
            .protected
            .iter()
            .map(|p| &p.decisions)
            .chain(self.binaries.iter().map(|b| &b.decisions))
            .chain(self.network.iter().map(|n| &n.decisions))
            .fold(0, |m, d| m | d.guarded_mask());
        Class::ALL
            .into_iter()
            .filter(|c| decided & c.bit() != 0)
            .collect()
    }
}

/// Hex of the first 16 bytes of the SHA-256 of `bytes`.
fn version_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True for `a/b/c`: non-empty, no empty, `.` or `..` segments.
fn clean_relative(s: &str) -> bool {
    !s.is_empty()
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// True for `/` and `/a/b/c` (a trailing `/` allowed): no empty, `.` or `..` segments.
fn clean_absolute(s: &str) -> bool {
    match s.strip_prefix('/') {
        Some("") => true,
        Some(rest) => clean_relative(rest.trim_end_matches('/')),
        None => false,
    }
}

/// toml's message, prefixed with the line and column of its span.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let (line, col) = LineIndex::new(text).position(span.start);
            format!("{line}:{col}: {msg}")
        }
        None => msg.to_owned(),
    }
}

struct Validator<'a> {
    path: &'a Path,
    lines: LineIndex<'a>,
    problems: Vec<Located>,
    /// The policy's agents, once read (agent decisions must name one).
    agent_names: Vec<String>,
    /// The class table, once read (resources take their undecided classes from it).
    table: ClassTable,
    /// Every class some decision of the policy leases, as a mask.
    leased: u32,
}

impl Validator<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, field: &str, why: impl Into<String>) {
        let (line, column) = self.lines.position(at.span().start);
        self.problems.push(Located {
            path: self.path.to_owned(),
            line,
            column,
            field: field.to_owned(),
            why: why.into(),
        });
    }

    fn policy(&mut self, raw: RawPolicy) -> Policy {
        let header = raw.policy.into_inner();
        let name = self.identifier(&header.name, "policy.name");
        if header.owner.get_ref().trim().is_empty() {
            self.problem(
                &header.owner,
                "policy.owner",
                "is empty; name the team or person accountable for this policy (it is recorded in lineage)",
            );
        }
        let (table, pending_approvals) = self.class_table(raw.classes);
        self.table = table;
        let mut agents: Vec<Agent> = Vec::new();
        for (i, a) in raw.agents.into_iter().enumerate() {
            let name_at = a.get_ref().name.clone();
            let agent = self.agent(i, a.into_inner());
            if agents.iter().any(|x| x.name == agent.name) {
                self.problem(
                    &name_at,
                    &format!("agents[{i}].name"),
                    format!(
                        "agent `{}` is defined twice; agent names must be unique",
                        agent.name
                    ),
                );
            }
            agents.push(agent);
        }
        self.agent_names = agents.iter().map(|a| a.name.clone()).collect();
        let mut protected: Vec<Protected> = Vec::new();
        // A set, not a scan of `protected`: policies list tens of thousands of paths.
        let mut seen = std::collections::HashSet::new();
        for (i, p) in raw.protect.into_iter().enumerate() {
            let path_at = p.get_ref().path.clone();
            let prot = self.protect(i, p.into_inner());
            if !seen.insert(prot.path.clone()) {
                self.problem(
                    &path_at,
                    &format!("protect[{i}].path"),
                    format!(
                        "`{}` is protected twice; merge the two entries",
                        prot.path.display()
                    ),
                );
            }
            protected.push(prot);
        }
        let network = self.network_rules(raw.network);
        let binaries = self.binaries(raw.binaries);
        let rollback = self.rollback(raw.rollback);
        let leased = self.leased
            | network
                .iter()
                .fold(0, |m, n| m | n.decisions.masks().lease_mask);
        self.approvals_need_a_lease(pending_approvals, leased);
        Policy {
            source: self.path.to_owned(),
            version: String::new(),
            text: "".into(),
            name,
            class_table: self.table.clone(),
            owner: header.owner.into_inner().trim().to_owned(),
            agents,
            protected,
            network,
            binaries,
            rollback,
        }
    }

    fn identifier(&mut self, value: &Spanned<String>, field: &str) -> String {
        let s = value.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.problem(
                value,
                field,
                format!("`{s}` is not a valid name: use 1-64 characters from A-Z a-z 0-9 . _ -"),
            );
        }
        s.clone()
    }

    fn agent(&mut self, i: usize, raw: RawAgent) -> Agent {
        let name = self.identifier(&raw.name, &format!("agents[{i}].name"));
        let cgroup = match &raw.cgroup {
            Some(c) => self.cgroup(c, &format!("agents[{i}].cgroup")),
            None => Path::new("governor").join(&name),
        };
        let max_lease_ttl = match &raw.max_lease_ttl {
            None => DEFAULT_MAX_LEASE_TTL,
            Some(t) => self.lease_ttl(t, &format!("agents[{i}].max_lease_ttl")),
        };
        let mode = match &raw.mode {
            None => Mode::Enforce,
            Some(m) => match m.get_ref().as_str() {
                "enforce" => Mode::Enforce,
                "observe" => Mode::Observe,
                other => {
                    self.problem(
                        m,
                        &format!("agents[{i}].mode"),
                        format!("`{other}` is not a mode: use \"enforce\" or \"observe\""),
                    );
                    Mode::Enforce
                }
            },
        };
        let allow_fileless_exec = raw.allow_fileless_exec.is_some_and(Spanned::into_inner);
        let allow_outside_abstract_unix = raw
            .allow_outside_abstract_unix
            .is_some_and(Spanned::into_inner);
        let allow_raw_sockets = raw.allow_raw_sockets.is_some_and(Spanned::into_inner);
        let record = raw.record.as_ref().map_or(Record::Decisions, |r| {
            let options = [("decisions", Record::Decisions), ("all", Record::All)];
            classes::pick(r.get_ref(), &options).unwrap_or_else(|why| {
                let field = format!("agents[{i}].record");
                self.problem(r, &field, why);
                Record::Decisions
            })
        });
        Agent {
            name,
            cgroup,
            mode,
            allow_fileless_exec,
            max_lease_ttl,
            allow_outside_abstract_unix,
            allow_raw_sockets,
            record,
        }
    }

    fn lease_ttl(&mut self, value: &Spanned<String>, field: &str) -> Duration {
        match crate::time::parse_duration(value.get_ref()).map(Duration::from_secs) {
            Ok(d) if d.is_zero() => {
                self.problem(
                    value,
                    field,
                    "is zero: an agent's leases must last a while; give e.g. \"15m\"",
                );
                DEFAULT_MAX_LEASE_TTL
            }
            Ok(d) if d > MAX_LEASE_TTL_CAP => {
                self.problem(
                    value,
                    field,
                    format!(
                        "`{}` is longer than the 7d cap: a lease is a temporary exception; \
                         give 7d or less (re-issue a lease when it runs out)",
                        value.get_ref()
                    ),
                );
                DEFAULT_MAX_LEASE_TTL
            }
            Ok(d) => d,
            Err(why) => {
                self.problem(value, field, why.to_string());
                DEFAULT_MAX_LEASE_TTL
            }
        }
    }

    fn cgroup(&mut self, value: &Spanned<String>, field: &str) -> PathBuf {
        let raw = value.get_ref().trim();
        // Accept absolute paths under the usual mount point, store them relative.
        let rel = match raw.strip_prefix("/sys/fs/cgroup/") {
            Some(rel) => Some(rel),
            None if raw.starts_with('/') => None,
            None => Some(raw),
        };
        let rel = rel.map(|r| r.trim_end_matches('/')).unwrap_or_default();
        let path = PathBuf::from(rel);
        let clean = clean_relative(rel);
        if !clean {
            self.problem(
                value,
                field,
                format!(
                    "`{raw}` is not a cgroup path: give a path relative to the cgroup v2 mount, \
                     like \"governor/my-agent\", without `.` or `..`"
                ),
            );
        }
        path
    }

    fn protect(&mut self, i: usize, raw: RawProtect) -> Protected {
        let p = raw.path.get_ref();
        let path = PathBuf::from(p);
        if !clean_absolute(p) {
            self.problem(
                &raw.path,
                &format!("protect[{i}].path"),
                format!("`{p}` must be an absolute path without `.` or `..` components"),
            );
        }
        let resolve = |n: &str| -> Result<&'static [Class], String> {
            if let Some((_, classes)) = CLASS_NAMES.iter().find(|(k, _)| *k == n) {
                return Ok(classes);
            }
            let known: Vec<&str> = CLASS_NAMES.iter().map(|(k, _)| *k).collect();
            Err(
                if net::NET_CLASSES.iter().any(|c| c.name() == n) || n == "network" {
                    format!(
                        "`{n}` is a network class and belongs in a [[network]] entry; \
                         file classes: {}",
                        known.join(", ")
                    )
                } else {
                    format!("unknown class `{n}`; known classes: {}", known.join(", "))
                },
            )
        };
        let decisions = self.decisions(
            &format!("protect[{i}]"),
            &raw.path,
            RawLists {
                allow: raw.allow,
                deny: raw.deny,
                lease: raw.lease,
            },
            raw.agent,
            &resolve,
            PROTECT_CLASSES,
        );
        let optional = raw.optional.is_some_and(Spanned::into_inner);
        let snapshot = self.snapshot(raw.rollback.as_ref(), &format!("protect[{i}].rollback"));
        Protected {
            path,
            decisions,
            optional,
            snapshot,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "lang_tests.rs"]
mod lang_tests;
