//! `[[network]]` validation (the good cases and every error, with line and field), and the
//! flattening into trie entries, checked against a model of the kernel's lookup.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use governor_common::{
    net::{checked_classes, v4_mapped, NetOp, SOCK_DGRAM, SOCK_STREAM},
    Class,
};

use super::*;
use crate::policy::{Located, Policy, PolicyError};

const HEADER: &str = r#"[policy]
name = "net"
owner = "net@example.com"

[[agents]]
name = "a"
cgroup = "governor/a"
"#;

/// The policy header (7 lines) followed by `rules`; rule text starts on line 8.
fn policy(rules: &str) -> String {
    format!("{HEADER}{rules}")
}

fn parse(rules: &str) -> Result<Policy, PolicyError> {
    Policy::parse(Path::new("n.toml"), &policy(rules))
}

fn rules(text: &str) -> Vec<NetRule> {
    parse(text).expect("valid").network
}

fn problems(rules: &str) -> Vec<Located> {
    match parse(rules) {
        Err(PolicyError::Invalid(p)) => p,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// The single problem of `rule` (one `[[network]]` entry): (line, field, why).
fn one_problem(rule: &str) -> (usize, String, String) {
    let p = problems(rule);
    assert_eq!(p.len(), 1, "{p:#?}");
    (p[0].line, p[0].field.clone(), p[0].why.clone())
}

fn rule(cidr: &str, ports: &str, deny: &str) -> String {
    format!("[[network]]\ncidr = \"{cidr}\"\n{ports}\ndeny = {deny}\n")
}

#[test]
fn good_rules_validate_and_normalize() {
    let r = rules(
        r#"
[[network]]
cidr = "10.0.0.0/8"
ports = [5432, "6379-6380", "6381", 22]
deny = ["connect", "send"]

[[network]]
cidr = "192.168.1.7"
deny = ["network"]

[[network]]
cidr = "2001:db8::/32"
deny = ["bind"]

[[network]]
cidr = "::ffff:10.1.0.0/112"
deny = ["connect"]

[[network]]
cidr = "::ffff:127.0.0.2"
deny = ["connect"]

[[network]]
cidr = "::1"
deny = ["connect", "connect"]
"#,
    );
    assert_eq!(r[0].cidr, Prefix::V4(Ipv4Addr::new(10, 0, 0, 0), 8));
    assert_eq!(
        r[0].ports,
        vec![
            PortRange { lo: 22, hi: 22 },
            PortRange { lo: 5432, hi: 5432 },
            PortRange { lo: 6379, hi: 6381 },
        ]
    );
    assert_eq!(r[0].decisions.deny, vec![Class::Connect, Class::Send]);
    assert_eq!(r[0].to_string(), "10.0.0.0/8 port 22,5432,6379-6381");
    assert_eq!(r[1].cidr, Prefix::V4(Ipv4Addr::new(192, 168, 1, 7), 32));
    assert!(r[1].ports.is_empty());
    assert_eq!(
        r[1].decisions.deny,
        vec![Class::Connect, Class::Bind, Class::Send]
    );
    assert_eq!(r[1].to_string(), "192.168.1.7/32 (all ports)");
    assert_eq!(r[2].cidr, Prefix::V6("2001:db8::".parse().expect("v6"), 32));
    // IPv4-mapped prefixes are IPv4 rules.
    assert_eq!(r[3].cidr, Prefix::V4(Ipv4Addr::new(10, 1, 0, 0), 16));
    assert_eq!(r[4].cidr, Prefix::V4(Ipv4Addr::new(127, 0, 0, 2), 32));
    assert_eq!(r[5].cidr, Prefix::V6(Ipv6Addr::LOCALHOST, 128));
    assert_eq!(r[5].decisions.deny, vec![Class::Connect]);
    let p = parse(&rule("10.0.0.0/8", "", "[\"send\"]")).expect("valid");
    assert_eq!(p.classes(), vec![Class::Send]);
}

#[test]
fn cidr_errors() {
    let cases: &[(&str, &str)] = &[
        ("10.0.0.300", "is not an IPv4 or IPv6 address"),
        ("example.com", "is not an IPv4 or IPv6 address"),
        ("", "is not an IPv4 or IPv6 address"),
        ("10.0.0.0/", "prefix length `/` is not a number"),
        ("10.0.0.0/x", "prefix length `/x` is not a number"),
        ("10.0.0.0/-1", "is not a number"),
        (
            "10.0.0.0/33",
            "/33 is too long for an IPv4 address (at most /32)",
        ),
        (
            "::/129",
            "/129 is too long for an IPv6 address (at most /128)",
        ),
        ("10.0.0.1/8", "did you mean \"10.0.0.0/8\"?"),
        ("2001:db8::1/32", "did you mean \"2001:db8::/32\"?"),
        (
            "::ffff:10.0.0.1/104",
            "did you mean \"::ffff:10.0.0.0/104\"?",
        ),
        ("::ffff:0.0.0.0/80", "must be /96 or longer"),
    ];
    for (cidr, want) in cases {
        let (line, field, why) = one_problem(&rule(cidr, "", "[\"connect\"]"));
        assert_eq!((line, field.as_str()), (9, "network[0].cidr"), "{cidr}");
        assert!(why.contains(want), "{cidr}: {why}");
    }
}

#[test]
fn port_errors() {
    let cases: &[(&str, &str)] = &[
        ("ports = []", "is empty; leave `ports` out"),
        ("ports = [70000]", "port 70000 is out of range 0-65535"),
        ("ports = [-1]", "port -1 is out of range"),
        ("ports = [\"80-70000\"]", "port 70000 is out of range"),
        ("ports = [\"http\"]", "`http` is not a port or port range"),
        ("ports = [\"1-2-3\"]", "`1-2-3` is not a port or port range"),
        ("ports = [\"\"]", "`` is not a port or port range"),
        ("ports = [\"-5\"]", "`-5` is not a port or port range"),
        ("ports = [\"90-80\"]", "range `90-80` is empty"),
        ("ports = [true]", "boolean is not a port"),
        ("ports = [1.5]", "float is not a port"),
    ];
    for (ports, want) in cases {
        let (line, field, why) = one_problem(&rule("10.0.0.0/8", ports, "[\"connect\"]"));
        assert_eq!((line, field.as_str()), (10, "network[0].ports"), "{ports}");
        assert!(why.contains(want), "{ports}: {why}");
    }
}

#[test]
fn too_many_port_ranges_in_one_rule() {
    let list: Vec<String> = (0..33).map(|i| (1000 + 2 * i).to_string()).collect();
    let (line, field, why) = one_problem(&rule(
        "10.0.0.0/8",
        &format!("ports = [{}]", list.join(", ")),
        "[\"connect\"]",
    ));
    assert_eq!((line, field.as_str()), (10, "network[0].ports"));
    assert!(why.contains("33 separate port ranges"), "{why}");
    // Adjacent ports merge into one range, so 40 consecutive ports are fine.
    let list: Vec<String> = (0..40).map(|i| (1000 + i).to_string()).collect();
    let r = rules(&rule(
        "10.0.0.0/8",
        &format!("ports = [{}]", list.join(", ")),
        "[\"connect\"]",
    ));
    assert_eq!(r[0].ports, vec![PortRange { lo: 1000, hi: 1039 }]);
}

#[test]
fn deny_errors() {
    let cases: &[(&str, &str)] = &[
        ("[]", "is empty; list classes or leave the field out"),
        (
            "[\"nuke\"]",
            "unknown class `nuke`; network rules decide: connect, bind, send, network",
        ),
        (
            "[\"delete\"]",
            "`delete` is a file class and belongs in a [[protect]] entry",
        ),
        ("[\"connect\", \"unlink\"]", "`unlink` is a file class"),
    ];
    for (deny, want) in cases {
        let (line, field, why) = one_problem(&rule("10.0.0.0/8", "", deny));
        assert_eq!((line, field.as_str()), (11, "network[0].deny"), "{deny}");
        assert!(why.contains(want), "{deny}: {why}");
    }
}

#[test]
fn network_class_in_protect_is_pointed_to_network() {
    let text = "[[protect]]\npath = \"/srv\"\ndeny = [\"connect\"]\n";
    let (line, field, why) = one_problem(text);
    assert_eq!((line, field.as_str()), (10, "protect[0].deny"));
    assert!(
        why.contains("network class and belongs in a [[network]] entry"),
        "{why}"
    );
}

#[test]
fn duplicate_rule() {
    let text = format!(
        "{}{}",
        rule("10.0.0.0/8", "ports = [22]", "[\"connect\"]"),
        rule("10.0.0.0/8", "ports = [\"22\"]", "[\"bind\"]")
    );
    let (line, field, why) = one_problem(&text);
    assert_eq!((line, field.as_str()), (13, "network[1].cidr"));
    assert!(why.contains("same prefix and ports as network[0]"), "{why}");
    // Same prefix, different ports: that is the point of port lists, no error.
    let text = format!(
        "{}{}",
        rule("10.0.0.0/8", "ports = [22]", "[\"connect\"]"),
        rule("10.0.0.0/8", "ports = [23]", "[\"connect\"]")
    );
    assert_eq!(rules(&text).len(), 2);
}

#[test]
fn too_many_port_ranges_for_one_prefix() {
    // Two nested rules with 20 ranges each: the /16 carries all 40.
    let ports = |base: u32| {
        let l: Vec<String> = (0..20).map(|i| (base + 2 * i).to_string()).collect();
        format!("ports = [{}]", l.join(", "))
    };
    let text = format!(
        "{}{}",
        rule("10.0.0.0/8", &ports(1000), "[\"connect\"]"),
        rule("10.1.0.0/16", &ports(2000), "[\"connect\"]")
    );
    let (line, field, why) = one_problem(&text);
    assert_eq!((line, field.as_str()), (13, "network[1].ports"));
    assert!(
        why.contains("addresses in 10.1.0.0/16 are matched against 40 port ranges"),
        "{why}"
    );
    assert!(why.contains("network[0], network[1]"), "{why}");
    // A bind to 0.0.0.0 is checked against every bind rule.
    let text = format!(
        "{}{}",
        rule("10.0.0.0/8", &ports(1000), "[\"bind\"]"),
        rule("192.168.0.0/16", &ports(2000), "[\"bind\"]")
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|p| p.why.contains("wildcard address 0.0.0.0/32")),
        "{p:#?}"
    );
}

#[test]
fn missing_cidr_and_unknown_field_are_errors() {
    let err = parse("[[network]]\ndeny = [\"connect\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cidr"), "{err}");
    let err = parse("[[network]]\ncidr = \"::1\"\nport = [1]\ndeny = [\"connect\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("port"), "{err}");
    assert!(err.starts_with("n.toml: 10:"), "{err}");
}

/// The kernel's view: longest-prefix match in the right trie, then the first port rule.
fn kernel_decides(c: &CompiledNet, addr: IpAddr, port: u16, classes: u32) -> Option<(u32, u32)> {
    let v4 = match addr {
        IpAddr::V4(a) => Some(a.octets()),
        IpAddr::V6(a) => v4_mapped(&a.octets()),
    };
    let value = match (v4, addr) {
        (Some(a), _) => longest(&c.v4, &a),
        (None, IpAddr::V6(a)) => longest(&c.v6, &a.octets()),
        (None, IpAddr::V4(_)) => unreachable!(),
    }?;
    value
        .first_match(port, classes)
        .map(|r| (r.rule_id, r.deny_mask))
}

fn longest<'a, const N: usize>(
    entries: &'a [TrieEntry<[u8; N]>],
    addr: &[u8; N],
) -> Option<&'a governor_common::net::NetRules> {
    let bits = |a: &[u8; N]| a.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let width = 8 * N as u32;
    entries
        .iter()
        .filter(|e| {
            let m = if e.prefix_len == 0 {
                0
            } else {
                (u128::MAX >> (128 - width)) & !((1u128 << (width - e.prefix_len)) - 1)
            };
            bits(&e.addr) & m == bits(addr) & m
        })
        .max_by_key(|e| e.prefix_len)
        .map(|e| &e.value)
}

