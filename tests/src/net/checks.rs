//! The network scenario's checks: what the enforcing agent tries and must see, pinning
//! across a daemon's kill, restart and unload, and the whole scenario against one daemon with
//! exactly one event per would-be deny.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{cgroup2_root, check, denied, op, NetScenario, Op, Want};
use crate::Daemon;

impl NetScenario {
    /// What the enforcing agent tries, and what must happen. `fast_open` adds TCP fast open.
    pub fn agent_ops(&self, fast_open: bool) -> Vec<Op> {
        let NetScenario {
            p,
            q,
            p6,
            q6,
            t,
            u,
            b,
            ..
        } = *self;
        let mut ops = vec![
            // connect, IPv4: the listed port of the listed address only.
            op(
                "connect",
                "127.0.0.2",
                p,
                denied("connect", "127.0.0.2", "ipv4"),
            ),
            op("connect", "127.0.0.2", q, Want::Ok),
            op("connect", "127.0.0.3", p, Want::Ok),
            // IPv4-mapped IPv6 on an AF_INET6 socket is matched by the IPv4 rule.
            op(
                "connect",
                "::ffff:127.0.0.2",
                p,
                denied("connect", "::ffff:127.0.0.2", "ipv6"),
            ),
            op("connect", "::ffff:127.0.0.2", q, Want::Ok),
            // A rule written in IPv4-mapped form matches a plain IPv4 connect.
            op(
                "connect",
                "127.0.0.6",
                p,
                denied("connect", "127.0.0.6", "ipv4"),
            ),
            // IPv6.
            op("connect", "::1", p6, denied("connect", "::1", "ipv6")),
            op("connect", "::1", q6, Want::Ok),
            // Unconnected UDP sends: denied to listed ports in the /30, allowed elsewhere.
            op(
                "sendto",
                "127.0.0.2",
                u,
                denied("send", "127.0.0.2", "ipv4"),
            ),
            op(
                "sendto",
                "127.0.0.3",
                t,
                denied("send", "127.0.0.3", "ipv4"),
            ),
            op("sendto", "127.0.0.5", u, Want::Ok),
            op("sendto", "127.0.0.2", q, Want::Ok),
            op("sendto", "::1", u, Want::Ok),
            // IPv4-mapped UDP send: the kernel hands it to its IPv4 path (sendmsg4).
            op(
                "sendto",
                "::ffff:127.0.0.3",
                u,
                denied("send", "127.0.0.3", "ipv4"),
            ),
            // A UDP connect sets the destination of later sends: a send rule denies it.
            op(
                "udp-connect",
                "127.0.0.1",
                u,
                denied("send", "127.0.0.1", "ipv4"),
            ),
            op("udp-connect", "127.0.0.2", q, Want::Ok),
            // A plain TCP connect to a send-only port is not a send.
            op("connect", "127.0.0.2", t, Want::Ok),
            // bind: the listed address and port, and the wildcard addresses (which bind every
            // address, IPv4 ones included for ::), but not other ports or addresses.
            op("bind", "127.0.0.4", b, denied("bind", "127.0.0.4", "ipv4")),
            op("bind", "127.0.0.4", 0, Want::Ok),
            op("bind", "127.0.0.5", b, Want::Ok),
            op("bind", "0.0.0.0", b, denied("bind", "0.0.0.0", "ipv4")),
            op("bind", "::", b, denied("bind", "::", "ipv6")),
            op("bind", "::1", b, Want::Ok),
        ];
        if fast_open {
            ops.extend([
                // TCP fast open goes through the connect hooks: it is a connect, and a send.
                op(
                    "fastopen",
                    "127.0.0.2",
                    t,
                    denied("send", "127.0.0.2", "ipv4"),
                ),
                op(
                    "fastopen",
                    "::ffff:127.0.0.6",
                    p,
                    denied("connect", "::ffff:127.0.0.6", "ipv6"),
                ),
                op("fastopen", "127.0.0.2", q, Want::Ok),
            ]);
        }
        ops
    }
    /// Pinning, for the network classes: the enforcing agent's connect to 127.0.0.2:p stays
    /// refused after the daemon is SIGKILLed (a non-agent still connects), a successor adopts
    /// the pins and receives the next refusal's event, a SIGTERM keeps enforcement too, and
    /// only `governor unload` (the harness, when the last daemon is dropped) ends it.
    pub fn check_pinned(&self, extra: &[&str]) {
        let deny = [op(
            "connect",
            "127.0.0.2",
            self.p,
            denied("connect", "127.0.0.2", "ipv4"),
        )];
        let allow = [op("connect", "127.0.0.2", self.p, Want::Ok)];
        let agent = self.agent();
        let mut d = self.start(extra);
        let first_pid = d.pid();
        check(
            &deny,
            &self.run_as(&d, &agent, None, &deny),
            "while enforcing",
        );
        d.kill();
        assert!(!d.alive(), "the daemon must be dead");
        check(
            &deny,
            &self.run_as(&d, &agent, None, &deny),
            "after SIGKILL",
        );
        check(&allow, &self.run_as_host(&allow), "non-agent after SIGKILL");

        let mut d = d.successor(&self.dir, "policy.toml", &self.policy(), extra);
        let adopted = d.wait_logged("adopted pinned enforcement");
        assert_eq!(adopted["previous_pid"], first_pid, "{adopted}");
        assert_eq!(adopted["same_build"], true, "{adopted}");
        assert!(
            adopted["retired_links"].as_u64().is_some_and(|n| n >= 6),
            "the old network links were removed: {adopted}"
        );
        let mark = d.mark();
        check(
            &deny,
            &self.run_as(&d, &agent, None, &deny),
            "after adoption",
        );
        d.wait_decision_after(mark, "the successor receives the refusal", |v| {
            v["class"] == "connect" && v["addr"] == "127.0.0.2" && v["port"] == self.p
        });

        let log = d.stop_keeping_pins();
        assert!(
            log.iter()
                .any(|l| l.contains("stopped; enforcement stays pinned")),
            "{log:#?}"
        );
        check(
            &deny,
            &self.run_as(&d, &agent, None, &deny),
            "after SIGTERM",
        );
        let (policy, pin_dir) = (d.policy.clone(), d.pin_dir.clone());
        drop(d); // `governor unload`
        assert!(!pin_dir.exists(), "{} must be gone", pin_dir.display());
        check(
            &allow,
            &self.run_with_policy(&policy, &agent, &allow),
            "agent after governor unload",
        );
    }
    /// The whole scenario against a running daemon `d`: the enforcing agent, a cgroup created
    /// below it, the observing agent and a non-agent process, with exactly one event
    /// per would-be deny and none for anything allowed.
    pub fn check_all(&self, d: &Daemon, fast_open: bool) {
        if fast_open {
            let tfo =
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen").unwrap_or_default();
            let bits: u32 = tfo.trim().parse().unwrap_or(0);
            assert!(
                bits & 1 == 1,
                "TCP fast open client support is off (net.ipv4.tcp_fastopen = {tfo:?})"
            );
        }
        let start = d.decisions().len();
        let mut expected = 0;

        // The enforcing agent.
        let ops = self.agent_ops(fast_open);
        let results = self.run_as(d, &self.agent(), None, &ops);
        check(&ops, &results, "agent");
        for o in &ops {
            let Want::Denied {
                class,
                addr,
                family,
            } = o.want
            else {
                continue;
            };
            expected += 1;
            let ev = d.wait_decision(&format!("{o:?}"), |v| {
                v["class"] == class && v["addr"] == addr && v["port"] == o.port
            });
            assert_eq!(ev["decision"], "deny", "{ev}");
            assert_eq!(ev["agent"], self.agent(), "{ev}");
            assert_eq!(ev["family"], family, "{ev}");
            assert_eq!(ev["comm"], "python3", "{ev}");
            assert_eq!(ev["uid"], 0, "{ev}");
            assert!(ev["pid"].as_u64().is_some_and(|x| x > 1), "{ev}");
            assert!(ev["tgid"].as_u64().is_some_and(|x| x > 1), "{ev}");
            assert!(ev["boot_ns"].as_u64().is_some_and(|x| x > 0), "{ev}");
            let cg = cgroup2_root().join(&self.cgroup_parent).join("enforce");
            let id = std::fs::metadata(&cg).expect("agent cgroup").ino();
            assert_eq!(ev["cgroup_id"], id, "{ev}");
            let proto = if o.op == "sendto" || o.op == "udp-connect" {
                "udp"
            } else {
                "tcp"
            };
            assert_eq!(ev["proto"], proto, "{ev}");
            assert!(ev["rule"].as_str().is_some_and(|r| r.contains('/')), "{ev}");
        }
        let ev = d.wait_decision("rule text", |v| v["addr"] == "127.0.0.6");
        assert_eq!(ev["rule"], format!("127.0.0.6/32 port {}", self.p));
        assert_eq!(ev["rule_id"], 4);

        // A task in a cgroup created below the agent's after the daemon started: the kernel
        // registered it as the agent's (cgroup:cgroup_mkdir), so the event names the agent
        // and carries the child's own cgroup id.
        let child = cgroup2_root()
            .join(&self.cgroup_parent)
            .join("enforce/child");
        std::fs::create_dir_all(&child).expect("create child cgroup");
        let ops = [
            op(
                "connect",
                "127.0.0.2",
                self.p,
                denied("connect", "127.0.0.2", "ipv4"),
            ),
            op("connect", "127.0.0.2", self.q, Want::Ok),
        ];
        let results = self.run_as(d, &self.agent(), Some(&child), &ops);
        check(&ops, &results, "child cgroup");
        expected += 1;
        let child_id = std::fs::metadata(&child).expect("child cgroup").ino();
        let ev = d.wait_decision("child cgroup", |v| v["cgroup_id"] == child_id);
        assert_eq!(ev["decision"], "deny", "{ev}");
        assert_eq!(ev["agent"], self.agent(), "{ev}");
        assert_eq!(ev["port"], self.p, "{ev}");

        // The observing agent: allowed, recorded as would-be denies.
        let ops = [
            op("connect", "127.0.0.2", self.p, Want::Ok),
            op("sendto", "127.0.0.2", self.u, Want::Ok),
            op("connect", "127.0.0.2", self.q, Want::Ok),
        ];
        let results = self.run_as(d, &self.observer(), None, &ops);
        check(&ops, &results, "observer");
        expected += 2;
        for (class, port) in [("connect", self.p), ("send", self.u)] {
            let ev = d.wait_decision("observe-deny", |v| {
                v["agent"] == self.observer() && v["class"] == class
            });
            assert_eq!(ev["decision"], "observe-deny", "{ev}");
            assert_eq!(ev["port"], port, "{ev}");
            assert_eq!(ev["addr"], "127.0.0.2", "{ev}");
        }

        // A process outside agent cgroups is not affected at all.
        let mut ops = vec![
            op("connect", "127.0.0.2", self.p, Want::Ok),
            op("connect", "::1", self.p6, Want::Ok),
            op("sendto", "127.0.0.2", self.u, Want::Ok),
            op("udp-connect", "127.0.0.2", self.u, Want::Ok),
            op("bind", "127.0.0.4", self.b, Want::Ok),
        ];
        if fast_open {
            ops.push(op("fastopen", "127.0.0.2", self.p, Want::Ok));
        }
        let results = self.run_as_host(&ops);
        check(&ops, &results, "non-agent");

        // Exactly one event per would-be deny, none for anything allowed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while d.decisions().len() - start < expected && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(300));
        let got: Vec<Value> = d.decisions().split_off(start);
        assert_eq!(
            got.len(),
            expected,
            "expected exactly one event per would-be deny; got {got:#?}"
        );
        let mut seen = BTreeMap::new();
        for v in &got {
            *seen
                .entry((
                    v["agent"].to_string(),
                    v["cgroup_id"].to_string(),
                    v["class"].to_string(),
                    v["addr"].to_string(),
                    v["port"].to_string(),
                ))
                .or_insert(0) += 1;
        }
        assert!(
            seen.values().all(|&n| n == 1),
            "duplicate events: {seen:#?}"
        );
    }
}
