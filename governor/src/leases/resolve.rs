//! From a lease scope (a policy class name and a target) to the kernel's lease entries.
//!
//! A scope is only accepted if it can allow something: its target must lie at or below a
//! protected resource (or be a listed binary) whose decision for the agent on that class is
//! `lease`, found the way the kernel finds it (the nearest protected inode up the path that
//! decides the class). A `deny` there, or no resource deciding the class at all, is refused
//! with the reason: a lease that grants nothing is a mistake worth saying so. Targets are
//! identified by inode, like everything the kernel guards; a scope pinned at approval must
//! still name the same inode ("fresh state"), or it is refused.

// Refusals carry the paths and names the operator needs to see, and are built only on the
// refusal path, at most once per submit: their size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use governor_common::{
    maps::{Verdict, RULE_BINARY_FLAG, RULE_SELF},
    net::{lease_object, RULE_NET_FLAG},
    Class, InodeKey, LeaseKey,
};

use crate::host::inode;
use crate::policy::{
    self,
    net::{self, Prefix},
    Compiled, Policy,
};

/// Why a scope is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("scope `{class}:{target}`: unknown class `{class}`; classes: {known}")]
    UnknownClass {
        class: String,
        target: String,
        known: String,
    },
    #[error(
        "scope `{class}:{target}`: the target must be an absolute path (file and exec classes \
         name the file or directory the lease covers)"
    )]
    NotAbsolute { class: String, target: String },
    #[error("scope `{class}:{target}`: cannot resolve the target: {why}")]
    Missing {
        class: String,
        target: String,
        why: String,
    },
    #[error(
        "scope `{class}:{target}`: the target was pinned at approval as dev {pinned_dev} inode \
         {pinned_ino}, but {resolved} is now dev {dev} inode {ino}: it was replaced since \
         the approval, so the lease does not cover it; issue a new lease for the new file"
    )]
    Swapped {
        class: String,
        target: String,
        resolved: PathBuf,
        pinned_dev: u64,
        pinned_ino: u64,
        dev: u64,
        ino: u64,
    },
    #[error(
        "scope `{class}:{target}`: the policy denies {kernel_class} on {resource} to agent \
         `{agent}`; a lease cannot lift a deny (change the policy if this must be possible)"
    )]
    Denied {
        class: String,
        target: String,
        kernel_class: &'static str,
        resource: String,
        agent: String,
    },
    #[error(
        "scope `{class}:{target}`: {resource} is governor's own directory; no lease ever \
         opens it to an agent"
    )]
    Own {
        class: String,
        target: String,
        resource: String,
    },
    #[error(
        "scope `{class}:{target}`: nothing to grant: no protected resource at or above \
         {resolved} decides `lease` on {kernel_class} for agent `{agent}` (it is {why}); \
         check the target and class against `governor policy check`"
    )]
    NothingToGrant {
        class: String,
        target: String,
        resolved: PathBuf,
        kernel_class: &'static str,
        agent: String,
        why: &'static str,
    },
    #[error(
        "scope `{class}:{target}`: {class} leases name a listed binary; {resolved} is not \
         one of the policy's [[binaries]]"
    )]
    NotABinary {
        class: String,
        target: String,
        resolved: PathBuf,
    },
    #[error(
        "scope `{class}:{target}`: no [[network]] rule covering {target} decides `lease` on \
         {class} for agent `{agent}` (network leases are per rule: name an address, prefix or \
         port the rule covers)"
    )]
    NoNetworkRule {
        class: String,
        target: String,
        agent: String,
    },
    #[error(
        "scope `{class}:{target}`: not a network target; write ADDR[/PREFIX][:PORT], with \
         IPv6 in brackets when a port follows ([2001:db8::1]:5432)"
    )]
    BadNetworkTarget { class: String, target: String },
}

/// One scope as the lease file states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeSpec<'a> {
    pub class: &'a str,
    pub target: &'a str,
    /// (st_dev, st_ino) captured at approval.
    pub pin: Option<(u64, u64)>,
}