#[test]
fn flattened_tries_decide_like_the_policy_says() {
    let r = rules(
        r#"
[[network]]
cidr = "10.0.0.0/8"
ports = [5432]
deny = ["connect"]

[[network]]
cidr = "10.1.0.0/16"
ports = [22]
deny = ["connect"]

[[network]]
cidr = "10.1.2.3"
deny = ["send"]

[[network]]
cidr = "127.0.0.4"
ports = [8080]
deny = ["bind"]

[[network]]
cidr = "::1"
ports = ["1000-2000"]
deny = ["connect", "bind"]

[[network]]
cidr = "::/0"
ports = [53]
deny = ["send"]
"#,
    );
    let c = flatten(&r).expect("fits");
    let conn = Class::Connect.bit();
    let send = Class::Send.bit();
    let bind = Class::Bind.bit();
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    // The /16 does not hide the /8's port.
    assert_eq!(
        kernel_decides(&c, ip("10.1.9.9"), 5432, conn),
        Some((0, conn))
    );
    assert_eq!(
        kernel_decides(&c, ip("10.1.9.9"), 22, conn),
        Some((1, conn))
    );
    assert_eq!(kernel_decides(&c, ip("10.2.0.1"), 22, conn), None);
    // The host rule carries both enclosing rules, the most specific first.
    assert_eq!(
        kernel_decides(&c, ip("10.1.2.3"), 22, conn),
        Some((1, conn))
    );
    assert_eq!(kernel_decides(&c, ip("10.1.2.3"), 9, send), Some((2, send)));
    assert_eq!(
        kernel_decides(
            &c,
            ip("10.1.2.3"),
            22,
            checked_classes(NetOp::Connect, SOCK_DGRAM, false)
        ),
        Some((2, send)),
        "UDP connect is checked as send too; the most specific rule wins"
    );
    assert_eq!(
        kernel_decides(
            &c,
            ip("10.1.2.3"),
            5432,
            checked_classes(NetOp::Connect, SOCK_STREAM, false)
        ),
        Some((0, conn))
    );
    // IPv4-mapped addresses are matched by IPv4 rules, not by ::/0.
    assert_eq!(
        kernel_decides(&c, ip("::ffff:10.1.9.9"), 5432, conn),
        Some((0, conn))
    );
    assert_eq!(kernel_decides(&c, ip("::ffff:10.1.9.9"), 53, send), None);
    assert_eq!(
        kernel_decides(&c, ip("2001:db8::1"), 53, send),
        Some((5, send))
    );
    assert_eq!(
        kernel_decides(&c, ip("::1"), 1500, conn),
        Some((4, conn | bind))
    );
    assert_eq!(kernel_decides(&c, ip("::1"), 53, send), Some((5, send)));
    // Bind: the address itself, and the wildcard addresses, which bind every address.
    assert_eq!(
        kernel_decides(&c, ip("127.0.0.4"), 8080, bind),
        Some((3, bind))
    );
    assert_eq!(kernel_decides(&c, ip("127.0.0.5"), 8080, bind), None);
    assert_eq!(
        kernel_decides(&c, ip("0.0.0.0"), 8080, bind),
        Some((3, bind))
    );
    assert_eq!(kernel_decides(&c, ip("0.0.0.0"), 8081, bind), None);
    assert_eq!(kernel_decides(&c, ip("::"), 8080, bind), Some((3, bind)));
    assert_eq!(kernel_decides(&c, ip("::"), 1500, bind), Some((4, bind)));
    // ... restricted to bind: connecting to 0.0.0.0:8080 is not denied by the bind rule.
    assert_eq!(kernel_decides(&c, ip("0.0.0.0"), 8080, conn), None);
    assert_eq!(
        kernel_decides(&c, ip("0.0.0.0"), 1500, bind),
        None,
        "v6 rule, v4 socket"
    );
}

