//! Command-line grammar. Each subcommand's behaviour lives in its own file under `cmd/`.

use std::{ffi::OsString, path::PathBuf};

use clap::{Parser, Subcommand};

use crate::{logging::LogFormat, own_dirs};

/// Default policy location for the daemon and `governor run`.
pub const DEFAULT_POLICY: &str = "/etc/governor/policy.toml";
/// Default admin socket (in the default runtime directory).
pub const DEFAULT_SOCKET: &str = "/run/governor/governor.sock";

#[derive(Debug, Parser)]
#[command(name = "governor", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the kernel programs and enforce a policy. Enforcement is pinned: it stays when the
    /// daemon stops (SIGINT/SIGTERM) or dies, and the next daemon replaces it without a gap.
    Daemon(DaemonArgs),
    /// Remove pinned enforcement: detach every program a daemon left pinned. Refuses while a
    /// daemon runs on the pin directory (stop it first).
    Unload(UnloadArgs),
    /// Run a command inside an agent's cgroup (created if missing).
    Run(RunArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show what this kernel offers governor (BPF-LSM, BTF, lockdown).
    Preflight(PreflightArgs),
    /// Ask the running daemon what it enforces, and its counters.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Policy file to enforce.
    #[arg(long, default_value = DEFAULT_POLICY)]
    pub policy: PathBuf,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Create this file once enforcement is active (for supervisors and tests).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Refuse to start unless every program family loads: BPF-LSM (file classes) and cgroup
    /// sock_addr (network classes). Without it, the daemon starts with what this kernel
    /// allows, warns which classes it does not enforce, and refuses only if nothing the
    /// policy denies can be enforced.
    #[arg(long)]
    pub require_full: bool,
    /// Directory on a bpf filesystem for the pinned links, programs and maps (governor owns
    /// everything in it). If bpffs is not mounted on /sys/fs/bpf and the directory lies below
    /// it, the daemon mounts it.
    #[arg(long, default_value = crate::kernel::pin::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// A uid, besides root, that may use the admin socket (repeat for more). Tasks in agent
    /// cgroups are refused whatever their uid.
    #[arg(long = "admin-uid", value_name = "UID")]
    pub admin_uids: Vec<u32>,
    /// governor's state directory (created if missing; always protected from agents).
    #[arg(long, default_value = own_dirs::DEFAULT_STATE)]
    pub state_dir: PathBuf,
    /// governor's configuration and trusted-keys directory (created if missing; always
    /// protected from agents).
    #[arg(long, default_value = own_dirs::DEFAULT_CONFIG)]
    pub config_dir: PathBuf,
    /// governor's runtime directory, home of the admin socket `governor.sock` (created if
    /// missing; always protected from agents, unix-connect included).
    #[arg(long, default_value = own_dirs::DEFAULT_RUNTIME)]
    pub runtime_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct UnloadArgs {
    /// The daemon's pin directory.
    #[arg(long, default_value = crate::kernel::pin::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

impl DaemonArgs {
    /// governor's own directories, as given.
    pub fn own_dirs(&self) -> own_dirs::OwnDirs {
        own_dirs::OwnDirs {
            state: self.state_dir.clone(),
            config: self.config_dir.clone(),
            runtime: self.runtime_dir.clone(),
            bpffs: self.pin_dir.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Agent name from the policy.
    #[arg(long)]
    pub agent: String,
    /// Policy file defining the agent.
    #[arg(long, default_value = DEFAULT_POLICY)]
    pub policy: PathBuf,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files; prints every problem with file, line and field.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}
