//! On a kernel booted without BPF-LSM, the daemon refuses to start and says how to fix it.
//! `cargo xtask test` runs these in a VM booted with an `lsm=` list that omits `bpf`.

use std::process::Command;

use governor_kernel_tests::{governor_bin, policy, scratch, write};

#[test]
fn no_bpf_lsm_daemon_refuses_with_instructions() {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    assert!(
        !lsm.is_empty() && !lsm.split(',').any(|l| l.trim() == "bpf"),
        "this test needs a kernel booted WITHOUT bpf in lsm= (found {lsm:?}); \
         `cargo xtask test` provides one"
    );
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
    // It did not touch the host: no agent cgroup was created.
    assert!(!std::path::Path::new("/sys/fs/cgroup/governor-test/a").exists());

    let out = Command::new(governor_bin())
        .arg("preflight")
        .output()
        .expect("preflight");
    assert!(!out.status.success(), "preflight must report failure");
}
