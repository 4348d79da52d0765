//! Leases and agents' own decisions on `[[network]]` rules, shared by every tier that
//! enforces network classes (VM with BPF-LSM, VM without it, this host): a `lease` rule
//! refuses connect (EPERM, an event with `lease_required`) until the lease map holds an
//! unexpired entry for exactly (agent, class, rule); revocation and expiry block again at
//! once; a `deny` is not lifted by any lease entry; an agent's own `allow` or `lease` replaces
//! the rule's default for that agent only. Leases are written into the daemon's pinned
//! `GOV_LEASES` directly (`crate::lease`).

use std::time::Duration;

use governor_common::Class;
use serde_json::Value;

use crate::{
    lease::{net_object, LeaseMap},
    net::{cgroup2_root, check, denied, op, NetScenario, Op, Want},
    Daemon,
};

/// Agent ids are the agents' positions in the policy.
const LESSEE: u32 = 0;
const OTHER: u32 = 1;

/// Rule ids are the rules' positions in the policy.
const RULE_LEASE: u32 = 0;
const RULE_OTHER: u32 = 1;
const RULE_DENY: u32 = 2;
const RULE_OWN: u32 = 3;
const RULE_SEND: u32 = 4;

const LONG: Duration = Duration::from_secs(600);

/// The listeners and ports of a [`NetScenario`], with a policy of leases.
pub struct NetLeaseScenario {
    // Declared first: its cgroups go before the scenario removes their parent.
    _cgroups: Cgroups,
    pub net: NetScenario,
}

/// Removes the scenario's agent cgroups (best effort, they are empty once the agents exited).
struct Cgroups(std::path::PathBuf);

impl Drop for Cgroups {
    fn drop(&mut self) {
        for agent in ["lessee", "other", "trusted"] {
            let _ = std::fs::remove_dir(self.0.join(agent));
        }
    }
}

impl NetLeaseScenario {
    pub fn new(tag: &str) -> NetLeaseScenario {
        let net = NetScenario::new(tag);
        NetLeaseScenario {
            _cgroups: Cgroups(cgroup2_root().join(&net.cgroup_parent)),
            net,
        }
    }

    /// Rule ids: 0 127.0.0.2:p lease connect; 1 127.0.0.3:p lease connect; 2 [::1]:p6 deny
    /// connect; 3 127.0.0.2:q deny connect, `trusted` allowed, `other` under lease;
    /// 4 127.0.0.2:u lease send. Agents: 0 lessee, 1 other, 2 trusted.
    pub fn policy(&self) -> String {
        let NetScenario { p, q, p6, u, .. } = self.net;
        format!(
            r#"
[policy]
name = "net-lease-{tag}"
owner = "kernel-tests@example.com"

[[agents]]
name = "lessee"
cgroup = "{parent}/lessee"

[[agents]]
name = "other"
cgroup = "{parent}/other"

[[agents]]
name = "trusted"
cgroup = "{parent}/trusted"

[[network]]
cidr = "127.0.0.2"
ports = [{p}]
lease = ["connect"]

[[network]]
cidr = "127.0.0.3"
ports = [{p}]
lease = ["connect"]

[[network]]
cidr = "::1"
ports = [{p6}]
deny = ["connect"]

[[network]]
cidr = "127.0.0.2"
ports = [{q}]
deny = ["connect"]

[[network.agent]]
name = "trusted"
allow = ["connect"]

[[network.agent]]
name = "other"
lease = ["connect"]

[[network]]
cidr = "127.0.0.2"
ports = [{u}]
lease = ["send"]
"#,
            tag = self.net.tag,
            parent = self.net.cgroup_parent,
        )
    }

    /// Starts the daemon on [`NetLeaseScenario::policy`] with `extra` arguments.
    pub fn start(&self, extra: &[&str]) -> Daemon {
        Daemon::start_with(&self.net.dir, &self.policy(), extra)
    }

