//! `governor run --agent NAME -- CMD...`: run a command inside an agent's cgroup.

use std::{os::unix::process::CommandExt, process::ExitCode};

use anyhow::Context;

use crate::{cli::RunArgs, host::cgroup::CgroupFs, policy::Policy};

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let policy = Policy::load(&args.policy)?;
    let agent = policy.agent(&args.agent).with_context(|| {
        let known: Vec<&str> = policy.agents.iter().map(|a| a.name.as_str()).collect();
        format!(
            "{}: no agent named `{}` (agents: {})",
            args.policy.display(),
            args.agent,
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )
    })?;
    let cgroups = CgroupFs::discover()?;
    cgroups.ensure(&agent.cgroup)?;
    cgroups.enter(&agent.cgroup, 0)?;
    let (program, rest) = args.command.split_first().context("no command given")?;
    // exec only returns on failure.
    let err = std::process::Command::new(program).args(rest).exec();
    Err(err).with_context(|| format!("cannot execute {}", program.to_string_lossy()))
}
