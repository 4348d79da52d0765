//! One recorded operation re-decided under one compiled policy: the kernel's rule on the
//! kernel's map entries, found the way the kernel finds them (the nearest protected inode that
//! decides the class, from the target up; the longest network prefix, then its first port
//! range that decides the class; a listed binary by inode).

use std::{collections::HashMap, net::SocketAddr, path::Path};

use governor_common::{
    decision::Verdict,
    maps::RULE_BINARY_FLAG,
    net::{v4_mapped, NetRules, RULE_NET_FLAG},
    Class, InodeKey, ProtectedRule,
};
use serde::Serialize;

use crate::{
    host::inode::Keys,
    lineage::{decision::fixed_rule, query::events::Event},
    policy::{
        compile_rules, net::TrieEntry, CompileError, Compiled, CompiledProtect, Policy,
        PROTECT_CLASSES,
    },
};

/// What a policy decides for one recorded operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Refused; no lease lifts it.
    Deny,
    /// Allowed only under a lease.
    Lease,
    Allow,
    /// The policy has no such agent: its processes are not governed.
    NotAgent,
    /// Decided by the kernel alone (built-in classes, governor's own directories, a target
    /// the kernel could not resolve): no policy changes it.
    Fixed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Deny => "deny",
            Outcome::Lease => "lease",
            Outcome::Allow => "allow",
            Outcome::NotAgent => "not-an-agent",
            Outcome::Fixed => "fixed",
        }
    }

    fn of(v: Verdict) -> Outcome {
        match v {
            Verdict::Deny => Outcome::Deny,
            Verdict::Lease => Outcome::Lease,
            Verdict::Allow | Verdict::Silent => Outcome::Allow,
        }
    }
}

/// A policy compiled against this host, ready to decide recorded operations.
pub struct Decider {
    compiled: Compiled,
    /// The protected map (`GOV_PROTECTED`) as the kernel holds it.
    protected: HashMap<InodeKey, ProtectedRule>,
    /// Inodes registered for their place in a protected tree (`GOV_LINKED`).
    linked: HashMap<InodeKey, ProtectedRule>,
    /// Listed binaries (`GOV_BINARIES`).
    binaries: HashMap<InodeKey, ProtectedRule>,
    keys: Keys,
    /// Each directory's key, looked up once per simulation (`None`: it is gone).
    dirs: HashMap<std::path::PathBuf, Option<InodeKey>>,
}

impl Decider {
    pub fn new(policy: &Policy) -> Result<Decider, CompileError> {
        let compiled = compile_rules(policy)?;
        let by_key = |list: &[CompiledProtect]| list.iter().map(|p| (p.key, p.rule)).collect();
        Ok(Decider {
            protected: by_key(&compiled.protected),
            binaries: by_key(&compiled.binaries),
            linked: compiled
                .linked
                .linked
                .iter()
                .map(|l| (l.key, l.rule))
                .collect(),
            compiled,
            keys: Keys::default(),
            dirs: HashMap::new(),
        })
    }

    /// What this policy decides for the recorded operation `ev`.
    pub fn decide(&mut self, ev: &Event) -> Outcome {
        let Some(class) = Class::ALL.into_iter().find(|c| c.name() == ev.class) else {
            return Outcome::Fixed;
        };
        if ev.rule.as_deref().is_some_and(fixed_rule) {
            return Outcome::Fixed;
        }
        let Some(agent_id) = ev.agent.as_deref().and_then(|name| {
            self.compiled
                .agents
                .iter()
                .position(|a| a.name == name)
                .map(|i| i as u32)
        }) else {
            return Outcome::NotAgent;
        };
        let bit = class.bit();
        let found = if PROTECT_CLASSES.contains(&class) {
            self.file_rule(ev, bit).map(|r| (r, r.rule_id))
        } else if class == Class::Exec {
            event_key(ev)
                .and_then(|k| self.binaries.get(&k).copied())
                .map(|r| (r, r.rule_id | RULE_BINARY_FLAG))
        } else if crate::policy::net::NET_CLASSES.contains(&class) {
            self.net_rule(ev, bit)
                .map(|r| (r, r.rule_id | RULE_NET_FLAG))
        } else {
            return Outcome::Fixed;
        };
        match found {
            Some((rule, own)) => {
                Outcome::of(rule.verdict(self.compiled.agent_masks(agent_id, own), bit))
            }
            None => Outcome::Allow,
        }
    }