    /// Runs `ops` as `agent` and checks each result.
    fn run(&self, d: &Daemon, agent: &str, ops: &[Op], what: &str) {
        check(ops, &self.net.run_as(d, agent, None, ops), what);
    }

    /// One refused connect to 127.0.0.2:`port` by `agent`: EPERM and exactly one `deny` event
    /// naming `rule_id`, whose `lease_required` is `lease_required`.
    fn refused(
        &self,
        d: &Daemon,
        agent: &str,
        port: u16,
        rule_id: u32,
        lease_required: bool,
        what: &str,
    ) {
        let mark = d.mark();
        let ops = [op(
            "connect",
            "127.0.0.2",
            port,
            denied("connect", "127.0.0.2", "ipv4"),
        )];
        self.run(d, agent, &ops, what);
        let ev = d.one_since(mark, what, |v| v["class"] == "connect");
        assert_event(&ev, "deny", agent, rule_id, 0, what);
        assert_eq!(ev["lease_required"], lease_required, "{what}: {ev}");
    }

    /// One operation by `agent` allowed under lease `lease_id` on `rule_id`: exactly one
    /// `lease-allow` event of `class` with that lease id.
    fn leased(&self, d: &Daemon, agent: &str, o: Op, class: &str, rule_id: u32, lease_id: u64) {
        let what = format!(
            "{} {}:{} by {agent} under lease {lease_id}",
            o.op, o.host, o.port
        );
        let mark = d.mark();
        self.run(d, agent, &[o], &what);
        let ev = d.one_since(mark, &what, |v| v["class"] == class);
        assert_event(&ev, "lease-allow", agent, rule_id, lease_id, &what);
        assert_eq!(ev["lease_required"], false, "{what}: {ev}");
    }

