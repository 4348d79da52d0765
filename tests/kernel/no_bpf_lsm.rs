//! On a kernel booted without BPF-LSM, the daemon refuses to start when nothing the policy
//! denies can be enforced (file classes only), and says how to fix it; with network rules it
//! starts in degraded mode and enforces them, unless `--require-full` is given.
//! `cargo xtask test` runs these in a VM booted with an `lsm=` list that omits `bpf`.

use std::process::Command;

use governor_kernel_tests::{
    governor_bin, lsm_class_names, net::NetScenario, net_lease::NetLeaseScenario, policy, scratch,
    write, NET_CLASS_NAMES,
};

fn require_no_bpf_lsm() {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    assert!(
        !lsm.is_empty() && !lsm.split(',').any(|l| l.trim() == "bpf"),
        "this test needs a kernel booted WITHOUT bpf in lsm= (found {lsm:?}); \
         `cargo xtask test` provides one"
    );
}

#[test]
fn no_bpf_lsm_daemon_refuses_with_instructions() {
    require_no_bpf_lsm();
    let dir = scratch("no-bpf-lsm");
    write(&dir.join("prod/x"), "x");
    write(
        &dir.join("policy.toml"),
        &policy("a", "enforce", &dir.join("prod")),
    );
    let out = Command::new(governor_bin())
        .args(["daemon", "--policy"])
        .arg(dir.join("policy.toml"))
        .output()
        .expect("spawn daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "daemon must refuse: {stderr}");
    assert!(stderr.contains("BPF-LSM is not active"), "{stderr}");
    assert!(
        stderr.contains(",bpf`"),
        "must suggest an lsm= list with bpf: {stderr}"
    );
    assert!(stderr.contains("will not pretend"), "{stderr}");
    // It did not touch the host: no agent cgroup was created, nothing was pinned.
    assert!(!std::path::Path::new("/sys/fs/cgroup/governor-test/a").exists());
    assert!(!std::path::Path::new(governor_kernel_tests::DEFAULT_PIN_DIR).exists());

    let out = Command::new(governor_bin())
        .arg("preflight")
        .output()
        .expect("preflight");
    assert!(!out.status.success(), "preflight must report failure");
}

#[test]
fn no_bpf_lsm_network_enforced_in_degraded_mode() {
    require_no_bpf_lsm();
    let s = NetScenario::new("no-lsm");
    let d = s.start(&[]);
    let log = d.logged();
    // Every class but the network ones: file, exec, process and host-wide classes.
    let lsm = lsm_class_names();
    let warn = log
        .iter()
        .find(|v| v["level"] == "WARN" && v["not_enforced"] == lsm.as_str())
        .unwrap_or_else(|| panic!("a WARN naming the classes not enforced ({lsm}): {log:#?}"));
    let reason = warn["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("BPF-LSM is not active"), "{warn}");
    let enforcing = log
        .iter()
        .find(|v| v["message"] == "enforcing")
        .expect("an `enforcing` line");
    assert_eq!(enforcing["mode"], "degraded", "{enforcing}");
    assert_eq!(enforcing["enforced"], NET_CLASS_NAMES, "{enforcing}");
    assert_eq!(enforcing["not_enforced"], lsm.as_str(), "{enforcing}");
    s.check_all(&d, true);
    drop(d);
    // Degraded mode pins too: only network links, and they outlive the daemon.
    NetScenario::new("no-lsm-pinned").check_pinned(&[]);
}

#[test]
fn no_bpf_lsm_network_leases_in_degraded_mode() {
    require_no_bpf_lsm();
    let s = NetLeaseScenario::new("no-lsm-lease");
    let d = s.start(&[]);
    assert_eq!(d.wait_logged("enforcing")["mode"], "degraded");
    s.check_all(&d);
}

#[test]
fn no_bpf_lsm_require_full_refuses() {
    require_no_bpf_lsm();
    let s = NetScenario::new("no-lsm-full");
    write(&s.dir.join("policy.toml"), &s.policy());
    let out = Command::new(governor_bin())
        .args(["daemon", "--require-full", "--policy"])
        .arg(s.dir.join("policy.toml"))
        .output()
        .expect("spawn daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "daemon must refuse: {stderr}");
    assert!(
        stderr.contains("refusing to start: --require-full was given"),
        "{stderr}"
    );
    assert!(stderr.contains("BPF-LSM is not active"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot enforce {} (BPF-LSM programs)",
            lsm_class_names()
        )),
        "{stderr}"
    );
    assert!(
        !governor_kernel_tests::net::cgroup2_root()
            .join(&s.cgroup_parent)
            .exists(),
        "refused before creating agent cgroups"
    );
}
