//! `[[network]]` rules: validation (CIDR, ports, classes) and flattening into the two
//! longest-prefix-match tries the kernel consults (see `governor_common::net`).
//!
//! ```toml
//! [[network]]
//! cidr = "10.0.0.0/8"          # IPv4, IPv6 or IPv4-mapped IPv6; a bare address is /32 or /128
//! ports = [5432, "6379-6380"]  # optional; absent = every port
//! deny = ["send"]              # connect, bind, send, or "network" = all three
//! lease = ["connect"]          # allowed only under an unexpired lease on this rule
//!
//! [[network.agent]]            # one agent's own decisions on this rule
//! name = "deployer"
//! allow = ["connect"]          # `allow`, `lease`, `deny`, as for [[protect.agent]]
//! ```
//!
//! Decisions work as for `[[protect]]` (`super::decisions`): a `deny` no lease lifts, a
//! `lease` on (agent, class, this rule), `allow`, agents' own entries replacing the defaults
//! for the classes they name; a class the rule's lists do not name takes the class table's
//! decision (`[classes.X]`, else built-in: connect, bind and send are allowed).
//!
//! Semantics the kernel side relies on:
//! - IPv4-mapped IPv6 (`::ffff:a.b.c.d`) destinations are IPv4 destinations: a rule written in
//!   mapped form (`::ffff:10.0.0.0/104`) is stored as the IPv4 rule `10.0.0.0/8`, and mapped
//!   addresses are matched only by IPv4 rules (so `::/0` does not cover them; `0.0.0.0/0` does).
//! - Several rules may share or nest prefixes with different ports: each trie value carries the
//!   port ranges of every rule containing its prefix, most specific first.
//! - Binding the wildcard address (`0.0.0.0`, `::`) binds every local address, so it is denied
//!   when any `bind` rule covers the port. `::` on an IPv6 socket may also bind every IPv4
//!   address (dual stack), so IPv4 `bind` rules apply to it too.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use governor_common::{
    net::{Ip4, Ip6, NetRules, PortRule, MAX_PORT_RULES},
    Class, ProtectedRule,
};
use toml::Spanned;

use super::{decisions::RawLists, raw::RawNetwork, Decisions, Validator};

/// The class names a `[[network]]` rule may decide.
pub(super) const NET_CLASS_NAMES: &[(&str, &[Class])] = &[
    ("connect", &[Class::Connect]),
    ("bind", &[Class::Bind]),
    ("send", &[Class::Send]),
    ("network", &[Class::Connect, Class::Bind, Class::Send]),
];

/// Every class a network rule can decide.
pub const NET_CLASSES: &[Class] = &[Class::Connect, Class::Bind, Class::Send];

/// An address prefix, normalized: host bits zero, IPv4-mapped prefixes stored as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

impl Prefix {
    pub fn len(&self) -> u8 {
        match *self {
            Prefix::V4(_, l) | Prefix::V6(_, l) => l,
        }
    }

    /// The address as a left-aligned 128-bit number, and the family's width in bits.
    fn bits(&self) -> (u128, u8) {
        match *self {
            Prefix::V4(a, _) => ((u32::from(a) as u128) << 96, 32),
            Prefix::V6(a, _) => (u128::from(a), 128),
        }
    }

    /// Does `self` contain every address of `other` (same family only)?
    pub fn contains(&self, other: &Prefix) -> bool {
        let ((a, wa), (b, wb)) = (self.bits(), other.bits());
        wa == wb && self.len() <= other.len() && (a ^ b) & mask(self.len()) == 0
    }

    fn is_wildcard_host(&self) -> bool {
        *self == WILDCARD4 || *self == WILDCARD6
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(a, l) => write!(f, "{a}/{l}"),
            Prefix::V6(a, l) => write!(f, "{a}/{l}"),
        }
    }
}

/// `0.0.0.0/32` and `::/128`: the wildcard addresses of bind(2).
const WILDCARD4: Prefix = Prefix::V4(Ipv4Addr::UNSPECIFIED, 32);
const WILDCARD6: Prefix = Prefix::V6(Ipv6Addr::UNSPECIFIED, 128);

/// The top `len` bits of a left-aligned 128-bit address.
fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ALL: PortRange = PortRange { lo: 0, hi: 65535 };
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// A validated `[[network]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    pub cidr: Prefix,
    /// Sorted, overlapping and adjacent ranges merged; empty means every port.
    pub ports: Vec<PortRange>,
    pub decisions: Decisions,
}

