//! Empty library target: lets `governor/build.rs` depend on this package so cargo tracks it
//! (a change to any program rebuilds the daemon, which embeds the object). The crate's
//! programs are its `governor` binary target (src/main.rs, whose module doc maps them), built
//! for BPF; nothing here is linked into userspace.
#![no_std]
