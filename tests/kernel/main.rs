//! Kernel integration tests. Run inside the BPF-LSM VM by `cargo xtask test`:
//! the `lsm::` and `net::` tests on kernels with BPF-LSM active, the `no_bpf_lsm::` tests on
//! a kernel booted without it. Each test probes for what it needs and fails, never skips,
//! without it.

mod abstract_unix;
mod authority;
mod cgroups;
mod dir_cache;
mod event_identity;
mod file_classes;
mod file_delete;
mod follows_object;
mod host_gaps;
mod io_uring;
mod leases;
mod lineage_authority;
mod lineage_pipeline;
mod lineage_processes;
mod net;
mod net_leases;
mod no_bpf_lsm;
mod no_way_out;
mod pin;
mod policy_reload;
mod rollback;
mod self_protect;
mod simulate;
mod task;
mod write_cache;
