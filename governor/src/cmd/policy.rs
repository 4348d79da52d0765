//! `governor policy check FILE...`: validate policies, print every problem.

use std::process::ExitCode;

use crate::{cli::PolicyCommand, policy::Policy};

pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Check { files } => {
            let mut failed = false;
            for file in &files {
                match Policy::load(file) {
                    Ok(p) => println!(
                        "{}: ok (policy `{}`, owner {}, {} agents, {} protected paths, \
                         {} network rules, {} binaries)",
                        file.display(),
                        p.name,
                        p.owner,
                        p.agents.len(),
                        p.protected.len(),
                        p.network.len(),
                        p.binaries.len()
                    ),
                    Err(e) => {
                        failed = true;
                        eprintln!("{e}");
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
