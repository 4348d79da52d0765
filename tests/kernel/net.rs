//! Network classes on BPF-LSM kernels, daemon in full mode (`--require-full`): connect, bind
//! and unconnected sends (UDP, TCP fast open) for IPv4, IPv6 and IPv4-mapped IPv6, observe
//! mode, sub-cgroups of an agent, non-agents. The scenario itself is shared with the host
//! tier: `governor_kernel_tests::net`.

use governor_kernel_tests::{all_class_names, net::NetScenario, require_bpf_lsm};

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
    // Every class, network and BPF-LSM alike.
    assert_eq!(
        enforcing["enforced"].as_str(),
        Some(all_class_names().as_str()),
        "{enforcing}"
    );
    assert!(
        all_class_names().contains("exec, signal, ptrace, setid, connect, bind, send, bpf"),
        "{}",
        all_class_names()
    );
    assert_eq!(enforcing["not_enforced"], "", "{enforcing}");
    assert!(
        !log.iter().any(|v| v["level"] == "WARN"),
        "no warning in full mode: {log:#?}"
    );
    s.check_all(&d, true);
}

#[test]
fn net_enforcement_survives_the_daemon_until_unload() {
    require_bpf_lsm();
    NetScenario::new("vm-pinned").check_pinned(&["--require-full"]);
}
