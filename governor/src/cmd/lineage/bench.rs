//! `governor lineage bench-trace` (hidden; `cargo xtask bench --group lineage-trace` runs
//! it): builds a synthetic database (unless --db already holds --events events), then
//! times the trace query path (not process start) on random events through a read-only
//! connection, as `trace` opens it, and prints one JSON line with the figures. Compiled only
//! with the `bench` feature (see [`crate::lineage::synth`]).

use std::{process::ExitCode, time::Instant};

use anyhow::Context;
use rusqlite::Connection;

use crate::{
    cli::LineageBenchArgs,
    lineage::{query, synth},
};

/// The target: a trace in at most this long on a 10M-event database.
const TARGET_MS: f64 = 20.0;

fn held(path: &std::path::Path) -> Option<u64> {
    let conn = query::open(path).ok()?;
    conn.query_row("SELECT max(id) FROM events", [], |r| {
        r.get::<_, Option<i64>>(0)
    })
    .ok()
    .flatten()
    .and_then(|n| u64::try_from(n).ok())
}

pub fn run(args: LineageBenchArgs) -> anyhow::Result<ExitCode> {
    let mut built = None;
    if held(&args.db) != Some(args.events) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = args.db.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        if let Some(dir) = args.db.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut conn = Connection::open(&args.db)
            .with_context(|| format!("creating {}", args.db.display()))?;
        eprintln!(
            "bench-trace: building {} with {} events",
            args.db.display(),
            args.events
        );
        let b = synth::build(&mut conn, args.events)
            .with_context(|| format!("building {}", args.db.display()))?;
        built = Some(b);
    }
    let conn = query::open(&args.db)?;
    let n = args.events.max(1);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut times = Vec::with_capacity(args.traces as usize);
    let mut depth = 0;
    for _ in 0..args.traces {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let id = (state % n + 1) as i64;
        let t = Instant::now();
        let tr = query::trace::trace(&conn, id)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        depth += tr.chain.len();
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    let report = serde_json::json!({
        "bench": "lineage-trace",
        "events": args.events,
        "db_bytes": std::fs::metadata(&args.db).map(|m| m.len()).unwrap_or(0),
        "built": built.map(|b| serde_json::json!({
            "events": b.events,
            "processes": b.processes,
            "load_s": b.load.as_secs_f64(),
            "index_s": b.index.as_secs_f64(),
        })),
        "traces": times.len(),
        "avg_chain": depth as f64 / f64::from(args.traces.max(1)),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "target_ms": TARGET_MS,
        "pass": pct(0.99) <= TARGET_MS,
    });
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
