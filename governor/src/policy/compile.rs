//! Validated policy → kernel map entries: agent cgroup ids and protected inode identities,
//! governor's own directories first (`RULE_SELF`: no policy can lift their protection).

use std::path::PathBuf;

use governor_common::{
    maps::{
        Verdict, AGENT_FLAG_ALLOW_FILELESS_EXEC, AGENT_FLAG_ALLOW_OUTSIDE_ABSTRACT_UNIX,
        AGENT_FLAG_ALLOW_RAW_SOCKETS, AGENT_FLAG_OBSERVE, AGENT_FLAG_RECORD_ALL, RULE_BINARY_FLAG,
        RULE_SELF,
    },
    net::RULE_NET_FLAG,
    AgentInfo, AgentRuleKey, Class, InodeKey, Masks, ProtectedRule,
};

use super::{
    net::{self, CompiledNet},
    Decisions, Mode, Policy,
};
use crate::{
    host::cgroup::{CgroupError, CgroupFs},
    host::dirs::OwnDir,
    host::inode,
};

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("agent `{agent}`: cgroup: {source}")]
    Cgroup { agent: String, source: CgroupError },
    #[error(
        "protected path {path}: {source}; create it, or remove it from the policy \
         (protection is by inode, so the path must exist when the policy is loaded)"
    )]
    Protected {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "governor's {what} directory {path}: {source}; the daemon creates it before compiling \
         the policy, so it should exist"
    )]
    OwnDir {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "binary {path}: {source}; install it, or remove it from the policy \
         (binaries are identified by inode, so the path must exist when the policy is loaded)"
    )]
    Binary {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "binary {path} is not a regular file; list the executable itself \
         (symlinks are followed to it)"
    )]
    NotAFile { path: PathBuf },
    #[error("policy has {count} {what}; the kernel map holds at most {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: u32,
    },
    #[error(
        "network rules: addresses in {prefix} are matched against {count} port ranges; the \
         kernel holds at most {max} per prefix (run `governor policy check`)"
    )]
    NetOverflow {
        prefix: String,
        count: usize,
        max: usize,
    },
}

/// One agent, ready for the kernel.
#[derive(Debug, Clone)]
pub struct CompiledAgent {
    pub name: String,
    pub cgroup: PathBuf,
    pub cgroup_id: u64,
    pub info: AgentInfo,
}

/// One protected inode, ready for the kernel.
#[derive(Debug, Clone)]
pub struct CompiledProtect {
    pub path: PathBuf,
    pub key: InodeKey,
    pub rule: ProtectedRule,
}

/// One listed binary, ready for the kernel (`rule.rule_id` indexes the policy's binaries).
pub type CompiledBinary = CompiledProtect;

/// Adds the rule for `key`, or, when an earlier policy entry named the same inode (a symlink
/// and its target, a hard link), merges `decisions` into that entry (a deny wins over a
/// lease). Classes the entry explicitly allows go into `agent_mask`: the kernel's walk stops
/// at this inode for them, and with no agent entry saying otherwise they are allowed (an
/// enclosing protected path does not decide them). Returns the rule id the kernel will
/// report for `key`.
fn add_merged(
    list: &mut Vec<CompiledProtect>,
    path: &std::path::Path,
    key: InodeKey,
    rule_id: u32,
    decisions: &Decisions,
) -> u32 {
    let masks = decisions.masks();
    if let Some(same) = list.iter_mut().find(|c| c.key == key) {
        same.rule.deny_mask |= masks.deny_mask;
        same.rule.lease_mask = (same.rule.lease_mask | masks.lease_mask) & !same.rule.deny_mask;
        same.rule.agent_mask |= decisions.allow_mask();
        return same.rule.rule_id;
    }
    list.push(CompiledProtect {
        path: path.to_owned(),
        key,
        rule: ProtectedRule {
            rule_id,
            deny_mask: masks.deny_mask,
            lease_mask: masks.lease_mask,
            agent_mask: decisions.allow_mask(),
        },
    });
    rule_id
}

/// Adds each agent's own decisions on the resource `rule_id` (tagged with `tag`) to `out`;
/// returns the classes they decide, for the resource's `agent_mask`.
fn add_agent_rules(
    out: &mut Vec<(AgentRuleKey, Masks)>,
    policy: &Policy,
    decisions: &Decisions,
    rule_id: u32,
    tag: u32,
) -> u32 {
    let defaults = decisions.masks();
    let mut agent_mask = 0;
    for own in &decisions.agents {
        // Validation guarantees the agent exists.
        if let Some(agent_id) = policy.agents.iter().position(|a| a.name == own.agent) {
            let masks = own.masks(defaults);
            agent_mask |= own.named() | masks.deny_mask | masks.lease_mask;
            out.push((
                AgentRuleKey {
                    agent_id: agent_id as u32,
                    rule_id: rule_id | tag,
                },
                masks,
            ));
        }
    }
    agent_mask
}

