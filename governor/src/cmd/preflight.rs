//! `governor preflight`: what this kernel offers governor.

use std::process::ExitCode;

use crate::{
    cli::PreflightArgs,
    kernel::{btf::Btf, loader::Enforcer, offsets, preflight::Capabilities},
};

pub fn run(args: PreflightArgs) -> anyhow::Result<ExitCode> {
    let caps = Capabilities::probe();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&caps)?);
    } else {
        println!("kernel:   {}", caps.kernel_release);
        println!(
            "LSMs:     {}",
            caps.lsms
                .as_ref()
                .map_or("unreadable".to_owned(), |l| l.join(","))
        );
        println!("BTF:      {}", if caps.btf { "yes" } else { "no" });
        println!(
            "lockdown: {}",
            caps.lockdown.as_deref().unwrap_or("unknown")
        );
    }
    match probe_enforcement(&caps) {
        Ok(()) => {
            println!("BPF-LSM programs load and attach: governor can enforce here");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("governor: cannot enforce here: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The real test: load and attach the programs with empty maps (no agent is affected), then
/// detach them again.
fn probe_enforcement(caps: &Capabilities) -> anyhow::Result<()> {
    caps.require_bpf_lsm()?;
    let btf = Btf::from_sys_fs()?;
    let mut enforcer = Enforcer::load(&offsets::resolve(&btf)?)?;
    enforcer.attach()?;
    Ok(())
}
