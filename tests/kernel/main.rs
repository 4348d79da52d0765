//! Kernel integration tests. Run inside the BPF-LSM VM by `cargo xtask test`:
//! the `lsm::` tests on kernels with BPF-LSM active, the `no_bpf_lsm::` tests on a kernel
//! booted without it. Each test probes for what it needs and fails, never skips, without it.

mod file_delete;
mod no_bpf_lsm;
mod task;