impl NetRule {
    /// This rule's decisions as the kernel stores them (in each port range of the tries),
    /// under `rule_id`.
    pub fn kernel_rule(&self, rule_id: u32) -> ProtectedRule {
        let defaults = self.decisions.masks();
        let agent_mask = self.decisions.agents.iter().fold(0, |m, own| {
            let masks = own.masks(defaults);
            m | own.named() | masks.deny_mask | masks.lease_mask
        });
        ProtectedRule {
            rule_id,
            deny_mask: defaults.deny_mask,
            lease_mask: defaults.lease_mask,
            agent_mask,
        }
    }

    /// The ranges the kernel stores for this rule.
    fn ranges(&self) -> Vec<PortRange> {
        if self.ports.is_empty() {
            vec![PortRange::ALL]
        } else {
            self.ports.clone()
        }
    }
}

impl fmt::Display for NetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cidr)?;
        if self.ports.is_empty() {
            write!(f, " (all ports)")
        } else {
            let list: Vec<String> = self.ports.iter().map(ToString::to_string).collect();
            write!(f, " port {}", list.join(","))
        }
    }
}

/// Parses `10.0.0.0/8`, `2001:db8::/32`, `::ffff:10.0.0.0/104` or a bare address.
pub fn parse_cidr(text: &str) -> Result<Prefix, String> {
    const EXAMPLES: &str = "write an address or CIDR prefix such as \"10.0.0.0/8\", \
                            \"192.168.1.7\", \"2001:db8::/32\" or \"::1\"";
    let (addr_text, len_text) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: std::net::IpAddr = addr_text
        .parse()
        .map_err(|_| format!("`{addr_text}` is not an IPv4 or IPv6 address; {EXAMPLES}"))?;
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
    let len = match len_text {
        None => max,
        Some(l) => {
            let ok = !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit());
            let n: u16 = if ok {
                l.parse().unwrap_or(u16::MAX)
            } else {
                u16::MAX
            };
            if !ok {
                return Err(format!("prefix length `/{l}` is not a number; {EXAMPLES}"));
            }
            if n > u16::from(max) {
                return Err(format!(
                    "prefix length /{n} is too long for an {family} address (at most /{max})"
                ));
            }
            n as u8
        }
    };
    let prefix = match addr {
        std::net::IpAddr::V4(a) => Prefix::V4(a, len),
        std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) if len >= 96 => Prefix::V4(v4, len - 96),
            Some(_) => {
                return Err(format!(
                    "`{text}` mixes IPv4-mapped and other IPv6 addresses: an IPv4-mapped \
                     prefix (::ffff:a.b.c.d) must be /96 or longer. Mapped destinations are \
                     IPv4 destinations and are matched by IPv4 rules; write the IPv4 part as \
                     its own rule"
                ))
            }
            None => Prefix::V6(a, len),
        },
    };
    let (bits, _) = prefix.bits();
    if bits & !mask(prefix.len()) != 0 {
        let mapped = addr.is_ipv6();
        let network = match prefix {
            Prefix::V4(a, l) => {
                let n = Ipv4Addr::from(u32::from(a) & (mask(l) >> 96) as u32);
                if mapped {
                    format!("::ffff:{n}/{}", u16::from(l) + 96)
                } else {
                    format!("{n}/{l}")
                }
            }
            Prefix::V6(a, l) => format!("{}/{l}", Ipv6Addr::from(u128::from(a) & mask(l))),
        };
        return Err(format!(
            "`{text}` has bits set after its /{} prefix; did you mean \"{network}\"?",
            len_text.unwrap_or_default()
        ));
    }
    Ok(prefix)
}

/// Parses one `ports` entry: a number, or a string `"N"` or `"N-M"`.
pub fn parse_port(value: &toml::Value) -> Result<PortRange, String> {
    const HOW: &str = "use a number like 5432 or a string range like \"6379-6380\"";
    let port = |n: i64| -> Result<u16, String> {
        u16::try_from(n).map_err(|_| format!("port {n} is out of range 0-65535"))
    };
    match value {
        toml::Value::Integer(n) => {
            let p = port(*n)?;
            Ok(PortRange { lo: p, hi: p })
        }
        toml::Value::String(s) => {
            let bad = || format!("`{s}` is not a port or port range; {HOW}");
            let num = |t: &str| -> Result<u16, String> {
                let t = t.trim();
                if t.is_empty() || t.len() > 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                port(t.parse().map_err(|_| bad())?)
            };
            let (lo, hi) = match s.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let p = num(s)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(format!(
                    "range `{s}` is empty: its start is above its end; write \"{hi}-{lo}\""
                ));
            }
            Ok(PortRange { lo, hi })
        }
        other => Err(format!("{} is not a port; {HOW}", other.type_str())),
    }
}

