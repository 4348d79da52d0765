//! `cargo xtask demo`: the main job. Boots a BPF-LSM kernel and runs the narrated scenario in
//! xtask/scripts/demo.sh on policies/demo.toml: an agent shell tries to wipe a protected
//! production directory and is denied; the same command outside the agent cgroup succeeds.

use anyhow::Result;

use crate::{
    kernels::Series,
    setup,
    vm::{self, VmRun},
};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Guest kernel series.
    #[arg(long, value_enum, default_value_t = Series::V6_12)]
    pub kernel: Series,
}

pub fn run(args: DemoArgs) -> Result<i32> {
    setup::ensure_all()?;
    let bin_dir = vm::build_governor(false)?;
    let mut run = VmRun::new(args.kernel, ["sh", "xtask/scripts/demo.sh"]);
    run.cwd = Some(vm::workspace_root().to_path_buf());
    run.path_prepend.push(bin_dir);
    vm::run_in_vm(&run)
}
