//! Everything that talks to the kernel: BTF, preflight checks, loading the programs, maps and
//! the event and process streams.
//!
//! May import only `crate::host` and `crate::policy` (what to load into the maps). The
//! streams hand their records to channels and traits ([`events`]' channel,
//! [`procs::ProcSink`]) that the daemon wires to the log and the lineage: `kernel/` never
//! imports `lineage/`, `leases/` or `daemon/`.

pub mod btf;
pub mod coverage;
pub mod events;
pub mod generation;
pub mod inherit;
pub mod loader;
pub mod mounts;
pub mod net;
pub mod offsets;
pub mod orphans;
pub mod pin;
pub mod pin_lock;
pub mod preflight;
pub mod procs;
pub mod rings;
pub mod tree_seqs;
