//! `governor lease ...`: one file per subcommand. `issue`, `cosign` and `show` work on
//! files, offline; `submit`, `list`, `revoke`, `pending`, `approve` and `reject` ask the
//! running daemon over its admin socket.
//!
//! Owns the `lease` subcommands' parsing-to-rendering glue. May import any folder below
//! `cmd/` (the order in `main.rs`); nothing imports it but `cmd/mod.rs`.

mod approve;
mod cosign;
mod issue;
mod list;
mod pending;
mod reject;
mod revoke;
mod show;
mod submit;
mod view;

use std::process::ExitCode;

use crate::cli::LeaseCommand;

pub fn run(cmd: LeaseCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LeaseCommand::Issue(args) => issue::run(args),
        LeaseCommand::Cosign(args) => cosign::run(args),
        LeaseCommand::Show(args) => show::run(args),
        LeaseCommand::Submit(args) => submit::run(args),
        LeaseCommand::List(args) => list::run(args),
        LeaseCommand::Revoke(args) => revoke::run(args),
        LeaseCommand::Pending(args) => pending::run(args),
        LeaseCommand::Approve(args) => approve::run(args),
        LeaseCommand::Reject(args) => reject::run(args),
    }
}
