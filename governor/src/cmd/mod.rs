//! Dispatch from the parsed command line to one file per subcommand. Each is thin: its
//! arguments, one call (to the daemon over [`crate::admin::client`], to [`crate::daemon`], or
//! to a library module), and the rendering of the answer; replies are read as
//! [`crate::api`]'s types.
//!
//! May import everything: it is the top of the house. Nothing imports it but `main.rs`.

mod daemon;
mod halt;
mod key;
mod lease;
mod lineage;
mod policy;
mod policy_reload;
mod preflight;
mod request;
mod rollback;
mod run;
mod simulate;
mod status;
mod unload;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Daemon(args) => daemon::run(args),
        Command::Run(args) => run::run(args),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Preflight(args) => preflight::run(args),
        Command::Status(args) => status::run(args),
        Command::Unload(args) => unload::run(args),
        Command::Halt(args) => halt::halt(args),
        Command::Resume(args) => halt::resume(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Request(args) => request::run(args),
        Command::Rollback(args) => rollback::run(args),
        Command::Key(cmd) => key::run(cmd),
        Command::Lease(cmd) => lease::run(cmd),
        Command::Lineage(cmd) => lineage::run(cmd),
    }
}
