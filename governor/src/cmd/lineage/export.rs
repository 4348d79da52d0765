//! `governor lineage export --format jsonl`: every matching event as one JSON object per
//! line, oldest first, streamed (the database is never read whole into memory).

use std::{
    io::{self, BufWriter, Write},
    process::ExitCode,
};

use crate::{
    cli::{ExportFormat, LineageExportArgs},
    lineage::query::{self, events::Event},
};

#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Query(#[from] query::QueryError),
    #[error("writing the export: {0}")]
    Write(#[from] io::Error),
    #[error("encoding an event as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub fn run(args: LineageExportArgs) -> anyhow::Result<ExitCode> {
    let ExportFormat::Jsonl = args.format;
    let conn = query::open(&args.out.db)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match write(&conn, &args.filter.filter(), args.limit, &mut out) {
        // A closed pipe (`| head`) ends the export, it is not a failure.
        Err(ExportError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => {}
        r => {
            r?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn line(e: &Event, out: &mut impl Write) -> Result<(), ExportError> {
    serde_json::to_writer(&mut *out, e)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn write(
    conn: &rusqlite::Connection,
    filter: &query::Filter,
    limit: Option<u64>,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let n = query::events::each(conn, filter, limit, |e| line(&e, out))?;
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::{fixture, Filter};

    #[test]
    fn every_line_is_one_json_event() {
        let conn = fixture::db();
        let mut buf = Vec::new();
        let n = write(&conn, &Filter::default(), None, &mut buf).expect("export");
        assert_eq!(n as usize, fixture::EVENTS);
        let text = String::from_utf8(buf).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), fixture::EVENTS);
        assert_eq!(lines[3]["id"], fixture::EV_DENY);
        assert_eq!(lines[3]["decision"], "deny");
        assert_eq!(lines[3]["path"], "/etc/passwd");
        assert_eq!(lines[3]["time"], "2026-11-21T19:40:40.000Z");
        let mut buf = Vec::new();
        let f = Filter {
            decision: Some("lease-allow".into()),
            ..Filter::default()
        };
        assert_eq!(write(&conn, &f, Some(2), &mut buf).expect("export"), 2);
    }
}
