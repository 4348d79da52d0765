//! `governor halt` and `governor resume`: the kill switch, over the admin socket.

use std::process::ExitCode;

use crate::{
    admin::client,
    api::{
        protocol::{Agents, Request},
        reply::{self, Halted, Resumed},
    },
    cli::{AgentSelect, HaltArgs, ResumeArgs},
    leases::clock,
};

fn agents(which: &AgentSelect) -> Agents {
    match &which.agent {
        Some(name) => Agents::One(name.clone()),
        None => Agents::All,
    }
}

pub fn halt(args: HaltArgs) -> anyhow::Result<ExitCode> {
    // The kill switch runs ahead of whatever loads the host (an agent's flood included):
    // best effort, an unprivileged operator keeps their priority.
    // SAFETY: plain setpriority(2) on this process.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) };
    let result = client::call_stamped(&args.conn.socket, || Request::Halt {
        agents: agents(&args.which),
        kill: args.kill,
        reason: args.reason.clone(),
        // Stamped as it is sent: the daemon counts its times from here.
        sent_boot_ns: Some(clock::boot_ns()),
        rollback: args.rollback,
    })?;
    if args.conn.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Halted {
        halts,
        queued_us,
        rolled_back,
        not_rolled_back,
        ..
    } = reply::read("halt", result)?;
    if halts.is_empty() {
        println!("no agents to halt");
    }
    for h in &halts {
        let revoked = &h.revoked;
        println!(
            "halted {}: {} leases revoked{}; cgroup {} {:.3} ms after the command was sent \
             ({:.3} ms of it before the daemon read it)",
            h.agent,
            revoked.len(),
            if revoked.is_empty() {
                String::new()
            } else {
                format!(" ({})", revoked.join(", "))
            },
            if args.kill { "emptied" } else { "frozen" },
            h.enforced_in_us as f64 / 1000.0,
            queued_us as f64 / 1000.0
        );
    }
    for r in &rolled_back {
        super::rollback::print_restore(r);
        super::rollback::print_left(r);
    }
    for n in &not_rolled_back {
        eprintln!("governor: lease {} not rolled back: {}", n.lease, n.why);
    }
    let partial = rolled_back
        .iter()
        .any(|r| !r.conflicts.is_empty() || !r.failed.is_empty());
    Ok(if partial || !not_rolled_back.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn resume(args: ResumeArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(
        &args.conn.socket,
        &Request::Resume {
            agents: agents(&args.which),
        },
    )?;
    if args.conn.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Resumed { resumed, .. } = reply::read("resume", result)?;
    if resumed.is_empty() {
        println!("no halted agents");
    } else {
        println!("resumed {}", resumed.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
