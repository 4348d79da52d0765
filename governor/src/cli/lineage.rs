//! The `lineage` commands' arguments.

use std::path::PathBuf;

use clap::Subcommand;

use super::parse_ttl;

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
    #[arg(long, value_parser = ["deny", "observe-deny", "lease-allow", "allow"])]
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
    /// The daemon's state directory, whose lease snapshots past their retention (the
    /// policy's `[rollback] retention` after the lease ended) are removed too.
    #[arg(long, value_name = "DIR", default_value = crate::host::dirs::DEFAULT_STATE)]
    pub state_dir: PathBuf,
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
