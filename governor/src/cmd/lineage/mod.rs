//! `governor lineage ...`: the incident responder's questions to the lineage database, one
//! file per subcommand. Each opens the database read-only (it works while the daemon
//! writes), asks [`crate::lineage::query`], and prints a table or, with `--json`, JSON.
//!
//! Owns the `lineage` subcommands' glue. May import any folder below `cmd/` (the order in
//! `main.rs`), in practice `cli` and `lineage::query`; nothing imports it but `cmd/mod.rs`.

#[cfg(feature = "bench")]
mod bench;
mod changes;
mod events;
mod export;
mod graph;
mod prune;
mod stats;
mod trace;

use std::{fmt::Write as _, process::ExitCode};

use crate::{cli::LineageCommand, lineage::query::rollbacks::Undo};

pub fn run(cmd: LineageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LineageCommand::Events(args) => events::run(args),
        LineageCommand::Trace(args) => trace::run(args),
        LineageCommand::Changes(args) => changes::run(args),
        LineageCommand::Stats(args) => stats::run(args),
        LineageCommand::Export(args) => export::run(args),
        LineageCommand::Graph(args) => graph::run(args),
        LineageCommand::Prune(args) => prune::run(args),
        #[cfg(feature = "bench")]
        LineageCommand::BenchTrace(args) => bench::run(args),
    }
}

/// `v` as pretty JSON on stdout.
fn print_json(v: &impl serde::Serialize) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

/// `-` for nothing.
fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

/// Milliseconds of a nanosecond figure, as `1.234ms`.
fn ms(ns: u64) -> String {
    format!("{:.3}ms", ns as f64 / 1e6)
}

/// How a lease's changes are undone, as `changes` and `trace` print it: each restore run
/// (linked by its `rollbacks` id), else the command and the snapshot it restores, else why
/// there is no snapshot.
fn undo_lines(out: &mut String, undo: &Undo) {
    match undo {
        Undo::Rollback {
            command,
            snapshot,
            rolled_back,
        } => {
            for r in rolled_back {
                let _ = writeln!(
                    out,
                    "  rolled back {} by {} ({} trigger): {}, {} restored, {} recreated, {} \
                     removed, {} unchanged, {} conflicts{} in {} ms (rollbacks #{})",
                    r.ended,
                    r.actor,
                    r.trigger,
                    r.outcome,
                    r.restored,
                    r.recreated,
                    r.removed,
                    r.unchanged,
                    r.conflicts,
                    match (r.conflicts, r.forced) {
                        (0, _) => "",
                        (_, true) => " overwritten (--force)",
                        (_, false) => " left alone",
                    },
                    r.took_ms,
                    r.id
                );
            }
            if rolled_back.is_empty() {
                let n = |k: &str| {
                    snapshot[k]
                        .as_u64()
                        .map_or("?".to_owned(), |v| v.to_string())
                };
                let _ = writeln!(
                    out,
                    "  undo: {command}  (snapshot: {} files, {} bytes by {} in {} ms)",
                    n("files"),
                    n("bytes"),
                    snapshot["method"].as_str().unwrap_or("?"),
                    n("took_ms")
                );
            }
        }
        Undo::NoSnapshot { why } => {
            let _ = writeln!(out, "  no snapshot: {why}");
        }
    }
}
