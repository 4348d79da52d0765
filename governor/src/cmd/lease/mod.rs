//! `governor lease ...`: one file per subcommand. `issue`, `cosign` and `show` work on
//! files, offline.

mod cosign;
mod issue;
mod show;

use std::process::ExitCode;

use crate::cli::LeaseCommand;

pub fn run(cmd: LeaseCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LeaseCommand::Issue(args) => issue::run(args),
        LeaseCommand::Cosign(args) => cosign::run(args),
        LeaseCommand::Show(args) => show::run(args),
    }
}
