//! Command-line grammar: every command, flag, default and help text, as clap parses them.
//! Each subcommand's behaviour lives in its own file under `cmd/`; the `lease` and `lineage`
//! commands' arguments are in [`lease`] and [`lineage`].
//!
//! Owns: argument structs only. May import the defaults it shows (`crate::host::dirs`,
//! `crate::kernel::pin`, `crate::signing::keys`, `crate::lineage`'s database path and time
//! grammar) and `crate::time`; nothing imports it but `cmd/` and the daemon's start-up.

use std::{ffi::OsString, path::PathBuf};

use clap::{Parser, Subcommand};

pub use self::{lease::*, lineage::*, rollback::*};
use crate::{host::dirs, logging::LogFormat, signing::keys, time};

mod lease;
mod lineage;
mod rollback;

/// Default policy location for the daemon and `governor run`.
pub const DEFAULT_POLICY: &str = "/etc/governor/policy.toml";
/// Default admin socket (in the default runtime directory).
pub const DEFAULT_SOCKET: &str = "/run/governor/governor.sock";
/// Where agents file lease requests.
pub const DEFAULT_REQUEST_SOCKET: &str = "/run/governor-requests/request.sock";

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
    /// Kill switch: revoke the agents' leases and freeze their cgroups (or kill every task
    /// in them with --kill), in one step; reports the time to enforcement.
    Halt(HaltArgs),
    /// Undo a halt: thaw the agents' cgroups; they may take leases again.
    Resume(ResumeArgs),
    /// Undo leases: restore their targets from the snapshots taken before they took effect
    /// (content, metadata, links; files they created are removed).
    Rollback(RollbackArgs),
    /// Re-decide the agents' recorded operations under a candidate policy, and report what
    /// it would deny, lease or allow that the policy they were recorded under did not.
    Simulate(SimulateArgs),
    /// From inside an agent: ask the operators for a lease (grants nothing by itself).
    Request(RequestArgs),
    /// Operator signing keys: generate one, list the trusted ones.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Signed, time-limited leases that let an agent do what the policy leases.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// The lineage database: what agents did and were refused, which processes did it,
    /// under which lease and policy. Reads it while the daemon writes.
    #[command(subcommand)]
    Lineage(LineageCommand),
}

/// Which agents a halt or resume is for.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct AgentSelect {
    /// One agent, by name.
    #[arg(long)]
    pub agent: Option<String>,
    /// Every agent of the policy.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct HaltArgs {
    #[command(flatten)]
    pub which: AgentSelect,
    /// Kill every task in the agents' cgroups (cgroup.kill) instead of freezing them.
    #[arg(long)]
    pub kill: bool,
    /// Then restore the snapshots of the leases the halt revokes: the kill switch with its
    /// reversal path, in one step.
    #[arg(long)]
    pub rollback: bool,
    /// Why (recorded with the halt).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub conn: AdminConn,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub which: AgentSelect,
    #[command(flatten)]
    pub conn: AdminConn,
}

