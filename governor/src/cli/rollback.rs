//! `governor rollback`'s arguments, and the admin connection every socket command shares.

use std::path::PathBuf;

use super::DEFAULT_SOCKET;
use crate::time;

/// How a command reaches the daemon and prints its answer.
#[derive(Debug, clap::Args)]
pub struct AdminConn {
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

/// Which leases to undo: one, or an agent's since a time.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct RollbackSelect {
    /// One lease, by id.
    #[arg(long)]
    pub lease: Option<String>,
    /// Every lease of this agent (with --since), newest first.
    #[arg(long, requires = "since")]
    pub agent: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub which: RollbackSelect,
    /// With --agent: leases submitted since this long ago ("2h") or this instant
    /// (RFC 3339, "2026-12-07T10:00:00Z").
    #[arg(long, value_parser = parse_since)]
    pub since: Option<u64>,
    /// Revoke the lease first if it is still live (a live lease is refused without it).
    #[arg(long)]
    pub revoke: bool,
    /// Overwrite paths changed after the lease ended instead of reporting them.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `2h` (that long ago) or an RFC 3339 instant, as unix milliseconds.
pub(crate) fn parse_since(text: &str) -> Result<u64, String> {
    if let Ok(secs) = time::parse_rfc3339(text) {
        return Ok(secs.saturating_mul(1000));
    }
    let ago = time::parse_duration(text).map_err(|e| {
        format!("`{text}` is neither a duration (\"2h\", \"30m\") nor an RFC 3339 time: {e}")
    })?;
    Ok(time::now().saturating_sub(ago).saturating_mul(1000))
}
