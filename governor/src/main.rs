//! governor: stops AI agents from doing irreversible damage.
//!
//! BPF-LSM programs refuse destructive operations coming from agent-owned cgroups; this binary
//! is both the daemon that loads and feeds them and the operator's CLI.
//!
//! The folders, each importing only folders below it (its `mod.rs` says which;
//! `governor/tests/layers.rs` checks the order, `ORDER` there):
//!
//! 1. `host/`, `time.rs`, `logging/`: the ground floor (cgroups, freezing, governor's own
//!    directories, OOM score, bounded reads, the one durable writer; clocks and durations;
//!    log output).
//! 2. `signing/` (keys, signed lease files), `policy/` (policy files, compiled maps),
//!    `api/` (both sockets' protocol and typed replies), `halts.rs` (the halt list), then
//!    `requests/` (the request book, which shows requests as `api/`'s views).
//! 3. `kernel/`: programs, maps, pins and the event and process streams, which hand their
//!    records to channels and traits (no `lineage/` import).
//! 4. `lineage/` (the lineage database), `rollback/` (the snapshot store: take, seal,
//!    restore), then `leases/` (the lease manager, which snapshots a lease's scope before
//!    installing it, records its acts through the lineage's recorder and builds its leases'
//!    rows itself), then `simulate/` (re-deciding the lineage's operations under a candidate
//!    policy).
//! 5. `secrets.rs` (registered secret key files), `cli/` (argument structs and their
//!    defaults), then `admin/` (the sockets' servers and handlers; reload and secret
//!    protection through traits).
//! 6. `daemon/`: start-up, serve loop, decision sink, reload, take-over: where everything is
//!    wired together.
//! 7. `cmd/`: one thin file per command.
//!
//! (`host/`'s own tests use the lease store, the request book, policies and signed leases
//! as fixtures; that is test code only.)

mod admin;
mod api;
mod cli;
mod cmd;
mod daemon;
mod halts;
mod host;
mod kernel;
mod leases;
mod lineage;
mod logging;
mod policy;
mod requests;
mod rollback;
mod secrets;
mod signing;
mod simulate;
mod time;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("governor: error: {}", message(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by `: `, leaving out a cause whose text the message so
/// far already contains (many errors quote their source in their own message).
fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_already_quoted_are_not_repeated() {
        let io = std::io::Error::from_raw_os_error(30);
        let err = anyhow::Error::new(io).context(format!(
            "config dir: {}; create it",
            std::io::Error::from_raw_os_error(30)
        ));
        let text = super::message(&err);
        assert_eq!(text.matches("Read-only file system").count(), 1, "{text}");
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::message(&err), "outer: inner");
    }
}