    /// The whole scenario against a running daemon `d`.
    pub fn check_all(&self, d: &Daemon) {
        let NetScenario { p, q, p6, u, .. } = self.net;
        let mut leases = LeaseMap::pinned(&d.pin_dir);
        let ok = |o: &'static str, host: &'static str, port: u16| op(o, host, port, Want::Ok);

        // No lease: refused, and the event says a lease would allow it.
        self.refused(d, "lessee", p, RULE_LEASE, true, "connect, no lease");

        // Leases on something else do not count: another class (send) on this rule, the
        // connect class on another rule, another agent's lease on this rule.
        leases.grant_on(LESSEE, Class::Send, net_object(RULE_LEASE), LONG, 20);
        leases.grant_on(LESSEE, Class::Connect, net_object(RULE_OTHER), LONG, 21);
        leases.grant_on(OTHER, Class::Connect, net_object(RULE_LEASE), LONG, 22);
        self.refused(
            d,
            "lessee",
            p,
            RULE_LEASE,
            true,
            "connect, leases on other things",
        );

        // The agent's own lease on (connect, this rule): allowed, recorded with the lease id.
        leases.revoke_on(OTHER, Class::Connect, net_object(RULE_LEASE));
        leases.grant_on(LESSEE, Class::Connect, net_object(RULE_LEASE), LONG, 23);
        self.leased(
            d,
            "lessee",
            ok("connect", "127.0.0.2", p),
            "connect",
            RULE_LEASE,
            23,
        );
        // The lease on the other rule holds for that rule's address.
        self.leased(
            d,
            "lessee",
            ok("connect", "127.0.0.3", p),
            "connect",
            RULE_OTHER,
            21,
        );
        // The lessee's lease does nothing for another agent.
        self.refused(d, "other", p, RULE_LEASE, true, "another agent's connect");

        // Revocation blocks at once.
        leases.revoke_on(LESSEE, Class::Connect, net_object(RULE_LEASE));
        self.refused(d, "lessee", p, RULE_LEASE, true, "connect, revoked");

        // An expired entry blocks.
        leases.grant_on(
            LESSEE,
            Class::Connect,
            net_object(RULE_LEASE),
            Duration::ZERO,
            24,
        );
        self.refused(d, "lessee", p, RULE_LEASE, true, "connect, lease expired");

        // `deny` is not lifted by a lease entry.
        leases.grant_on(LESSEE, Class::Connect, net_object(RULE_DENY), LONG, 25);
        let mark = d.mark();
        let ops = [op("connect", "::1", p6, denied("connect", "::1", "ipv6"))];
        self.run(
            d,
            "lessee",
            &ops,
            "connect ::1 under deny, lease entry present",
        );
        let ev = d.one_since(mark, "deny ::1", |v| v["addr"] == "::1");
        assert_event(&ev, "deny", "lessee", RULE_DENY, 0, "deny ::1");
        assert_eq!(ev["lease_required"], false, "{ev}");

        // Agents' own decisions: `trusted` may connect where the default is deny, with no
        // event; `other` needs a lease there; the lessee keeps the default.
        let mark = d.mark();
        self.run(
            d,
            "trusted",
            &[ok("connect", "127.0.0.2", q)],
            "trusted connect",
        );
        d.none_since(mark, "trusted's connect is a plain allow");
        self.refused(
            d,
            "lessee",
            q,
            RULE_OWN,
            false,
            "lessee connect, default deny",
        );
        self.refused(
            d,
            "other",
            q,
            RULE_OWN,
            true,
            "other connect, own lease, no lease",
        );
        leases.grant_on(OTHER, Class::Connect, net_object(RULE_OWN), LONG, 26);
        self.leased(
            d,
            "other",
            ok("connect", "127.0.0.2", q),
            "connect",
            RULE_OWN,
            26,
        );
        // `trusted`'s allow is for that rule only.
        self.refused(
            d,
            "trusted",
            p,
            RULE_LEASE,
            true,
            "trusted connect under another rule",
        );

        // Sends (the sendmsg programs): a connect lease is not a send lease.
        let send = || {
            op(
                "sendto",
                "127.0.0.2",
                u,
                denied("send", "127.0.0.2", "ipv4"),
            )
        };
        let mark = d.mark();
        self.run(d, "lessee", &[send()], "send, no lease");
        let ev = d.one_since(mark, "send, no lease", |v| v["class"] == "send");
        assert_event(&ev, "deny", "lessee", RULE_SEND, 0, "send, no lease");
        assert_eq!(ev["lease_required"], true, "{ev}");
        leases.grant_on(LESSEE, Class::Connect, net_object(RULE_SEND), LONG, 27);
        let mark = d.mark();
        self.run(d, "lessee", &[send()], "send under a connect lease");
        d.one_since(mark, "send under a connect lease", |v| {
            v["decision"] == "deny"
        });
        leases.grant_on(LESSEE, Class::Send, net_object(RULE_SEND), LONG, 28);
        self.leased(
            d,
            "lessee",
            ok("sendto", "127.0.0.2", u),
            "send",
            RULE_SEND,
            28,
        );
        // A UDP connect sets the destination of later sends: it is checked as send, and the
        // send lease covers it.
        self.leased(
            d,
            "lessee",
            ok("udp-connect", "127.0.0.2", u),
            "send",
            RULE_SEND,
            28,
        );

        // A process outside agent cgroups needs no lease.
        let host = [ok("connect", "127.0.0.2", p), ok("sendto", "127.0.0.2", u)];
        check(&host, &self.net.run_as_host(&host), "non-agent");
    }
}

/// Checks the fields a network event shares with file events.
fn assert_event(ev: &Value, decision: &str, agent: &str, rule_id: u32, lease_id: u64, what: &str) {
    assert_eq!(
        (
            &ev["decision"],
            &ev["agent"],
            &ev["rule_id"],
            &ev["lease_id"]
        ),
        (
            &decision.into(),
            &agent.into(),
            &rule_id.into(),
            &lease_id.into()
        ),
        "{what}: {ev}"
    );
    assert!(
        ev["rule"].as_str().is_some_and(|r| r.contains('/')),
        "{what}: {ev}"
    );
}