    /// The rule of the nearest protected inode that decides `bit`, from the recorded target
    /// up through its directories (looked up by name now); else, as in the kernel, the
    /// target's own registration in a protected tree elsewhere.
    fn file_rule(&mut self, ev: &Event, bit: u32) -> Option<ProtectedRule> {
        let target = event_key(ev).or_else(|| {
            let path = Path::new(ev.path.as_deref()?);
            let meta = std::fs::symlink_metadata(path).ok()?;
            Some(self.keys.key(path, &meta))
        });
        let mut chain: Vec<InodeKey> = target.into_iter().collect();
        if let Some(path) = ev.path.as_deref().filter(|p| p.starts_with('/')) {
            for dir in Path::new(path).ancestors().skip(1) {
                let keys = &mut self.keys;
                let key = *self.dirs.entry(dir.to_owned()).or_insert_with(|| {
                    let meta = std::fs::symlink_metadata(dir).ok()?;
                    Some(keys.key(dir, &meta))
                });
                chain.extend(key);
            }
        }
        chain
            .iter()
            .find_map(|k| self.protected.get(k).filter(|r| r.decides(bit)).copied())
            .or_else(|| {
                target
                    .and_then(|k| self.linked.get(&k))
                    .filter(|r| r.decides(bit))
                    .copied()
            })
    }

    /// The network rule that decides `bit` for the recorded address and port: the longest
    /// prefix holding the address, then its first port range that decides the class.
    fn net_rule(&self, ev: &Event, bit: u32) -> Option<ProtectedRule> {
        let addr: SocketAddr = ev.target.parse().ok()?;
        let port = addr.port();
        let rules = match addr.ip() {
            std::net::IpAddr::V4(ip) => longest(&self.compiled.network.v4, ip.octets())?,
            std::net::IpAddr::V6(ip) => match v4_mapped(&ip.octets()) {
                Some(v4) => longest(&self.compiled.network.v4, v4)?,
                None => longest(&self.compiled.network.v6, ip.octets())?,
            },
        };
        rules.first_match(port, bit).map(|r| r.rule())
    }
}

/// The value of the longest prefix in `entries` that holds `addr`.
fn longest<const N: usize>(entries: &[TrieEntry<[u8; N]>], addr: [u8; N]) -> Option<&NetRules> {
    entries
        .iter()
        .filter(|e| within(&e.addr, e.prefix_len, &addr))
        .max_by_key(|e| e.prefix_len)
        .map(|e| &e.value)
}

/// Whether `addr` lies in `prefix/len`.
fn within(prefix: &[u8], len: u32, addr: &[u8]) -> bool {
    let (whole, rest) = ((len / 8) as usize, len % 8);
    if prefix[..whole] != addr[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        prefix[whole] & mask == addr[whole] & mask
    }
}

/// The inode the kernel recorded for the operation, as the kernel keys it.
fn event_key(ev: &Event) -> Option<InodeKey> {
    Some(InodeKey::new(ev.dev? as u32, ev.inode? as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_lies_in_a_prefix_by_its_leading_bits() {
        assert!(within(&[10, 0, 0, 0], 8, &[10, 1, 2, 3]));
        assert!(!within(&[10, 0, 0, 0], 8, &[11, 1, 2, 3]));
        assert!(within(&[10, 128, 0, 0], 9, &[10, 200, 0, 1]));
        assert!(!within(&[10, 128, 0, 0], 9, &[10, 100, 0, 1]));
        assert!(within(&[0, 0, 0, 0], 0, &[1, 2, 3, 4]));
        assert!(within(&[1, 2, 3, 4], 32, &[1, 2, 3, 4]));
    }
}
