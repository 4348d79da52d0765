//! Network rules as the cgroup sock_addr programs see them: two longest-prefix-match tries
//! (IPv4, IPv6), their key and value layouts, and the matching both sides share.
//!
//! # Keys
//! A trie key is the kernel's `struct bpf_lpm_trie_key`: `{ prefix_len: u32, addr }`, with
//! `addr` in network byte order and `prefix_len` in bits. Both sides use aya's
//! `lpm_trie::Key<K>` (`#[repr(C, packed)]`) with `K` = [`Ip4`] (key of [`KEY4_BYTES`]) or
//! [`Ip6`] (key of [`KEY6_BYTES`]). IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are IPv4
//! destinations: the programs look them up in the IPv4 trie ([`v4_mapped`]), and the policy
//! compiler stores rules written in mapped form as IPv4 rules.
//!
//! # Values, and several rules on one prefix
//! An LPM trie returns only the *longest* matching prefix, so a value must answer for every
//! rule that covers the addresses of its prefix, not just for the rules written with that
//! exact prefix. Userspace therefore flattens the policy: the value stored at prefix P lists,
//! as [`PortRule`]s, the port ranges of every rule whose prefix contains P (P's own rules and
//! those of all shorter prefixes around it), most specific prefix first, then in policy order.
//! The longest match for an address is then the complete answer for it. A value holds at most
//! [`MAX_PORT_RULES`] port ranges; the policy validator rejects policies that need more for
//! one prefix. Ports are not part of the key because an LPM key can only match a prefix of
//! its bits: "10.0.0.0/8, port 5432" cannot be expressed as one prefix.
//!
//! The first [`PortRule`] in order that covers the port and decides a class being checked
//! (denies or leases it, for anyone) decides, and its `rule_id` is reported. Its verdict for
//! the acting agent is [`ProtectedRule::verdict`], exactly as for files: the agent's own
//! decisions sit in `GOV_AGENT_RULES` under `rule_id | RULE_NET_FLAG`, and a lease on the rule
//! is the `GOV_LEASES` entry for `(agent, class, (LEASE_OBJECT_NET, rule_id))`.

use crate::maps::{Class, InodeKey, ProtectedRule, LEASE_OBJECT_NET};

/// LPM trie of IPv4 prefixes: key `lpm_trie::Key<Ip4>`, value [`NetRules`].
pub const NET4: &str = "GOV_NET4";
/// LPM trie of IPv6 prefixes: key `lpm_trie::Key<Ip6>`, value [`NetRules`].
pub const NET6: &str = "GOV_NET6";
/// Read-only global holding [`NetOffsets`] for the running kernel.
pub const NET_OFFSETS_GLOBAL: &str = "GOV_NET_OFFSETS";

/// Capacity of [`NET4`] and of [`NET6`] (distinct prefixes).
pub const MAX_NET_PREFIXES: u32 = 16_384;
/// Port ranges one trie value holds (after flattening, see the module docs).
pub const MAX_PORT_RULES: usize = 32;

/// An IPv4 address, network byte order.
pub type Ip4 = [u8; 4];
/// An IPv6 address, network byte order.
pub type Ip6 = [u8; 16];
/// Size of a [`NET4`] key: `prefix_len: u32` + [`Ip4`], packed.
pub const KEY4_BYTES: usize = 4 + 4;
/// Size of a [`NET6`] key: `prefix_len: u32` + [`Ip6`], packed.
pub const KEY6_BYTES: usize = 4 + 16;

/// `AF_INET`, as stored in `Target::family`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`, as stored in `Target::family`.
pub const AF_INET6: u16 = 10;
/// `SOCK_STREAM`.
pub const SOCK_STREAM: u32 = 1;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: u32 = 2;

/// One port range of one policy rule, as stored in a trie value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRule {
    /// Index of the rule in the policy's `[[network]]` list.
    pub rule_id: u32,
    /// Classes denied to agents without their own decision, as [`Class::bit`]s.
    pub deny_mask: u32,
    /// Classes allowed only under a lease (disjoint from `deny_mask`).
    pub lease_mask: u32,
    /// Classes some agent's own entry decides for this rule (see
    /// [`ProtectedRule::agent_mask`]).
    pub agent_mask: u32,
    /// First port covered (host byte order).
    pub port_lo: u16,
    /// Last port covered, inclusive (host byte order).
    pub port_hi: u16,
}
const _: () = assert!(core::mem::size_of::<PortRule>() == 20);

