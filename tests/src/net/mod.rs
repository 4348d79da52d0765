//! The network-class scenario, shared by every tier that enforces network classes: the host
//! test (`governor/tests/net_host.rs`: a kernel that refuses BPF-LSM, daemon in degraded
//! mode), the VM tests (`tests/kernel/net.rs`: BPF-LSM kernels, `--require-full`) and the VM
//! booted without BPF-LSM (`tests/kernel/no_bpf_lsm.rs`).
//!
//! Loopback only: every address is in 127.0.0.0/8 or is ::1, and every listener is opened by
//! this process. Agents act through one python3 process per batch of socket operations (fast
//! under QEMU TCG), run via `governor run`; the test process itself is the non-agent.
//!
//! `probe` holds the probe program, the operations and their wanted outcomes; `checks` the
//! scenario's checks (what the agent tries, pinning, the whole run). This file keeps the
//! scenario itself: listeners, ports, policy and how operations run.
//!
//! May import the rest of the test library; the kernel tests and `governor/tests` import it.

use std::{
    net::{TcpListener, UdpSocket},
    path::{Path, PathBuf},
    process::Command,
};

use crate::{governor_bin, scratch, write, Daemon};

mod checks;
mod probe;

pub use probe::{check, denied, op, Op, Want};
use probe::{parse_results, probe_args, PROBE};

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
        let args = probe_args(ops);
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
        let args = probe_args(ops);
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
    /// Runs `ops` as a plain process (not in any agent cgroup).
    pub fn run_as_host(&self, ops: &[Op]) -> Vec<Result<(), i32>> {
        let args = probe_args(ops);
        let out = Command::new("python3")
            .arg(self.dir.join("probe.py"))
            .args(&args)
            .output()
            .expect("spawn python3");
        parse_results(&out, ops.len())
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