/// Sorts ranges and merges overlapping or adjacent ones.
fn merge(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if u32::from(r.lo) <= u32::from(last.hi) + 1 => {
                last.hi = last.hi.max(r.hi);
            }
            _ => out.push(r),
        }
    }
    out
}

impl Validator<'_> {
    /// Validates every `[[network]]` entry, then checks that the kernel can hold them.
    pub(super) fn network_rules(&mut self, raw: Vec<Spanned<RawNetwork>>) -> Vec<NetRule> {
        let before = self.problems.len();
        let mut rules: Vec<NetRule> = Vec::new();
        let mut cidr_spans: Vec<Spanned<String>> = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            let r = r.into_inner();
            let cidr_at = r.cidr.clone();
            let Some(rule) = self.network(i, r) else {
                continue;
            };
            if let Some(j) = rules
                .iter()
                .position(|x| x.cidr == rule.cidr && x.ports == rule.ports)
            {
                self.problem(
                    &cidr_at,
                    &format!("network[{i}].cidr"),
                    format!(
                        "{} has the same prefix and ports as network[{j}]; merge their decisions",
                        rule.cidr
                    ),
                );
            }
            rules.push(rule);
            cidr_spans.push(cidr_at);
        }
        if self.problems.len() > before {
            return rules;
        }
        if let Err(overflows) = flatten(&rules) {
            for o in overflows {
                let at = o.rules.last().copied().unwrap_or_default();
                let names: Vec<String> = o.rules.iter().map(|i| format!("network[{i}]")).collect();
                let what = if o.key.is_wildcard_host() {
                    format!("a bind to the wildcard address {}", o.key)
                } else {
                    format!("addresses in {}", o.key)
                };
                self.problem(
                    &cidr_spans[at],
                    &format!("network[{at}].ports"),
                    format!(
                        "{what} are matched against {} port ranges (from {}); the kernel holds \
                         at most {MAX_PORT_RULES} per prefix: merge rules or port ranges",
                        o.count,
                        names.join(", ")
                    ),
                );
            }
        }
        rules
    }

    fn network(&mut self, i: usize, raw: RawNetwork) -> Option<NetRule> {
        let cidr = match parse_cidr(raw.cidr.get_ref()) {
            Ok(p) => Some(p),
            Err(why) => {
                self.problem(&raw.cidr, &format!("network[{i}].cidr"), why);
                None
            }
        };
        let mut ports = Vec::new();
        let mut ports_ok = true;
        if let Some(list) = &raw.ports {
            let field = format!("network[{i}].ports");
            if list.get_ref().is_empty() {
                self.problem(
                    list,
                    &field,
                    "is empty; leave `ports` out to match every port",
                );
                ports_ok = false;
            }
            for p in list.get_ref() {
                match parse_port(p.get_ref()) {
                    Ok(r) => ports.push(r),
                    Err(why) => {
                        self.problem(p, &field, why);
                        ports_ok = false;
                    }
                }
            }
            ports = merge(ports);
            if ports.len() > MAX_PORT_RULES {
                self.problem(
                    list,
                    &field,
                    format!(
                        "lists {} separate port ranges; a rule holds at most {MAX_PORT_RULES}",
                        ports.len()
                    ),
                );
                ports_ok = false;
            }
        }
        let decisions = self.decisions(
            &format!("network[{i}]"),
            &raw.cidr,
            RawLists {
                allow: raw.allow,
                deny: raw.deny,
                lease: raw.lease,
            },
            raw.agent,
            &net_class,
            NET_CLASSES,
        );
        if !ports_ok {
            return None;
        }
        Some(NetRule {
            cidr: cidr?,
            ports,
            decisions,
        })
    }
}

/// The classes a network class name stands for, or why it is not one.
fn net_class(n: &str) -> Result<&'static [Class], String> {
    if let Some((_, classes)) = NET_CLASS_NAMES.iter().find(|(k, _)| *k == n) {
        return Ok(classes);
    }
    let known: Vec<&str> = NET_CLASS_NAMES.iter().map(|(k, _)| *k).collect();
    Err(if super::CLASS_NAMES.iter().any(|(k, _)| *k == n) {
        format!(
            "`{n}` is a file class and belongs in a [[protect]] entry; network rules decide: {}",
            known.join(", ")
        )
    } else {
        format!(
            "unknown class `{n}`; network rules decide: {} (all three)",
            known.join(", ")
        )
    })
}