/// Marks `agent_mask` in the entry of `list` whose rule is `rule_id`.
fn mark_agent_mask(list: &mut [CompiledProtect], rule_id: u32, agent_mask: u32) {
    if let Some(entry) = list.iter_mut().find(|c| c.rule.rule_id == rule_id) {
        entry.rule.agent_mask |= agent_mask;
    }
}

/// What governor's own directories are protected against: every file class, read (agents may
/// not even list them, open anything in them, or lock what they hold) and unix-connect.
pub fn self_deny_mask() -> u32 {
    super::PROTECT_CLASSES.iter().fold(0, |m, c| m | c.bit())
}

/// What one of governor's own directories is protected against: [`self_deny_mask`], less
/// unix-connect for the request socket's directory.
pub fn own_deny_mask(d: &OwnDir) -> u32 {
    if d.connectable {
        self_deny_mask() & !Class::UnixConnect.bit()
    } else {
        self_deny_mask()
    }
}

/// Everything the kernel maps need for one policy.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub agents: Vec<CompiledAgent>,
    pub protected: Vec<CompiledProtect>,
    /// Ancestor directories of protected paths (renaming one would move a protected
    /// subtree), with the rule id of the protected path below them.
    pub ancestors: Vec<(InodeKey, u32)>,
    /// The network tries' contents.
    pub network: CompiledNet,
    /// Each `[[network]]` rule as text, indexed by `rule_id` (for the log).
    pub network_rules: Vec<String>,
    /// Each `[[network]]` rule's decisions as the tries hold them, indexed by `rule_id`.
    pub net_rules: Vec<ProtectedRule>,
    pub binaries: Vec<CompiledBinary>,
    /// Agents' own decisions on resources (`GOV_AGENT_RULES`).
    pub agent_rules: Vec<(AgentRuleKey, Masks)>,
    /// governor's own directories, protected with `RULE_SELF` (also in `protected`).
    pub own: Vec<OwnDir>,
    /// Inodes protected for their place in a protected tree: hard links, mount roots
    /// (`GOV_LINKED`), and how the scan that found them went.
    pub linked: super::linked::Scan,
    /// `optional` protected paths this host does not have (nothing to protect yet).
    pub absent: Vec<PathBuf>,
    /// The version of the policy this was compiled from (recorded with each decision).
    pub policy_version: String,
}

impl Compiled {
    pub fn agent_name(&self, agent_id: u32) -> Option<&str> {
        self.agents.get(agent_id as usize).map(|a| a.name.as_str())
    }

    pub fn network_rule(&self, rule_id: u32) -> Option<&str> {
        self.network_rules.get(rule_id as usize).map(String::as_str)
    }

    pub fn protected_path(&self, rule_id: u32) -> Option<&std::path::Path> {
        self.protected
            .iter()
            .find(|p| p.rule.rule_id == rule_id)
            .map(|p| p.path.as_path())
    }

    /// Whether `agent_id`'s decision on `class` at resource `rule_id` is `lease` (so a deny
    /// means "no unexpired lease").
    pub fn needs_lease(&self, agent_id: u32, rule_id: u32, class: governor_common::Class) -> bool {
        let rule_id = governor_common::maps::rule_base(rule_id);
        let find = |list: &[CompiledProtect]| {
            list.iter()
                .find(|p| p.rule.rule_id == rule_id)
                .map(|p| p.rule)
        };
        let (rule, tag) = if class == governor_common::Class::Exec {
            (find(&self.binaries), RULE_BINARY_FLAG)
        } else if net::NET_CLASSES.contains(&class) {
            (self.net_rules.get(rule_id as usize).copied(), RULE_NET_FLAG)
        } else {
            (find(&self.protected), 0)
        };
        let Some(rule) = rule else {
            return false;
        };
        rule.verdict(self.agent_masks(agent_id, rule_id | tag), class.bit()) == Verdict::Lease
    }

    /// Agent `agent_id`'s own decisions on resource `override_id` (a rule id, tagged with
    /// `RULE_BINARY_FLAG` for binaries, `RULE_NET_FLAG` for network rules), if it has any.
    pub fn agent_masks(&self, agent_id: u32, override_id: u32) -> Option<Masks> {
        self.agent_rules
            .iter()
            .find(|(k, _)| k.agent_id == agent_id && k.rule_id == override_id)
            .map(|(_, m)| *m)
    }

    pub fn binary_path(&self, rule_id: u32) -> Option<&std::path::Path> {
        self.binaries
            .iter()
            .find(|b| b.rule.rule_id == rule_id)
            .map(|b| b.path.as_path())
    }
}

