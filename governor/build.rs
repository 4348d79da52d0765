//! Builds the eBPF programs (`governor-ebpf`) for the BPF target with aya-build and leaves the
//! object in OUT_DIR, where `src/kernel/loader.rs` embeds it with `include_bytes_aligned!`.
//!
//! Needs the nightly toolchain with rust-src and bpf-linker; `cargo xtask setup` installs them.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("..").join("governor-ebpf");
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    let package = aya_build::Package {
        name: "governor-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
