//! governor: stops AI agents from doing irreversible damage.
//!
//! BPF-LSM programs refuse destructive operations coming from agent-owned cgroups; this binary
//! is both the daemon that loads and feeds them and the operator's CLI.

mod admin;
mod cgroup;
mod cli;
mod cmd;
mod kernel;
mod logging;
mod own_dirs;
mod policy;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("governor: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
