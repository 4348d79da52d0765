//! Leases and agents' own decisions on `[[network]]` rules, on BPF-LSM kernels with the
//! daemon in full mode (`--require-full`). The scenario is shared with the host tier and the
//! VM booted without BPF-LSM: `governor_kernel_tests::net_lease`.

use governor_kernel_tests::{net_lease::NetLeaseScenario, require_bpf_lsm};

#[test]
fn net_leases_grant_exactly_agent_class_and_rule() {
    require_bpf_lsm();
    let s = NetLeaseScenario::new("vm-lease");
    let d = s.start(&["--require-full"]);
    s.check_all(&d);
}