#[test]
fn no_bind_rule_no_wildcard_entries() {
    let c = flatten(&rules(&rule("10.0.0.0/8", "", "[\"connect\"]"))).expect("fits");
    assert_eq!(c.v4.len(), 1);
    assert!(c.v6.is_empty());
    assert_eq!(c.v4[0].prefix_len, 8);
    assert_eq!(c.v4[0].addr, [10, 0, 0, 0]);
    assert_eq!(c.v4[0].value.count, 1);
    assert_eq!(
        (
            c.v4[0].value.rules[0].port_lo,
            c.v4[0].value.rules[0].port_hi
        ),
        (0, 65535)
    );
}

/// One `[[network]]` entry on 10.0.0.0/8 port 22 (line 8), its `cidr` on line 9, then
/// `body` from line 11.
fn decided(body: &str) -> String {
    format!("[[network]]\ncidr = \"10.0.0.0/8\"\nports = [22]\n{body}")
}

#[test]
fn lease_and_agent_decisions_validate() {
    let r = rules(&decided(
        "deny = [\"send\"]\nlease = [\"connect\", \"bind\"]\n\
         [[network.agent]]\nname = \"a\"\nallow = [\"connect\"]\nlease = [\"send\"]\n",
    ));
    let d = &r[0].decisions;
    assert_eq!(d.deny, vec![Class::Send]);
    assert_eq!(d.lease, vec![Class::Connect, Class::Bind]);
    assert_eq!(d.agents.len(), 1);
    assert_eq!(
        (
            d.agents[0].agent.as_str(),
            &d.agents[0].allow,
            &d.agents[0].lease
        ),
        ("a", &vec![Class::Connect], &vec![Class::Send])
    );
    let conn = Class::Connect.bit();
    let send = Class::Send.bit();
    let bind = Class::Bind.bit();
    let k = r[0].kernel_rule(0);
    assert_eq!(
        (k.deny_mask, k.lease_mask, k.agent_mask),
        (send, conn | bind, conn | send | bind)
    );
    let own = d.agents[0].masks(d.masks());
    assert_eq!((own.deny_mask, own.lease_mask), (0, send | bind));
    assert_eq!(
        k.verdict(Some(own), conn),
        governor_common::maps::Verdict::Allow
    );
    assert_eq!(k.verdict(None, conn), governor_common::maps::Verdict::Lease);
    assert_eq!(k.verdict(None, send), governor_common::maps::Verdict::Deny);
    // The tries carry every mask; the wildcard bind entries only the bind bit of each.
    let c = flatten(&r).expect("fits");
    let rule8 = &c.v4.iter().find(|e| e.prefix_len == 8).expect("/8").value;
    assert_eq!(
        (
            rule8.rules[0].deny_mask,
            rule8.rules[0].lease_mask,
            rule8.rules[0].agent_mask
        ),
        (send, conn | bind, conn | send | bind)
    );
    let wild = &c
        .v4
        .iter()
        .find(|e| e.prefix_len == 32)
        .expect("0.0.0.0/32")
        .value;
    assert_eq!(
        (
            wild.rules[0].deny_mask,
            wild.rules[0].lease_mask,
            wild.rules[0].agent_mask
        ),
        (0, bind, bind)
    );
    // A lease-only rule still matches in the kernel's lookup.
    assert_eq!(
        kernel_decides(&c, "10.9.9.9".parse().expect("ip"), 22, conn),
        Some((0, send))
    );
    let p = parse(&decided("lease = [\"connect\"]\n")).expect("valid");
    assert_eq!(p.classes(), vec![Class::Connect], "leased classes count");
    // Agent decisions alone are enough.
    let r = rules(&decided(
        "[[network.agent]]\nname = \"a\"\ndeny = [\"network\"]\n",
    ));
    assert_eq!(r[0].kernel_rule(3).agent_mask, conn | send | bind);
    assert_eq!(r[0].kernel_rule(3).deny_mask, 0);
}