/// Resolves `policy` against this host: creates missing agent cgroups and identifies every
/// protected path by inode. Protected paths are followed through symlinks once, here, so the
/// kernel guards the real object. governor's own directories (`own`, which must exist) come
/// first and keep `RULE_SELF` and their full mask even when a policy entry names the same
/// inode.
pub fn compile(
    policy: &Policy,
    cgroups: &CgroupFs,
    own: &[OwnDir],
) -> Result<Compiled, CompileError> {
    compile_with(policy, own, |agent| {
        cgroups
            .ensure(&agent.cgroup)
            .map_err(|source| CompileError::Cgroup {
                agent: agent.name.clone(),
                source,
            })
    })
}

/// [`compile`] for reading only (`governor simulate`): the policy's rules against this host's
/// inodes, without governor's own directories, and without creating or looking up agent
/// cgroups (every agent's `cgroup_id` is 0).
pub fn compile_rules(policy: &Policy) -> Result<Compiled, CompileError> {
    compile_with(policy, &[], |_| Ok(0))
}

/// [`compile`], with each agent's cgroup id from `cgroup_id`.
fn compile_with(
    policy: &Policy,
    own: &[OwnDir],
    cgroup_id: impl Fn(&super::Agent) -> Result<u64, CompileError>,
) -> Result<Compiled, CompileError> {
    use governor_common::maps::{
        MAX_AGENTS, MAX_AGENT_RULES, MAX_BINARIES, MAX_LINKED, MAX_PROTECTED,
    };
    if policy.agents.len() > MAX_AGENTS as usize {
        return Err(CompileError::TooMany {
            what: "agents",
            count: policy.agents.len(),
            max: MAX_AGENTS,
        });
    }
    if policy.protected.len() + own.len() > MAX_PROTECTED as usize {
        return Err(CompileError::TooMany {
            what: "protected paths (governor's own directories included)",
            count: policy.protected.len() + own.len(),
            max: MAX_PROTECTED,
        });
    }
    if policy.binaries.len() > MAX_BINARIES as usize {
        return Err(CompileError::TooMany {
            what: "binaries",
            count: policy.binaries.len(),
            max: MAX_BINARIES,
        });
    }
    let mut agents = Vec::with_capacity(policy.agents.len());
    for (i, agent) in policy.agents.iter().enumerate() {
        let cgroup_id = cgroup_id(agent)?;
        let mut flags = match agent.mode {
            Mode::Observe => AGENT_FLAG_OBSERVE,
            Mode::Enforce => 0,
        };
        if agent.allow_fileless_exec {
            flags |= AGENT_FLAG_ALLOW_FILELESS_EXEC;
        }
        if agent.allow_outside_abstract_unix {
            flags |= AGENT_FLAG_ALLOW_OUTSIDE_ABSTRACT_UNIX;
        }
        if agent.allow_raw_sockets {
            flags |= AGENT_FLAG_ALLOW_RAW_SOCKETS;
        }
        if agent.record == super::Record::All {
            flags |= AGENT_FLAG_RECORD_ALL;
        }
        agents.push(CompiledAgent {
            name: agent.name.clone(),
            cgroup: agent.cgroup.clone(),
            cgroup_id,
            info: AgentInfo {
                agent_id: i as u32,
                flags,
            },
        });
    }
    let mut agent_rules = Vec::new();
    let protected = compile_protected(policy, own, &mut agent_rules)?;
    let ancestors = ancestors_of(&protected);
    let linked = super::linked::scan(&protected);
    let absent = policy
        .protected
        .iter()
        .filter(|p| p.optional && !protected.iter().any(|c| c.path == p.path))
        .map(|p| p.path.clone())
        .collect();
    if linked.linked.len() > MAX_LINKED as usize {
        return Err(CompileError::TooMany {
            what: "files with more than one name and mounts below protected paths",
            count: linked.linked.len(),
            max: MAX_LINKED,
        });
    }
    let network = net::flatten(&policy.network).map_err(|overflows| {
        let o = &overflows[0];
        CompileError::NetOverflow {
            prefix: o.key.to_string(),
            count: o.count,
            max: governor_common::net::MAX_PORT_RULES,
        }
    })?;
    let max = governor_common::net::MAX_NET_PREFIXES;
    for (what, count) in [
        ("IPv4 network prefixes", network.v4.len()),
        ("IPv6 network prefixes", network.v6.len()),
    ] {
        if count > max as usize {
            return Err(CompileError::TooMany { what, count, max });
        }
    }
    let binaries = compile_binaries(policy, &mut agent_rules)?;
    let mut net_rules = Vec::with_capacity(policy.network.len());
    for (i, n) in policy.network.iter().enumerate() {
        // The tries carry the same agent mask (`NetRule::kernel_rule`).
        add_agent_rules(
            &mut agent_rules,
            policy,
            &n.decisions,
            i as u32,
            RULE_NET_FLAG,
        );
        net_rules.push(n.kernel_rule(i as u32));
    }
    if agent_rules.len() > MAX_AGENT_RULES as usize {
        return Err(CompileError::TooMany {
            what: "agent decisions ([[protect.agent]], [[binaries.agent]] and [[network.agent]] \
                   entries)",
            count: agent_rules.len(),
            max: MAX_AGENT_RULES,
        });
    }
    Ok(Compiled {
        agents,
        protected,
        ancestors,
        network,
        network_rules: policy.network.iter().map(ToString::to_string).collect(),
        net_rules,
        binaries,
        agent_rules,
        own: own.to_vec(),
        linked,
        absent,
        policy_version: policy.version.clone(),
    })
}

