//! `governor daemon`: runs the daemon ([`crate::daemon`]) until SIGINT/SIGTERM.

use std::process::ExitCode;

use crate::cli::DaemonArgs;

pub fn run(args: DaemonArgs) -> anyhow::Result<ExitCode> {
    crate::daemon::run(args)
}
