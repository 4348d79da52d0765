//! Network classes on BPF-LSM kernels, daemon in full mode (`--require-full`): connect, bind
//! and unconnected sends (UDP, TCP fast open) for IPv4, IPv6 and IPv4-mapped IPv6, observe
//! mode, unregistered sub-cgroups, non-agents. The scenario itself is shared with the host
//! tier: `governor_kernel_tests::net`.

use governor_kernel_tests::{
    net::{NetScenario, Op, Want},
    require_bpf_lsm,
};

#[test]
fn net_full_mode_connect_bind_send() {
    require_bpf_lsm();
    let s = NetScenario::new("vm");
    let d = s.start(&["--require-full"]);
    let log = d.logged();
    let enforcing = log
        .iter()
        .find(|v| v["message"] == "enforcing")
        .expect("an `enforcing` line");
    assert_eq!(enforcing["mode"], "full", "{enforcing}");
    assert_eq!(
        enforcing["enforced"], "unlink, rmdir, connect, bind, send, unix-connect",
        "{enforcing}"
    );
    assert_eq!(enforcing["not_enforced"], "", "{enforcing}");
    assert!(
        !log.iter().any(|v| v["level"] == "WARN"),
        "no warning in full mode: {log:#?}"
    );
    s.check_all(&d, true);
}

#[test]
fn net_enforcement_ends_with_the_daemon() {
    require_bpf_lsm();
    let s = NetScenario::new("vm-detach");
    let d = s.start(&["--require-full"]);
    let deny = [Op {
        op: "connect",
        host: "127.0.0.2",
        port: s.p,
        want: Want::Denied {
            class: "connect",
            addr: "127.0.0.2",
            family: "ipv4",
        },
    }];
    let results = s.run_as(&d, &s.agent(), None, &deny);
    governor_kernel_tests::net::check(&deny, &results, "while enforcing");
    let policy = d.policy.clone();
    d.stop();
    let out = std::process::Command::new(governor_kernel_tests::governor_bin())
        .args(["run", "--policy"])
        .arg(&policy)
        .args(["--agent", &s.agent(), "--", "python3"])
        .arg(s.dir.join("probe.py"))
        .arg(format!("connect,127.0.0.2,{}", s.p))
        .output()
        .expect("governor run");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("RESULT 0 ok"),
        "after the daemon stopped: {out:?}"
    );
}
