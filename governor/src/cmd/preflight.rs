//! `governor preflight`: what this kernel offers governor.

use std::process::ExitCode;

use crate::{
    cli::PreflightArgs,
    kernel::{
        btf::Btf, coverage, loader::Enforcer, net, offsets, preflight::Capabilities, tree_seqs,
    },
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
    let (lsm, net) = probe_enforcement(&caps);
    let lsm_classes = coverage::class_list(coverage::LSM_CLASSES);
    let net_classes = coverage::class_list(coverage::NET_CLASSES);
    match &lsm {
        Ok(()) => println!("BPF-LSM:  programs load and attach: {lsm_classes} enforceable"),
        Err(e) => eprintln!("governor: BPF-LSM: cannot enforce {lsm_classes} here: {e:#}"),
    }
    match &net {
        Ok(()) => println!("network:  cgroup sock_addr programs load: {net_classes} enforceable"),
        Err(e) => eprintln!("governor: network: cannot enforce {net_classes} here: {e:#}"),
    }
    match (&lsm, &net) {
        (Ok(()), Ok(())) => {
            println!("governor can enforce here");
            Ok(ExitCode::SUCCESS)
        }
        (Err(_), Err(_)) => {
            eprintln!("governor: cannot enforce here");
            Ok(ExitCode::FAILURE)
        }
        _ => {
            eprintln!(
                "governor: only partly enforceable here: `governor daemon` would run in degraded \
                 mode (or refuse with --require-full)"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The real test: load and attach the LSM programs with empty maps (no agent is affected),
/// and load the network programs (they are attached to agent cgroups only); then drop it all.
fn probe_enforcement(caps: &Capabilities) -> (anyhow::Result<()>, anyhow::Result<()>) {
    let opened = (|| -> anyhow::Result<Enforcer> {
        caps.require_btf()?;
        let btf = Btf::from_sys_fs()?;
        // Without the sequence addresses the programs load the same and only keep nothing.
        let seqs = tree_seqs::resolve(&btf).unwrap_or_default();
        Ok(Enforcer::open(
            &offsets::resolve(&btf)?,
            &net::offsets(&btf),
            &seqs,
        )?)
    })();
    let mut enforcer = match opened {
        Ok(e) => e,
        Err(e) => return (Err(anyhow::anyhow!("{e:#}")), Err(e)),
    };
    let lsm = (|| -> anyhow::Result<()> {
        caps.require_bpf_lsm()?;
        enforcer.load_lsm()?;
        enforcer.attach()?;
        Ok(())
    })();
    let net = net::load(&mut enforcer).map_err(anyhow::Error::from);
    (lsm, net)
}