/// The protected map's entries: governor's own directories (every class they can be reached
/// by denied), then the policy's `[[protect]]` paths.
fn compile_protected(
    policy: &Policy,
    own: &[OwnDir],
    agent_rules: &mut Vec<(AgentRuleKey, Masks)>,
) -> Result<Vec<CompiledProtect>, CompileError> {
    let mut protected = Vec::with_capacity(own.len() + policy.protected.len());
    for d in own {
        let own_decisions = Decisions {
            deny: Class::ALL
                .into_iter()
                .filter(|c| own_deny_mask(d) & c.bit() != 0)
                .collect(),
            ..Decisions::default()
        };
        let key = path_key(&d.path).map_err(|source| CompileError::OwnDir {
            what: d.what,
            path: d.path.clone(),
            source,
        })?;
        add_merged(&mut protected, &d.path, key, RULE_SELF, &own_decisions);
    }
    for (i, p) in policy.protected.iter().enumerate() {
        let key = match path_key(&p.path) {
            Ok(key) => key,
            // A control plane this host does not have: nothing to protect yet.
            Err(e) if p.optional && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(CompileError::Protected {
                    path: p.path.clone(),
                    source,
                })
            }
        };
        let rule_id = add_merged(&mut protected, &p.path, key, i as u32, &p.decisions);
        // No agent has decisions of its own on governor's own directories.
        if rule_id != RULE_SELF {
            let agent_mask = add_agent_rules(agent_rules, policy, &p.decisions, rule_id, 0);
            mark_agent_mask(&mut protected, rule_id, agent_mask);
        }
    }
    // A policy entry on the same inode as one of governor's own directories was merged into
    // it: the directory keeps its own rule id and stays denied for everything.
    for p in protected.iter_mut().filter(|p| p.rule.rule_id == RULE_SELF) {
        let mask = own
            .iter()
            .filter(|d| path_key(&d.path).is_ok_and(|k| k == p.key))
            .fold(0, |m, d| m | own_deny_mask(d));
        // Never less than every class, should the inode no longer match a directory.
        p.rule.deny_mask = if mask == 0 { self_deny_mask() } else { mask };
        p.rule.lease_mask = 0;
        p.rule.agent_mask = 0;
    }
    Ok(protected)
}

/// Inode identity of `path` (following symlinks).
fn path_key(path: &std::path::Path) -> std::io::Result<InodeKey> {
    std::fs::metadata(path).map(|meta| inode::key(path, &meta))
}

/// Every existing ancestor directory of every protected path, once.
fn ancestors_of(protected: &[CompiledProtect]) -> Vec<(InodeKey, u32)> {
    let mut out: Vec<(InodeKey, u32)> = Vec::new();
    for p in protected {
        let real = std::fs::canonicalize(&p.path).unwrap_or_else(|_| p.path.clone());
        for dir in real.ancestors().skip(1) {
            if let Ok(key) = path_key(dir) {
                if !out.iter().any(|(k, _)| *k == key) {
                    out.push((key, p.rule.rule_id));
                }
            }
        }
    }
    out
}

/// Identifies every listed binary by inode, following symlinks, so the kernel matches the
/// executable itself under any of its names (hard links, symlinks, `/bin` vs `/usr/bin`).
fn compile_binaries(
    policy: &Policy,
    agent_rules: &mut Vec<(AgentRuleKey, Masks)>,
) -> Result<Vec<CompiledBinary>, CompileError> {
    let mut binaries: Vec<CompiledBinary> = Vec::with_capacity(policy.binaries.len());
    for (i, b) in policy.binaries.iter().enumerate() {
        let meta = std::fs::metadata(&b.path).map_err(|source| CompileError::Binary {
            path: b.path.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(CompileError::NotAFile {
                path: b.path.clone(),
            });
        }
        let key = inode::key(&b.path, &meta);
        let rule_id = add_merged(&mut binaries, &b.path, key, i as u32, &b.decisions);
        let agent_mask =
            add_agent_rules(agent_rules, policy, &b.decisions, rule_id, RULE_BINARY_FLAG);
        mark_agent_mask(&mut binaries, rule_id, agent_mask);
    }
    Ok(binaries)
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
