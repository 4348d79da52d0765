//! The network-class scenario, shared by every tier that enforces network classes: the host
//! test (`governor/tests/net_host.rs`: a kernel that refuses BPF-LSM, daemon in degraded
//! mode), the VM tests (`tests/kernel/net.rs`: BPF-LSM kernels, `--require-full`) and the VM
//! booted without BPF-LSM (`tests/kernel/no_bpf_lsm.rs`).
//!
//! Loopback only: every address is in 127.0.0.0/8 or is ::1, and every listener is opened by
//! this process. Agents act through one python3 process per batch of socket operations (fast
//! under QEMU TCG), run via `governor run`; the test process itself is the non-agent.

use std::{
    collections::BTreeMap,
    net::{TcpListener, UdpSocket},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{governor_bin, scratch, write, Daemon};

/// Runs socket operations given as `op,host,port` arguments, each on a fresh socket, and
/// prints `RESULT <index> ok` or `RESULT <index> err <errno> <message>` for each.
const PROBE: &str = r#"
import socket, sys
MSG_FASTOPEN = getattr(socket, "MSG_FASTOPEN", 0x20000000)
for i, arg in enumerate(sys.argv[1:]):
    op, host, port = arg.split(",")
    port = int(port)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = None
    try:
        if op == "connect":
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect((host, port))
        elif op == "udp-connect":
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.connect((host, port))
            s.send(b"governor")
        elif op == "sendto":
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.sendto(b"governor", (host, port))
        elif op == "fastopen":
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.sendto(b"governor", MSG_FASTOPEN, (host, port))
        elif op == "bind":
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.bind((host, port))
        else:
            raise SystemExit("unknown op " + op)
        print("RESULT", i, "ok", flush=True)
    except OSError as e:
        print("RESULT", i, "err", e.errno, e.strerror, flush=True)
    finally:
        if s is not None:
            s.close()
"#;

/// What an operation must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Succeed.
    Ok,
    /// Fail with EPERM, logged as a decision of this class with this address and family.
    Denied {
        class: &'static str,
        addr: &'static str,
        family: &'static str,
    },
}

/// One socket operation and its expected outcome.
#[derive(Clone, Debug)]
pub struct Op {
    pub op: &'static str,
    pub host: &'static str,
    pub port: u16,
    pub want: Want,
}

pub fn op(op: &'static str, host: &'static str, port: u16, want: Want) -> Op {
    Op {
        op,
        host,
        port,
        want,
    }
}

pub fn denied(class: &'static str, addr: &'static str, family: &'static str) -> Want {
    Want::Denied {
        class,
        addr,
        family,
    }
}

/// The first cgroup v2 mount point, from /proc/self/mountinfo.
pub fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    info.lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .expect("a cgroup v2 mount")
}

/// Listeners, ports and the policy of one run of the scenario.
pub struct NetScenario {
    pub tag: String,
    pub dir: PathBuf,
    /// Agent cgroups live below this (relative to the cgroup v2 mount).
    pub cgroup_parent: String,
    _listeners: Vec<TcpListener>,
    /// 127.0.0.2:p is denied for connect (also 127.0.0.6:p, written in IPv4-mapped form);
    /// 127.0.0.2:q is not. TCP listeners: 127.0.0.2:p, 127.0.0.2:q, 127.0.0.3:p.
    pub p: u16,
    pub q: u16,
    /// [::1]:p6 is denied for connect, [::1]:q6 is not; TCP listeners on both.
    pub p6: u16,
    pub q6: u16,
    /// Ports t and u of 127.0.0.0/30 are denied for send; TCP listener on 127.0.0.2:t.
    pub t: u16,
    pub u: u16,
    /// 127.0.0.4:b is denied for bind.
    pub b: u16,
}

fn listen(addr: &str) -> TcpListener {
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("listen on {addr}: {e}"))
}

fn port_of(l: &TcpListener) -> u16 {
    l.local_addr().expect("local addr").port()
}

impl NetScenario {
    /// Opens the listeners and picks the ports; `tag` keeps cgroups and files apart from other
    /// runs on the same host.
    pub fn new(tag: &str) -> NetScenario {
        let dir = scratch(&format!("net-{tag}"));
        write(&dir.join("probe.py"), PROBE);
        let lp = listen("127.0.0.2:0");
        let p = port_of(&lp);
        let lq = listen("127.0.0.2:0");
        let q = port_of(&lq);
        let lp3 = listen(&format!("127.0.0.3:{p}"));
        let lp6 = listen("[::1]:0");
        let p6 = port_of(&lp6);
        let lq6 = listen("[::1]:0");
        let q6 = port_of(&lq6);
        let lt = listen("127.0.0.2:0");
        let t = port_of(&lt);
        let u = UdpSocket::bind("127.0.0.2:0")
            .expect("udp port")
            .local_addr()
            .expect("addr")
            .port();
        let b = port_of(&listen("127.0.0.4:0")); // closed again: free for the agent to try
        NetScenario {
            tag: tag.to_owned(),
            dir,
            cgroup_parent: format!("governor-test-net/{tag}"),
            _listeners: vec![lp, lq, lp3, lp6, lq6, lt],
            p,
            q,
            p6,
            q6,
            t,
            u,
            b,
        }
    }

    pub fn agent(&self) -> String {
        format!("net-{}", self.tag)
    }

    pub fn observer(&self) -> String {
        format!("net-{}-obs", self.tag)
    }

