//! governor's benchmarks: the host-testable half (statistics, the report, the generated
//! policy). The driver binary (`src/main.rs`) runs inside the BPF-LSM VM, started by
//! `cargo xtask bench`, and measures each benchmark group with governor attached and not.

pub mod policy;
pub mod report;
pub mod stats;

/// Prefix of the one output line that carries the machine-readable report; `cargo xtask
/// bench` picks it out of the guest's output and writes it under `target/`.
pub const JSON_MARKER: &str = "GOVERNOR-BENCH-JSON: ";
