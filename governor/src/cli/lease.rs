//! The `lease` commands' arguments.

use std::path::PathBuf;

use clap::Subcommand;

use super::{parse_time, parse_ttl, AdminConn};
use crate::signing::keys;

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Write a new lease signed by your key (the issuer). Offline: nothing is granted until
    /// the daemon accepts it.
    Issue(LeaseIssueArgs),
    /// Add your approval (signature) to a lease, after showing what it grants.
    Cosign(LeaseCosignArgs),
    /// Show a lease file: what it grants, when, whether each signature verifies against the
    /// trusted keys, and whether the lease passes the daemon's checks on this host now
    /// (given the policy's --approvals and --max-ttl). Exits 1 if it does not.
    Show(LeaseShowArgs),
    /// Hand a signed lease to the running daemon: it checks signatures, approvals, TTL,
    /// host and replay, installs it in the kernel, and reports when it is enforced.
    Submit(LeaseSubmitArgs),
    /// The daemon's leases: the live ones with the time left (--all: every one on record).
    List(LeaseListArgs),
    /// Revoke a lease: its kernel entries go at once.
    Revoke(LeaseRevokeArgs),
    /// Agents' lease requests waiting for an operator.
    Pending(LeasePendingArgs),
    /// Answer an agent's request with a lease signed by your key (pinned to the target as it
    /// is now), and submit it.
    Approve(LeaseApproveArgs),
    /// Turn an agent's request down.
    Reject(LeaseRejectArgs),
}

#[derive(Debug, clap::Args)]
pub struct LeaseSubmitArgs {
    /// The signed lease file.
    pub file: PathBuf,
    #[command(flatten)]
    pub conn: AdminConn,
}

#[derive(Debug, clap::Args)]
pub struct LeaseListArgs {
    /// Every lease on record (expired, revoked, dropped too).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub conn: AdminConn,
}

#[derive(Debug, clap::Args)]
pub struct LeaseRevokeArgs {
    /// The lease id.
    pub id: String,
    /// Why (recorded).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub conn: AdminConn,
}

#[derive(Debug, clap::Args)]
pub struct LeasePendingArgs {
    /// Decided requests too.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub conn: AdminConn,
}

#[derive(Debug, clap::Args)]
pub struct LeaseApproveArgs {
    /// The request id (`governor lease pending`).
    pub id: String,
    /// Your secret key file.
    #[arg(long, value_name = "SECRET")]
    pub key: PathBuf,
    /// How long the lease lasts [default: what the agent asked for].
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: Option<u64>,
    /// A ticket or change id.
    #[arg(long)]
    pub ticket: Option<String>,
    /// Also write the signed lease here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub conn: AdminConn,
}

#[derive(Debug, clap::Args)]
pub struct LeaseRejectArgs {
    /// The request id.
    pub id: String,
    /// Why (the agent sees it).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub conn: AdminConn,
}

#[derive(Debug, clap::Args)]
pub struct LeaseIssueArgs {
    /// Your secret key file.
    #[arg(long, value_name = "SECRET")]
    pub key: PathBuf,
    /// The agent the lease is for (its name in the policy).
    #[arg(long)]
    pub agent: String,
    /// CLASS:TARGET, split at the first `:`; TARGET is an absolute path or
    /// ADDR[/PREFIX][:PORT] ([::1]:5432 for IPv6 with a port). Repeat for more.
    #[arg(long = "scope", value_name = "CLASS:TARGET", required = true)]
    pub scopes: Vec<String>,
    /// Pin every path target to the file it is now (device and inode), so a file swapped in
    /// later at the same path is not covered.
    #[arg(long)]
    pub pin: bool,
    /// How long it lasts: 90s, 15m, 2h, 1d. The daemon refuses more than the policy's
    /// maximum for the agent.
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: u64,
    /// When it starts (RFC 3339, e.g. 2026-11-21T19:40:00Z) [default: now].
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub not_before: Option<u64>,
    /// Why the agent needs it (recorded and signed).
    #[arg(long)]
    pub reason: String,
    /// A ticket or change id.
    #[arg(long)]
    pub ticket: Option<String>,
    /// The agent request this lease answers.
    #[arg(long)]
    pub request: Option<String>,
    /// The host it is valid on: a machine id (/etc/machine-id), or `this`.
    #[arg(long, value_name = "MACHINE_ID|this", default_value = "this")]
    pub host: String,
    /// Where to write it [default: stdout].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct LeaseCosignArgs {
    /// The lease file.
    pub file: PathBuf,
    /// Your secret key file.
    #[arg(long, value_name = "SECRET")]
    pub key: PathBuf,
    /// Where to write the cosigned lease [default: replace FILE atomically].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Trusted keys, to check the signatures already on the lease before adding yours.
    #[arg(long, value_name = "DIR", default_value = keys::DEFAULT_TRUSTED_DIR)]
    pub trusted_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct LeaseShowArgs {
    /// The lease file.
    pub file: PathBuf,
    /// Trusted keys to check the signatures against.
    #[arg(long, value_name = "DIR", default_value = keys::DEFAULT_TRUSTED_DIR)]
    pub trusted_dir: PathBuf,
    /// Distinct trusted signers the policy requires, the issuer included.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub approvals: u32,
    /// The policy's maximum TTL for the agent (90s, 15m, 2h, 1d) [default: not checked].
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub max_ttl: Option<u64>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket, asked what the lease's snapshot would cost.
    #[arg(long, default_value = super::DEFAULT_SOCKET)]
    pub socket: PathBuf,
}
