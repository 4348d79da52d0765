//! `governor unload`: the explicit way to end enforcement. Removes every pin a daemon left in
//! its pin directory (links first), waits until their links have left the kernel, and removes
//! the directory. Stopping the daemon does not do this: enforcement is meant to outlive it.

use std::process::ExitCode;

use crate::{
    cli::UnloadArgs,
    kernel::pin::{PinDir, Previous},
};

pub fn run(args: UnloadArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.pin_dir;
    let Some(pins) = PinDir::open_existing(dir)? else {
        println!(
            "nothing pinned at {}: no enforcement to remove",
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(holder) = pins.lock_bypassed() {
        println!(
            "the pin directory's lock was held by {holder}, which is not a governor daemon; \
             unloading all the same"
        );
    }
    let what = match &pins.previous {
        Previous::Empty => None,
        Previous::Governor(m) => Some(format!(
            "generation {} (governor {}, build {}, pinned by pid {}: {} BPF-LSM and {} network links)",
            m.generation, m.version, m.build, m.pid, m.lsm, m.net
        )),
        Previous::Unknown { reason, entries } => Some(format!(
            "{entries} entries without a manifest this governor reads ({reason})"
        )),
    };
    let removed = pins.unload()?;
    match what {
        None => println!(
            "nothing pinned at {}: removed the empty directory",
            dir.display()
        ),
        Some(what) => println!(
            "unloaded {what} from {}: {} links detached, removed {}; agents are no longer \
             restricted",
            dir.display(),
            removed.links,
            removed.entries.join(", ")
        ),
    }
    Ok(ExitCode::SUCCESS)
}
