//! Command-line grammar. Each subcommand's behaviour lives in its own file under `cmd/`.

use std::{ffi::OsString, path::PathBuf};

use clap::{Parser, Subcommand};

use crate::{host::dirs, logging::LogFormat, signing::keys, time};

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
    /// Why (recorded with the halt).
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub which: AgentSelect,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
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
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
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
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct LeaseListArgs {
    /// Every lease on record (expired, revoked, dropped too).
    #[arg(long)]
    pub all: bool,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct LeaseRevokeArgs {
    /// The lease id.
    pub id: String,
    /// Why (recorded).
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct LeasePendingArgs {
    /// Decided requests too.
    #[arg(long)]
    pub all: bool,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
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
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct LeaseRejectArgs {
    /// The request id.
    pub id: String,
    /// Why (the agent sees it).
    #[arg(long)]
    pub reason: String,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
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
}

fn parse_ttl(text: &str) -> Result<u64, String> {
    time::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_time(text: &str) -> Result<u64, String> {
    time::parse_rfc3339(text).map_err(|e| e.to_string())
}

/// Where the daemon keeps the lineage database by default.
pub const DEFAULT_LINEAGE_DB: &str = "/var/lib/governor/lineage.db";

#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Decisions (deny, observe-deny, lease-allow), the latest first, shown oldest first.
    Events(LineageEventsArgs),
    /// Everything behind one event: its process's ancestry up to the agent's launcher, the
    /// lease that allowed it (signers, reason, ticket, life) or the rule that denied it, and
    /// the policy's owner.
    Trace(LineageTraceArgs),
    /// What changed: every destructive operation that happened, grouped by the lease that
    /// allowed it, and those observe mode let through; with undo hints.
    Changes(LineageWindowArgs),
    /// Per agent: actions blocked, allowed under a lease, observe-mode would-denies, halts
    /// and their time to enforcement; and events lost (gaps).
    Stats(LineageWindowArgs),
    /// Stream events as JSON lines, oldest first, for a log pipeline.
    Export(LineageExportArgs),
    /// The process tree around an event, the decision highlighted (Graphviz dot, or a
    /// self-contained HTML page).
    Graph(LineageGraphArgs),
    /// Delete what is older than the retention period, now (the daemon's --retain does it
    /// hourly). Never deletes what a lease that has not expired still refers to, nor the
    /// ancestry of anything kept.
    Prune(LineagePruneArgs),
    /// Benchmark (for `cargo xtask bench`): build a synthetic database of --events events
    /// at --db (if it holds fewer) and time `trace` on random events; prints JSON.
    #[cfg(feature = "bench")]
    #[command(hide = true)]
    BenchTrace(LineageBenchArgs),
}

/// The database and output form every lineage command takes.
#[derive(Debug, clap::Args)]
pub struct LineageDbArgs {
    /// The lineage database.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_LINEAGE_DB)]
    pub db: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A time window: RFC 3339 times or durations ago.
#[derive(Debug, Clone, clap::Args)]
pub struct LineageWindow {
    /// Only this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// From this time on: RFC 3339 (2026-11-21T19:40:00Z) or a time ago (30m, 1h, 7d).
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    pub since: Option<i64>,
    /// Before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    pub until: Option<i64>,
}

/// Which events.
#[derive(Debug, Clone, clap::Args)]
pub struct LineageFilter {
    #[command(flatten)]
    pub window: LineageWindow,
    /// Only this decision.
    #[arg(long, value_parser = ["deny", "observe-deny", "lease-allow"])]
    pub decision: Option<String>,
    /// Only this action class (unlink, rename, exec, connect, ...).
    #[arg(long)]
    pub class: Option<String>,
    /// Only this path and what lies below it.
    #[arg(long)]
    pub path: Option<String>,
}

impl LineageFilter {
    pub fn filter(&self) -> crate::lineage::query::Filter {
        crate::lineage::query::Filter {
            agent: self.window.agent.clone(),
            since_ns: self.window.since,
            until_ns: self.window.until,
            decision: self.decision.clone(),
            class: self.class.clone(),
            path: self.path.clone(),
        }
    }
}

impl LineageWindow {
    pub fn filter(&self) -> crate::lineage::query::Filter {
        crate::lineage::query::Filter {
            agent: self.agent.clone(),
            since_ns: self.since,
            until_ns: self.until,
            ..Default::default()
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct LineageEventsArgs {
    #[command(flatten)]
    pub filter: LineageFilter,
    /// Show at most this many (the latest).
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    #[command(flatten)]
    pub out: LineageDbArgs,
}

#[derive(Debug, clap::Args)]
pub struct LineageTraceArgs {
    /// The event's id (`governor lineage events`).
    pub event_id: i64,
    #[command(flatten)]
    pub out: LineageDbArgs,
}

#[derive(Debug, clap::Args)]
pub struct LineageWindowArgs {
    #[command(flatten)]
    pub window: LineageWindow,
    #[command(flatten)]
    pub out: LineageDbArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct LineageExportArgs {
    /// Output format (with --json too: JSON lines).
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    #[command(flatten)]
    pub filter: LineageFilter,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub out: LineageDbArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz dot text (`| dot -Tsvg`).
    Dot,
    /// A self-contained HTML page with the tree drawn as SVG.
    Html,
}

#[derive(Debug, clap::Args)]
pub struct LineageGraphArgs {
    /// The event's id.
    pub event_id: i64,
    /// Output format (--json: the tree's nodes and edges as JSON instead).
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    #[command(flatten)]
    pub out: LineageDbArgs,
}

#[derive(Debug, clap::Args)]
pub struct LineagePruneArgs {
    /// Keep this much history (30d, 12h, ...); older rows go.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub retain: u64,
    #[command(flatten)]
    pub out: LineageDbArgs,
}

#[cfg(feature = "bench")]
#[derive(Debug, clap::Args)]
pub struct LineageBenchArgs {
    /// The synthetic database (created or rebuilt; never the daemon's).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Events in it.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Traces timed.
    #[arg(long, default_value_t = 1000)]
    pub traces: u32,
}

fn parse_when(text: &str) -> Result<i64, String> {
    crate::lineage::query::parse_when(text, crate::lineage::boot::BootClock::now_ns())
        .map_err(|e| e.to_string())
}
