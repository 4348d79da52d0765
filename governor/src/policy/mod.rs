//! Policies: raw TOML (`raw`) → validated domain types (this module) → kernel map entries
//! (`compile`). Validation collects every problem with its file, line and field.

mod binaries;
mod compile;
mod decisions;
mod error;
pub mod net;
mod raw;

use std::path::{Path, PathBuf};

use governor_common::Class;
use toml::Spanned;

pub use binaries::Binary;
pub use compile::{compile, Compiled};
pub use decisions::Decisions;
pub use error::{Located, PolicyError};
pub use net::NetRule;

use error::LineIndex;
use raw::{RawAgent, RawPolicy, RawProtect};

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub source: PathBuf,
    pub name: String,
    pub owner: String,
    pub agents: Vec<Agent>,
    pub protected: Vec<Protected>,
    /// `[[network]]` rules, in policy order (a rule's index is its `rule_id`).
    pub network: Vec<NetRule>,
    /// `[[binaries]]` whose exec is denied to agents.
    pub binaries: Vec<Binary>,
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
    /// Path of the agent's cgroup relative to the cgroup v2 mount, e.g. `governor/demo`.
    pub cgroup: PathBuf,
    pub mode: Mode,
    /// May execute files with no name on any filesystem (memfd, `O_TMPFILE`, deleted).
    pub allow_fileless_exec: bool,
    /// May connect and send to abstract unix sockets created outside its cgroup subtree.
    pub allow_outside_abstract_unix: bool,
}

/// A protected subtree and the decisions on it.
#[derive(Debug, Clone)]
pub struct Protected {
    pub path: PathBuf,
    pub decisions: Decisions,
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
    ("modify", FILE_CLASSES),
    ("unix-connect", &[Class::UnixConnect]),
];

/// Every class that applies to a protected path ("modify"). `unix-connect` (connecting to
/// unix sockets bound below the path) is listed on its own.
pub const FILE_CLASSES: &[Class] = &[
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
];

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
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
        };
        let policy = v.policy(raw);
        if v.problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError::Invalid(v.problems))
        }
    }

    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// Every class some rule of this policy denies or leases, in class order.
    pub fn classes(&self) -> Vec<Class> {
        // One pass over the entries (a policy may hold tens of thousands), not one per class.
        let decided = self
            .protected
            .iter()
            .map(|p| &p.decisions)
            .chain(self.binaries.iter().map(|b| &b.decisions))
            .fold(0, |m, d| m | d.guarded_mask());
        let denied = self
            .network
            .iter()
            .flat_map(|n| n.deny.iter())
            .fold(decided, |m, c| m | c.bit());
        Class::ALL
            .into_iter()
            .filter(|c| denied & c.bit() != 0)
            .collect()
    }
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
        Policy {
            source: self.path.to_owned(),
            name,
            owner: header.owner.into_inner().trim().to_owned(),
            agents,
            protected,
            network,
            binaries,
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
        let cgroup = self.cgroup(&raw.cgroup, &format!("agents[{i}].cgroup"));
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
        Agent {
            name,
            cgroup,
            mode,
            allow_fileless_exec,
            allow_outside_abstract_unix,
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
            raw.deny,
            raw.lease,
            raw.agent,
            &resolve,
        );
        Protected { path, decisions }
    }
}

#[cfg(test)]
mod tests;