impl PortRule {
    /// Does this range cover `port`?
    #[inline(always)]
    pub const fn covers(&self, port: u16) -> bool {
        self.port_lo <= port && port <= self.port_hi
    }

    /// Every class this rule decides, for anyone (as [`ProtectedRule::decided`]).
    #[inline(always)]
    pub const fn decided(&self) -> u32 {
        self.rule().decided()
    }

    /// The rule's decisions in the form files and binaries use, for
    /// [`ProtectedRule::verdict`].
    #[inline(always)]
    pub const fn rule(&self) -> ProtectedRule {
        ProtectedRule {
            rule_id: self.rule_id,
            deny_mask: self.deny_mask,
            lease_mask: self.lease_mask,
            agent_mask: self.agent_mask,
        }
    }
}

/// Bit added to a `[[network]]` rule id in `GOV_AGENT_RULES` keys, so that network rules,
/// protected paths and binaries (numbered independently) never share an agent's entry.
pub const RULE_NET_FLAG: u32 = 1 << 28;

/// The object of a lease on network rule `rule_id` (`LeaseKey::object`).
#[inline(always)]
pub const fn lease_object(rule_id: u32) -> InodeKey {
    InodeKey::new(LEASE_OBJECT_NET, rule_id as u64)
}

/// A trie value: every port range that applies to addresses in the key's prefix, in
/// decision order. Entries at `count` and beyond are zero and ignored.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetRules {
    /// Valid entries in `rules` (at most [`MAX_PORT_RULES`]).
    pub count: u32,
    pub _pad: u32,
    pub rules: [PortRule; MAX_PORT_RULES],
}
const _: () = assert!(core::mem::size_of::<NetRules>() == 8 + 20 * MAX_PORT_RULES);

impl NetRules {
    pub const EMPTY: NetRules = NetRules {
        count: 0,
        _pad: 0,
        rules: [PortRule {
            rule_id: 0,
            deny_mask: 0,
            lease_mask: 0,
            agent_mask: 0,
            port_lo: 0,
            port_hi: 0,
        }; MAX_PORT_RULES],
    };

    /// The first entry, in order, that covers `port` and decides a class among `classes`
    /// (a mask of [`Class::bit`]s) for anyone.
    #[inline(always)]
    pub fn first_match(&self, port: u16, classes: u32) -> Option<PortRule> {
        let count = self.count as usize;
        let mut i = 0;
        while i < MAX_PORT_RULES {
            if i >= count {
                break;
            }
            let r = self.rules[i];
            if r.decided() & classes != 0 && r.covers(port) {
                return Some(r);
            }
            i += 1;
        }
        None
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), if it is one.
#[inline(always)]
pub fn v4_mapped(ip: &Ip6) -> Option<Ip4> {
    let mut i = 0;
    while i < 10 {
        if ip[i] != 0 {
            return None;
        }
        i += 1;
    }
    if ip[10] != 0xff || ip[11] != 0xff {
        return None;
    }
    Some([ip[12], ip[13], ip[14], ip[15]])
}

/// Which operation a sock_addr program was called for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetOp {
    /// connect(2), and TCP fast open (`sendmsg(MSG_FASTOPEN)`), which the kernel runs through
    /// the connect path.
    Connect,
    /// bind(2).
    Bind,
    /// sendmsg/sendto with a destination address on a UDP socket.
    Send,
}

/// The classes an operation is checked against, as [`Class::bit`]s.
///
/// - A connect on a stream socket is a [`Class::Connect`]; if it is a TCP fast open (data
///   leaves with the SYN, before any connect(2)) it is also a [`Class::Send`].
/// - A connect on any other socket (UDP, ping) only sets the default destination of later
///   sends, so it is checked as both: otherwise `connect()` + `send()` would get around a
///   rule that denies `send`.
/// - `fast_open` is whether the kernel is in the middle of a fast open; callers that cannot
///   tell pass `true` (fail closed: a rule denying `send` also stops the connect).
#[inline(always)]
pub const fn checked_classes(op: NetOp, sock_type: u32, fast_open: bool) -> u32 {
    match op {
        NetOp::Connect => {
            if sock_type == SOCK_STREAM && !fast_open {
                Class::Connect.bit()
            } else {
                Class::Connect.bit() | Class::Send.bit()
            }
        }
        NetOp::Bind => Class::Bind.bit(),
        NetOp::Send => Class::Send.bit(),
    }
}

/// `Target::detail` of a network event: socket type in the high half, protocol in the low.
#[inline(always)]
pub const fn net_detail(sock_type: u32, protocol: u32) -> u64 {
    ((sock_type as u64) << 32) | protocol as u64
}

