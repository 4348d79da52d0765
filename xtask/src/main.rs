//! Developer tasks for governor (`cargo xtask <subcommand>`): tool set-up, a QEMU runner
//! that executes commands under a BPF-LSM capable kernel, tests, demo and benchmarks. Each
//! subcommand lives in its own module; add new ones to [`Task`].

mod accel;
mod bench;
mod bench_flood;
mod bench_ingest;
mod bench_lineage;
mod cmd;
mod demo;
mod guest;
mod initramfs;
mod kernels;
mod modules;
mod qemu;
mod setup;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "governor developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install everything needed to build and test (apt packages,
    /// bpf-linker, nightly rust-src, guest kernels); idempotent.
    Setup,
    /// Run a command as root in a QEMU guest (BPF-LSM enabled kernel).
    Vm(vm::VmArgs),
    /// Run every test: host unit tests, then kernel tests in VMs (6.12, 6.1, no BPF-LSM).
    Test(test::TestArgs),
    /// The demo: an agent tries to wipe a protected directory on a real BPF-LSM kernel.
    Demo(demo::DemoArgs),
    /// Benchmarks (enforcement overhead) in one VM boot; fails if a target is missed.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen task; returns the process exit code.
fn run() -> anyhow::Result<i32> {
    match Cli::parse().task {
        Task::Setup => setup::ensure_all().map(|()| 0),
        Task::Vm(args) => vm::cli(args),
        Task::Test(args) => test::run(args),
        Task::Demo(args) => demo::run(args),
        Task::Bench(args) => bench::run(args),
    }
}
