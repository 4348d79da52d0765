//! Empty library target: lets `governor/build.rs` depend on this package so cargo tracks it.
//! The programs themselves are the `governor` binary target (src/main.rs), built for BPF.
#![no_std]