#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// The class asked for, as the policy names it (delete, write, exec, connect, ...).
    #[arg(long)]
    pub class: String,
    /// What it is for: a file or directory path (or, for network classes, the rule).
    #[arg(long)]
    pub target: String,
    /// Why the agent needs it (shown to the operators).
    #[arg(long)]
    pub reason: String,
    /// How long a lease it asks for ("90s", "15m", "2h"; at most the agent's max_lease_ttl).
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: Option<u64>,
    /// Wait up to this long for an operator's decision ("5m"), printing it. Exit code 3:
    /// rejected; 4: still undecided.
    #[arg(long, value_parser = parse_ttl)]
    pub wait: Option<u64>,
    /// Print the daemon's replies as JSON.
    #[arg(long)]
    pub json: bool,
    /// The request socket.
    #[arg(long, default_value = DEFAULT_REQUEST_SOCKET)]
    pub socket: PathBuf,
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
    #[arg(long, default_value = dirs::DEFAULT_STATE)]
    pub state_dir: PathBuf,
    /// governor's configuration and trusted-keys directory (created if missing; always
    /// protected from agents).
    #[arg(long, default_value = dirs::DEFAULT_CONFIG)]
    pub config_dir: PathBuf,
    /// governor's runtime directory, home of the admin socket `governor.sock` (created if
    /// missing; always protected from agents, unix-connect included).
    #[arg(long, default_value = dirs::DEFAULT_RUNTIME)]
    pub runtime_dir: PathBuf,
    /// Directory of the request socket `request.sock`, where agents file lease requests
    /// (created if missing; protected from agents for every file class, but they may connect).
    #[arg(long, default_value = dirs::DEFAULT_REQUESTS)]
    pub request_dir: PathBuf,
    /// Directory of the trusted operator keys (`*.pub`); default: `trusted-keys` in the
    /// configuration directory.
    #[arg(long)]
    pub trusted_keys: Option<PathBuf>,
    /// The lineage database (every decision, lease, halt...; created if missing); default:
    /// `lineage.db` in the state directory.
    #[arg(long)]
    pub lineage_db: Option<PathBuf>,
    /// Prune lineage rows older than this ("30d", "12h"), at start and hourly; rows an
    /// unexpired lease refers to are kept. Default: keep everything.
    #[arg(long, value_parser = parse_ttl, value_name = "DURATION")]
    pub retain: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct UnloadArgs {
    /// The daemon's pin directory.
    #[arg(long, default_value = crate::kernel::pin::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

impl DaemonArgs {
    /// governor's own directories, as given.
    pub fn own_dirs(&self) -> dirs::OwnDirs {
        dirs::OwnDirs {
            state: self.state_dir.clone(),
            config: self.config_dir.clone(),
            runtime: self.runtime_dir.clone(),
            bpffs: self.pin_dir.clone(),
            requests: self.request_dir.clone(),
        }
    }

    /// The lineage database's file.
    pub fn lineage_db(&self) -> PathBuf {
        self.lineage_db
            .clone()
            .unwrap_or_else(|| self.state_dir.join("lineage.db"))
    }

    /// The trusted operator keys' directory.
    pub fn trusted_dir(&self) -> PathBuf {
        self.trusted_keys
            .clone()
            .unwrap_or_else(|| self.config_dir.join("trusted-keys"))
    }
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub conn: AdminConn,
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
    /// Make the running daemon re-read its policy file (or FILE) and enforce it, atomically:
    /// a policy that fails any check changes nothing (SIGHUP to the daemon does the same).
    Reload(PolicyReloadArgs),
}

#[derive(Debug, clap::Args)]
pub struct PolicyReloadArgs {
    /// Enforce this policy file instead of the daemon's own; it becomes the daemon's policy
    /// file for later reloads.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// First show what the new policy would have decided differently over the last day of
    /// the lineage (`governor simulate --since 1d`), then reload.
    #[arg(long, requires = "policy")]
    pub simulate: bool,
    /// The lineage database --simulate reads.
    #[arg(long, value_name = "PATH", default_value = lineage::DEFAULT_LINEAGE_DB)]
    pub db: PathBuf,
    #[command(flatten)]
    pub conn: AdminConn,
}

#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an ed25519 key pair: the secret key (mode 0600) and its self-signed public key
    /// in the trusted-keys directory. Prints the key id (its fingerprint) and both paths.
    Generate(KeyGenerateArgs),
    /// List the trusted keys (id, operator, file) and every problem with the directory's
    /// files. Exits 1 if there is any problem.
    List(KeyListArgs),
    /// Have the running daemon protect a secret key file on this host from agents (every
    /// access, reads included), now and after restarts. `key generate` does it for the keys
    /// it makes while a daemon runs; keys belong on a machine where no agent runs.
    Protect(KeyProtectArgs),
}

#[derive(Debug, clap::Args)]
pub struct KeyProtectArgs {
    /// The secret key file.
    pub file: PathBuf,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct KeyGenerateArgs {
    /// Who holds the key: "Name <email>" or an email address. Signed into the public key.
    #[arg(long)]
    pub operator: String,
    /// Directory for the secret key `<id>.key` [default: $GOVERNOR_KEY_DIR, else
    /// ~/.config/governor/keys]. Created mode 0700 if missing.
    #[arg(long, value_name = "DIR")]
    pub secret_dir: Option<PathBuf>,
    /// Directory for the public key `<id>.pub` (created mode 0755 if missing).
    #[arg(long, value_name = "DIR", default_value = keys::DEFAULT_TRUSTED_DIR)]
    pub trusted_dir: PathBuf,
    /// The admin socket of a daemon on this host, if one runs: the command warns that keys
    /// belong off the host, and has the daemon protect the new secret key from agents.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct KeyListArgs {
    /// Show only the key whose id starts with this (at least 8 hex digits).
    pub id: Option<String>,
    /// The trusted-keys directory.
    #[arg(long, value_name = "DIR", default_value = keys::DEFAULT_TRUSTED_DIR)]
    pub trusted_dir: PathBuf,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn parse_ttl(text: &str) -> Result<u64, String> {
    time::parse_positive_duration(text).map_err(|e| e.to_string())
}

pub(crate) fn parse_time(text: &str) -> Result<u64, String> {
    time::parse_rfc3339(text).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The candidate policy file (checked as `governor policy check` does, and compiled
    /// against this host's files).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    #[command(flatten)]
    pub window: lineage::LineageWindow,
    #[command(flatten)]
    pub out: lineage::LineageDbArgs,
}