/// Byte offsets of the kernel struct fields the network programs read, resolved from BTF by
/// userspace and set as a read-only global before load (see `KernelOffsets`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetOffsets {
    /// `struct tcp_sock::fastopen_req`: non-null while a TCP fast open is in progress.
    pub tcp_sock_fastopen_req: u32,
    /// Non-zero once userspace filled the struct; while it is zero the programs treat every
    /// stream connect as a possible fast open (fail closed).
    pub valid: u32,
}
const _: () = assert!(core::mem::size_of::<NetOffsets>() == 8);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]`, `Copy`, integers only, explicit padding.
    unsafe impl aya::Pod for super::PortRule {}
    unsafe impl aya::Pod for super::NetRules {}
    unsafe impl aya::Pod for super::NetOffsets {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(entries: &[(u32, u32, u16, u16)]) -> NetRules {
        let mut v = NetRules::EMPTY;
        for (i, &(rule_id, deny_mask, port_lo, port_hi)) in entries.iter().enumerate() {
            v.rules[i] = PortRule {
                rule_id,
                deny_mask,
                port_lo,
                port_hi,
                ..PortRule::default()
            };
        }
        v.count = entries.len() as u32;
        v
    }

    #[test]
    fn first_match_is_in_order_and_respects_ports_and_classes() {
        let c = Class::Connect.bit();
        let s = Class::Send.bit();
        let v = rules(&[(7, c, 5432, 5432), (3, c | s, 6000, 6999), (1, s, 0, 65535)]);
        assert_eq!(v.first_match(5432, c).map(|r| r.rule_id), Some(7));
        assert_eq!(v.first_match(6379, c).map(|r| r.rule_id), Some(3));
        assert_eq!(v.first_match(6379, s).map(|r| r.rule_id), Some(3));
        assert_eq!(v.first_match(22, s).map(|r| r.rule_id), Some(1));
        assert_eq!(v.first_match(22, c), None);
        assert_eq!(v.first_match(7000, Class::Bind.bit()), None);
    }

    #[test]
    fn leased_and_agent_decided_classes_match_too() {
        let c = Class::Connect.bit();
        let s = Class::Send.bit();
        let mut v = rules(&[(4, 0, 80, 80), (5, 0, 0, 65535)]);
        v.rules[0].lease_mask = c;
        v.rules[1].agent_mask = s;
        let hit = v.first_match(80, c).expect("leased class matches");
        assert_eq!(hit.rule_id, 4);
        assert_eq!(hit.rule().verdict(None, c), crate::maps::Verdict::Lease);
        assert_eq!(v.first_match(80, s).map(|r| r.rule_id), Some(5));
        assert_eq!(v.first_match(81, c), None);
        assert_eq!(lease_object(4), InodeKey::new(LEASE_OBJECT_NET, 4));
    }

    #[test]
    fn entries_beyond_count_are_ignored() {
        let mut v = rules(&[(1, Class::Bind.bit(), 80, 80)]);
        v.rules[1] = PortRule {
            rule_id: 9,
            deny_mask: u32::MAX,
            port_lo: 0,
            port_hi: 65535,
            ..PortRule::default()
        };
        assert_eq!(v.first_match(443, u32::MAX), None);
        v.count = u32::MAX; // corrupt count: still bounded by the array
        assert_eq!(v.first_match(443, u32::MAX).map(|r| r.rule_id), Some(9));
    }

    #[test]
    fn mapped_addresses() {
        let mut ip = [0u8; 16];
        ip[10] = 0xff;
        ip[11] = 0xff;
        ip[12..].copy_from_slice(&[127, 0, 0, 2]);
        assert_eq!(v4_mapped(&ip), Some([127, 0, 0, 2]));
        ip[0] = 0x20;
        assert_eq!(v4_mapped(&ip), None);
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        assert_eq!(v4_mapped(&loopback), None);
    }

    #[test]
    fn classes_checked_per_operation() {
        let c = Class::Connect.bit();
        let s = Class::Send.bit();
        assert_eq!(checked_classes(NetOp::Connect, SOCK_STREAM, false), c);
        assert_eq!(checked_classes(NetOp::Connect, SOCK_STREAM, true), c | s);
        assert_eq!(checked_classes(NetOp::Connect, SOCK_DGRAM, false), c | s);
        assert_eq!(checked_classes(NetOp::Send, SOCK_DGRAM, false), s);
        assert_eq!(
            checked_classes(NetOp::Bind, SOCK_STREAM, false),
            Class::Bind.bit()
        );
    }
}