/// The kernel entries one scope installs, and the resource that made them necessary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub keys: Vec<LeaseKey>,
    /// The protected resource (or binary, or network rule) whose `lease` decision applies.
    pub resource: String,
    /// The target as resolved (symlinks followed).
    pub object: String,
}

/// Resolves `scope` for agent `agent_id` (`agent` by name) against the policy and its
/// compiled form.
pub fn resolve(
    policy: &Policy,
    compiled: &Compiled,
    agent_id: u32,
    agent: &str,
    scope: &ScopeSpec<'_>,
) -> Result<Resolved, ScopeError> {
    let class = scope.class.to_owned();
    let target = scope.target.to_owned();
    let Some(classes) = policy::classes_for_name(scope.class) else {
        return Err(ScopeError::UnknownClass {
            class,
            target,
            known: policy::classes::class_names()
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    if classes.iter().any(|c| policy::net::NET_CLASSES.contains(c)) {
        return resolve_network(policy, compiled, agent_id, agent, scope, classes);
    }
    if !Path::new(scope.target).is_absolute() {
        return Err(ScopeError::NotAbsolute { class, target });
    }
    let resolved = std::fs::canonicalize(scope.target).map_err(|e| ScopeError::Missing {
        class: class.clone(),
        target: target.clone(),
        why: e.to_string(),
    })?;
    let meta = std::fs::metadata(&resolved).map_err(|e| ScopeError::Missing {
        class: class.clone(),
        target: target.clone(),
        why: e.to_string(),
    })?;
    if let Some((pinned_dev, pinned_ino)) = scope.pin {
        if (meta.dev(), meta.ino()) != (pinned_dev, pinned_ino) {
            return Err(ScopeError::Swapped {
                class,
                target,
                resolved,
                pinned_dev,
                pinned_ino,
                dev: meta.dev(),
                ino: meta.ino(),
            });
        }
    }
    let object = inode::key(&resolved, &meta);
    let mut keys = Vec::new();
    let mut resource = String::new();
    let mut first_err = None;
    for &kc in classes {
        let found = if kc == Class::Exec {
            binary_verdict(compiled, agent_id, object).ok_or_else(|| ScopeError::NotABinary {
                class: class.clone(),
                target: target.clone(),
                resolved: resolved.clone(),
            })
        } else {
            Ok(path_verdict(compiled, agent_id, kc, &resolved))
        };
        let outcome = found.and_then(|found| match found {
            Some((rule_id, _, path)) if rule_id == RULE_SELF => Err(ScopeError::Own {
                class: class.clone(),
                target: target.clone(),
                resource: path.display().to_string(),
            }),
            Some((_, Verdict::Lease, path)) => Ok(path),
            Some((_, Verdict::Deny, path)) => Err(ScopeError::Denied {
                class: class.clone(),
                target: target.clone(),
                kernel_class: kc.name(),
                resource: path.display().to_string(),
                agent: agent.to_owned(),
            }),
            other => Err(ScopeError::NothingToGrant {
                class: class.clone(),
                target: target.clone(),
                resolved: resolved.clone(),
                kernel_class: kc.name(),
                agent: agent.to_owned(),
                why: if matches!(other, Some((_, Verdict::Allow, _))) {
                    "allowed to this agent already"
                } else {
                    "not protected for this class"
                },
            }),
        });
        match outcome {
            Ok(path) => {
                keys.push(LeaseKey {
                    agent_id,
                    class: kc as u32,
                    object,
                });
                resource = path.display().to_string();
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    // A class name standing for several kernel classes (`delete`) grants those the policy
    // leases; it is refused only if it would grant none.
    match first_err {
        Some(e) if keys.is_empty() => Err(e),
        _ => Ok(Resolved {
            keys,
            resource,
            object: resolved.display().to_string(),
        }),
    }
}

/// The verdict of the nearest protected inode at or above `path` that decides `class` for
/// the agent (the kernel's walk), with its rule id and path.
fn path_verdict(
    compiled: &Compiled,
    agent_id: u32,
    class: Class,
    path: &Path,
) -> Option<(u32, Verdict, PathBuf)> {
    for dir in path.ancestors() {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let key = inode::key(dir, &meta);
        let Some(entry) = compiled.protected.iter().find(|p| p.key == key) else {
            continue;
        };
        let own = compiled.agent_masks(agent_id, entry.rule.rule_id);
        match entry.rule.verdict(own, class.bit()) {
            Verdict::Silent => continue,
            v => return Some((entry.rule.rule_id, v, entry.path.clone())),
        }
    }
    None
}

/// The verdict of the listed binary with inode `object` on exec for the agent.
fn binary_verdict(
    compiled: &Compiled,
    agent_id: u32,
    object: InodeKey,
) -> Option<Option<(u32, Verdict, PathBuf)>> {
    let entry = compiled.binaries.iter().find(|b| b.key == object)?;
    let own = compiled.agent_masks(agent_id, entry.rule.rule_id | RULE_BINARY_FLAG);
    Some(Some((
        entry.rule.rule_id,
        entry.rule.verdict(own, Class::Exec.bit()),
        entry.path.clone(),
    )))
}

/// Parses a network scope target: `ADDR[/PREFIX][:PORT]`, IPv6 in brackets when a port
/// follows (`[2001:db8::1]:5432`).
fn net_target(target: &str) -> Option<(Prefix, Option<u16>)> {
    let (addr, port) = if let Some(rest) = target.strip_prefix('[') {
        let (a, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (a, port)
    } else if target.matches(':').count() == 1 {
        let (a, p) = target.split_once(':')?;
        (a, Some(p.parse().ok()?))
    } else {
        (target, None)
    };
    Some((net::parse_cidr(addr).ok()?, port))
}

/// Network scopes: the target is an address or prefix (and port) the policy's
/// `[[network]]` rules cover. Like the kernel, the most specific rule containing it (and its
/// port) that decides the class for anyone decides; a lease is on that rule.
fn resolve_network(
    policy: &Policy,
    compiled: &Compiled,
    agent_id: u32,
    agent: &str,
    scope: &ScopeSpec<'_>,
    classes: &[Class],
) -> Result<Resolved, ScopeError> {
    let class = scope.class.to_owned();
    let target = scope.target.to_owned();
    let Some((prefix, port)) = net_target(scope.target) else {
        return Err(ScopeError::BadNetworkTarget { class, target });
    };
    let mut rules: Vec<(usize, &net::NetRule)> = policy
        .network
        .iter()
        .enumerate()
        .filter(|(_, r)| r.cidr.contains(&prefix))
        .filter(|(_, r)| {
            port.is_none_or(|p| {
                r.ports.is_empty() || r.ports.iter().any(|x| x.lo <= p && p <= x.hi)
            })
        })
        .collect();
    rules.sort_by_key(|(_, r)| std::cmp::Reverse(r.cidr.len()));
    let mut keys = Vec::new();
    let mut resource = String::new();
    let mut first_err = None;
    for &kc in classes {
        let decided = rules.iter().find_map(|(i, r)| {
            // The rule and the agent's own decisions as the kernel holds them.
            let kernel = compiled.net_rules.get(*i)?;
            let own = compiled.agent_masks(agent_id, *i as u32 | RULE_NET_FLAG);
            match kernel.verdict(own, kc.bit()) {
                Verdict::Silent => None,
                v => Some((*i, v, r.to_string())),
            }
        });
        match decided {
            Some((i, Verdict::Lease, text)) => {
                keys.push(LeaseKey {
                    agent_id,
                    class: kc as u32,
                    object: lease_object(i as u32),
                });
                resource = format!("[[network]] {text}");
            }
            Some((_, Verdict::Deny, text)) => {
                first_err.get_or_insert(ScopeError::Denied {
                    class: class.clone(),
                    target: target.clone(),
                    kernel_class: kc.name(),
                    resource: format!("[[network]] {text}"),
                    agent: agent.to_owned(),
                });
            }
            _ => {
                first_err.get_or_insert(ScopeError::NoNetworkRule {
                    class: class.clone(),
                    target: target.clone(),
                    agent: agent.to_owned(),
                });
            }
        }
    }
    match first_err {
        Some(e) if keys.is_empty() => Err(e),
        _ => Ok(Resolved {
            keys,
            resource,
            object: target,
        }),
    }
}