#[test]
fn a_network_rule_must_decide_something() {
    let (line, field, why) = one_problem(&decided(""));
    assert_eq!((line, field.as_str()), (9, "network[0].cidr"));
    assert!(
        why.contains("decides nothing") && why.contains("[[network.agent]]"),
        "{why}"
    );
}

#[test]
fn network_lease_overlapping_deny_is_an_error() {
    let (line, field, why) = one_problem(&decided("deny = [\"connect\"]\nlease = [\"network\"]\n"));
    assert_eq!((line, field.as_str()), (12, "network[0].lease"));
    assert!(
        why.contains("connect also in `deny`; each class gets one decision"),
        "{why}"
    );
}

#[test]
fn network_lease_list_errors() {
    let cases: &[(&str, &str)] = &[
        ("[]", "is empty; list classes or leave the field out"),
        ("[\"write\"]", "`write` is a file class"),
        ("[\"exec\"]", "unknown class `exec`; network rules decide"),
    ];
    for (lease, want) in cases {
        let (line, field, why) = one_problem(&decided(&format!("lease = {lease}\n")));
        assert_eq!((line, field.as_str()), (11, "network[0].lease"), "{lease}");
        assert!(why.contains(want), "{lease}: {why}");
    }
}

#[test]
fn network_agent_entry_must_name_a_known_agent() {
    let (line, field, why) = one_problem(&decided(
        "deny = [\"send\"]\n[[network.agent]]\nname = \"ghost\"\nallow = [\"send\"]\n",
    ));
    assert_eq!((line, field.as_str()), (13, "network[0].agent[0].name"));
    assert!(
        why.contains("`ghost` is not an agent of this policy (known agents: a)"),
        "{why}"
    );
}