    /// Rule ids: 0 connect 127.0.0.2:p, 1 send 127.0.0.0/30 t,u, 2 bind 127.0.0.4:b,
    /// 3 connect [::1]:p6, 4 connect ::ffff:127.0.0.6 (IPv4-mapped form) port p.
    pub fn policy(&self) -> String {
        let NetScenario { p, t, u, b, p6, .. } = self;
        format!(
            r#"
[policy]
name = "net-{tag}"
owner = "kernel-tests@example.com"

[[agents]]
name = "{agent}"
cgroup = "{parent}/enforce"
mode = "enforce"

[[agents]]
name = "{observer}"
cgroup = "{parent}/observe"
mode = "observe"

[[network]]
cidr = "127.0.0.2"
ports = [{p}]
deny = ["connect"]

[[network]]
cidr = "127.0.0.0/30"
ports = [{t}, "{u}"]
deny = ["send"]

[[network]]
cidr = "127.0.0.4/32"
ports = ["{b}-{b}"]
deny = ["bind"]

[[network]]
cidr = "::1"
ports = [{p6}]
deny = ["connect"]

[[network]]
cidr = "::ffff:127.0.0.6"
ports = [{p}]
deny = ["connect"]
"#,
            tag = self.tag,
            agent = self.agent(),
            observer = self.observer(),
            parent = self.cgroup_parent,
        )
    }

    /// Starts the daemon on [`NetScenario::policy`] with `extra` arguments.
    pub fn start(&self, extra: &[&str]) -> Daemon {
        Daemon::start_with(&self.dir, &self.policy(), extra)
    }

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

    /// Runs `ops` as agent `agent` through `governor run` (moved on into the cgroup directory
    /// `sub` first, if given: a cgroup below the agent's) and returns each
    /// result: `Ok`, or the errno.
    pub fn run_as(
        &self,
        d: &Daemon,
        agent: &str,
        sub: Option<&Path>,
        ops: &[Op],
    ) -> Vec<Result<(), i32>> {
        let probe = self.dir.join("probe.py");
        let args: Vec<String> = ops
            .iter()
            .map(|o| format!("{},{},{}", o.op, o.host, o.port))
            .collect();
        let mut cmd = Command::new(governor_bin());
        cmd.args(["run", "--policy"])
            .arg(&d.policy)
            .args(["--agent", agent, "--"]);
        match sub {
            None => {
                cmd.arg("python3").arg(&probe).args(&args);
            }
            Some(dir) => {
                let script = format!(
                    "echo $$ > '{}/cgroup.procs' && exec python3 \"$@\"",
                    dir.display()
                );
                cmd.args(["sh", "-c", &script, "sh"])
                    .arg(&probe)
                    .args(&args);
            }
        }
        let out = cmd.output().expect("spawn governor run");
        parse_results(&out, ops.len())
    }

    /// Runs `ops` as agent `agent` of the policy file `policy`, with no daemon object (after
    /// the daemon is gone).
    pub fn run_with_policy(&self, policy: &Path, agent: &str, ops: &[Op]) -> Vec<Result<(), i32>> {
        let args: Vec<String> = ops
            .iter()
            .map(|o| format!("{},{},{}", o.op, o.host, o.port))
            .collect();
        let out = Command::new(governor_bin())
            .args(["run", "--policy"])
            .arg(policy)
            .args(["--agent", agent, "--", "python3"])
            .arg(self.dir.join("probe.py"))
            .args(&args)
            .output()
            .expect("spawn governor run");
        parse_results(&out, ops.len())
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

    /// Runs `ops` as a plain process (not in any agent cgroup).
    pub fn run_as_host(&self, ops: &[Op]) -> Vec<Result<(), i32>> {
        let args: Vec<String> = ops
            .iter()
            .map(|o| format!("{},{},{}", o.op, o.host, o.port))
            .collect();
        let out = Command::new("python3")
            .arg(self.dir.join("probe.py"))
            .args(&args)
            .output()
            .expect("spawn python3");
        parse_results(&out, ops.len())
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

impl Drop for NetScenario {
    fn drop(&mut self) {
        // Best effort: the cgroups are empty once the agents' processes exited.
        let root = cgroup2_root().join(&self.cgroup_parent);
        for sub in ["enforce/child", "enforce", "observe", ""] {
            let _ = std::fs::remove_dir(root.join(sub));
        }
        // The shared parent, once no other scenario uses it (fails harmlessly otherwise).
        if let Some(parent) = root.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn parse_results(out: &Output, n: usize) -> Vec<Result<(), i32>> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results = vec![None; n];
    for line in stdout.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("RESULT") {
            continue;
        }
        let Some(i) = w.next().and_then(|i| i.parse::<usize>().ok()) else {
            continue;
        };
        let r = match w.next() {
            Some("ok") => Ok(()),
            _ => Err(w.next().and_then(|e| e.parse().ok()).unwrap_or(-1)),
        };
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(r);
        }
    }
    assert!(
        results.iter().all(Option::is_some),
        "probe did not report every operation: status {} stdout={stdout:?} stderr={:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    results.into_iter().flatten().collect()
}

/// Asserts each result matches its op's expectation; reports every mismatch at once.
pub fn check(ops: &[Op], results: &[Result<(), i32>], who: &str) {
    const EPERM: i32 = 1;
    let wrong: Vec<String> = ops
        .iter()
        .zip(results)
        .filter(|(o, r)| match o.want {
            Want::Ok => r.is_err(),
            Want::Denied { .. } => **r != Err(EPERM),
        })
        .map(|(o, r)| {
            format!(
                "{} {}:{} want {:?}, got {r:?}",
                o.op, o.host, o.port, o.want
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{who}: {}", wrong.join("\n  "));
}
