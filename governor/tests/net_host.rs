//! Network classes on this host's own kernel, which refuses BPF-LSM programs (EPERM) but runs
//! cgroup sock_addr programs: the daemon starts in degraded mode, says which classes it does
//! not enforce, and enforces connect, bind and send for agent cgroups.
//!
//! Needs root (it loads BPF programs and creates cgroups) and fails, never skips, without it
//! or when the programs do not load. Loopback addresses only (see
//! `governor_kernel_tests::net`). The tests in this file share cgroups and ports with nothing
//! else: names are tagged `host-*` and ports are picked free by the kernel.

use std::process::Command;

use governor_kernel_tests::{
    governor_bin, lsm_class_names, net::NetScenario, net_lease::NetLeaseScenario, scratch,
    set_governor_bin, set_pin_prefix, write, NET_CLASS_NAMES,
};

fn setup() {
    set_governor_bin(env!("CARGO_BIN_EXE_governor"));
    // Each test pins in its own directory: they run in parallel, and share the host.
    set_pin_prefix("/sys/fs/bpf/governor-test-");
    // SAFETY: plain geteuid(2).
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test loads BPF programs and creates cgroups: run `cargo test` as root \
         (`cargo xtask test` does)"
    );
}

/// Whether this kernel runs BPF-LSM programs for us: the host tier is meant for kernels that
/// do not, and checks the degraded-mode messages there.
fn lsm_refused() -> bool {
    let out = Command::new(governor_bin())
        .arg("preflight")
        .output()
        .expect("governor preflight");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("network:  cgroup sock_addr programs load"),
        "the network programs must load on this host: stdout={stdout} stderr={stderr}"
    );
    stderr.contains("BPF-LSM: cannot enforce")
}

#[test]
fn host_network_enforced_without_bpf_lsm() {
    setup();
    let degraded = lsm_refused();
    let s = NetScenario::new("host");
    let d = s.start(&[]);
    // The line is written before the ready file, but the reader thread may not have taken
    // it in yet.
    let enforcing = d.wait_logged("enforcing");
    let log = d.logged();
    assert_eq!(
        enforcing["enforced"]
            .as_str()
            .map(|e| e.contains("connect, bind, send")),
        Some(true),
        "{enforcing}"
    );
    if degraded {
        assert_eq!(enforcing["mode"], "degraded", "{enforcing}");
        // Every class but the network ones: file, exec, process and host-wide classes.
        let lsm = lsm_class_names();
        assert!(
            lsm.starts_with("unlink, rmdir, rename, truncate, write,") && lsm.contains("exec"),
            "{lsm}"
        );
        assert_eq!(enforcing["not_enforced"], lsm.as_str(), "{enforcing}");
        let warn = log
            .iter()
            .find(|v| v["level"] == "WARN" && v["not_enforced"] == lsm.as_str())
            .unwrap_or_else(|| panic!("a WARN naming the classes not enforced: {log:#?}"));
        assert!(
            warn["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("degraded mode: NOT enforcing {lsm}"))),
            "{warn}"
        );
        assert_eq!(enforcing["enforced"], NET_CLASS_NAMES, "{enforcing}");
    }
    s.check_all(&d, true);
    let log = d.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("stopped; enforcement stays pinned")),
        "{log:#?}"
    );
}

/// Leases and agents' own decisions on network rules, enforced by the sock_addr programs
/// alone (no BPF-LSM on this host).
#[test]
fn host_network_leases_without_bpf_lsm() {
    setup();
    let degraded = lsm_refused();
    let s = NetLeaseScenario::new("host-lease");
    let d = s.start(&[]);
    let enforcing = d.wait_logged("enforcing");
    if degraded {
        assert_eq!(enforcing["mode"], "degraded", "{enforcing}");
    }
    s.check_all(&d);
}

/// Pinning in degraded mode: only the network programs are pinned, and they outlive the
/// daemon until `governor unload`.
#[test]
fn host_network_enforcement_survives_the_daemon() {
    setup();
    NetScenario::new("host-pinned").check_pinned(&[]);
}

/// On this host: `--require-full` refuses, naming what is missing, before touching anything.
#[test]
fn host_require_full_refuses_without_bpf_lsm() {
    setup();
    if !lsm_refused() {
        // A host that runs BPF-LSM programs: --require-full must start, in full mode.
        let s = NetScenario::new("host-full");
        let d = s.start(&["--require-full"]);
        let log = d.logged();
        let enforcing = log.iter().find(|v| v["message"] == "enforcing");
        assert_eq!(
            enforcing.map(|v| &v["mode"]),
            Some(&"full".into()),
            "{log:#?}"
        );
        return;
    }
    let dir = scratch("net-host-require-full");
    let policy = dir.join("policy.toml");
    write(
        &policy,
        r#"
[policy]
name = "net-host-full"
owner = "kernel-tests@example.com"

[[agents]]
name = "net-host-full"
cgroup = "governor-test-net/host-require-full"

[[network]]
cidr = "127.0.0.2"
deny = ["connect"]
"#,
    );
    let out = Command::new(governor_bin())
        .args(["daemon", "--require-full", "--policy"])
        .arg(&policy)
        .output()
        .expect("spawn daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must refuse: {stderr}");
    assert!(
        stderr.contains("refusing to start: --require-full was given"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "cannot enforce {} (BPF-LSM programs)",
            lsm_class_names()
        )),
        "{stderr}"
    );
    // Refused before touching the host.
    let cg = governor_kernel_tests::net::cgroup2_root().join("governor-test-net/host-require-full");
    assert!(!cg.exists(), "{} must not be created", cg.display());
}