/// One LPM trie entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrieEntry<A> {
    pub prefix_len: u32,
    pub addr: A,
    pub value: NetRules,
}

/// The two tries' contents for a policy.
#[derive(Debug, Clone, Default)]
pub struct CompiledNet {
    pub v4: Vec<TrieEntry<Ip4>>,
    pub v6: Vec<TrieEntry<Ip6>>,
}

/// A prefix whose flattened value would not fit in [`NetRules`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overflow {
    pub key: Prefix,
    pub count: usize,
    /// Indexes of the rules contributing, in policy order.
    pub rules: Vec<usize>,
}

/// Flattens `rules` into trie entries (module docs of `governor_common::net`): the value at
/// each distinct prefix lists the port ranges of every rule containing it, most specific
/// prefix first, then in policy order; `rule_id` is the rule's index. If any rule decides
/// bind, the wildcard hosts `0.0.0.0/32` and `::/128` also carry every bind rule of their
/// family (`::` also the IPv4 ones), restricted to bind.
pub fn flatten(rules: &[NetRule]) -> Result<CompiledNet, Vec<Overflow>> {
    let bind = Class::Bind.bit();
    let mut keys: Vec<Prefix> = Vec::new();
    for r in rules {
        if !keys.contains(&r.cidr) {
            keys.push(r.cidr);
        }
    }
    let decided: Vec<ProtectedRule> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| r.kernel_rule(i as u32))
        .collect();
    if decided.iter().any(|r| r.decides(bind)) {
        for w in [WILDCARD4, WILDCARD6] {
            if !keys.contains(&w) {
                keys.push(w);
            }
        }
    }
    let mut out = CompiledNet::default();
    let mut overflows = Vec::new();
    for key in keys {
        let mut containing: Vec<usize> = (0..rules.len())
            .filter(|&i| rules[i].cidr.contains(&key))
            .collect();
        containing.sort_by_key(|&i| (std::cmp::Reverse(rules[i].cidr.len()), i));
        let mut entries: Vec<PortRule> = Vec::new();
        let mut contributors = containing.clone();
        for &i in &containing {
            for p in rules[i].ranges() {
                entries.push(port_rule(decided[i], p));
            }
        }
        if key.is_wildcard_host() {
            for (i, r) in rules.iter().enumerate() {
                let family_ok = matches!(
                    (key, r.cidr),
                    (Prefix::V4(..), Prefix::V4(..)) | (Prefix::V6(..), _)
                );
                if family_ok && decided[i].decides(bind) && !containing.contains(&i) {
                    let only_bind = ProtectedRule {
                        rule_id: decided[i].rule_id,
                        deny_mask: decided[i].deny_mask & bind,
                        lease_mask: decided[i].lease_mask & bind,
                        agent_mask: decided[i].agent_mask & bind,
                    };
                    for p in r.ranges() {
                        entries.push(port_rule(only_bind, p));
                    }
                    contributors.push(i);
                }
            }
        }
        if entries.is_empty() {
            continue;
        }
        if entries.len() > MAX_PORT_RULES {
            contributors.sort_unstable();
            overflows.push(Overflow {
                key,
                count: entries.len(),
                rules: contributors,
            });
            continue;
        }
        let mut value = NetRules::EMPTY;
        value.count = entries.len() as u32;
        value.rules[..entries.len()].copy_from_slice(&entries);
        match key {
            Prefix::V4(a, l) => out.v4.push(TrieEntry {
                prefix_len: u32::from(l),
                addr: a.octets(),
                value,
            }),
            Prefix::V6(a, l) => out.v6.push(TrieEntry {
                prefix_len: u32::from(l),
                addr: a.octets(),
                value,
            }),
        }
    }
    if overflows.is_empty() {
        Ok(out)
    } else {
        Err(overflows)
    }
}

fn port_rule(rule: ProtectedRule, p: PortRange) -> PortRule {
    PortRule {
        rule_id: rule.rule_id,
        deny_mask: rule.deny_mask,
        lease_mask: rule.lease_mask,
        agent_mask: rule.agent_mask,
        port_lo: p.lo,
        port_hi: p.hi,
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