#[test]
fn network_agent_entry_errors() {
    let entry = |body: &str| {
        decided(&format!(
            "deny = [\"send\"]\n[[network.agent]]\nname = \"a\"\n{body}"
        ))
    };
    // Nothing decided.
    let (line, field, why) = one_problem(&entry(""));
    assert_eq!((line, field.as_str()), (13, "network[0].agent[0].name"));
    assert!(
        why.contains("decides nothing: give `allow`, `lease` or `deny`"),
        "{why}"
    );
    // An empty list.
    let (line, field, why) = one_problem(&entry("allow = []\n"));
    assert_eq!((line, field.as_str()), (14, "network[0].agent[0].allow"));
    assert!(why.contains("is empty"), "{why}");
    // One class, two decisions.
    let (line, field, why) = one_problem(&entry("allow = [\"send\"]\ndeny = [\"network\"]\n"));
    assert_eq!((line, field.as_str()), (15, "network[0].agent[0].deny"));
    assert!(why.contains("send also in `allow`"), "{why}");
    let (line, field, why) = one_problem(&entry("allow = [\"bind\"]\nlease = [\"bind\"]\n"));
    assert_eq!((line, field.as_str()), (15, "network[0].agent[0].lease"));
    assert!(why.contains("bind also in `allow`"), "{why}");
    // A file class.
    let (line, field, why) = one_problem(&entry("lease = [\"delete\"]\n"));
    assert_eq!((line, field.as_str()), (14, "network[0].agent[0].lease"));
    assert!(why.contains("`delete` is a file class"), "{why}");
    // Two entries for one agent.
    let twice = "[[network.agent]]\nname = \"a\"\nallow = [\"send\"]\n";
    let (line, field, why) = one_problem(&decided(&format!("deny = [\"send\"]\n{twice}{twice}")));
    assert_eq!((line, field.as_str()), (9, "network[0].agent[1].name"));
    assert!(
        why.contains("agent `a` has two entries here; merge them"),
        "{why}"
    );
}
