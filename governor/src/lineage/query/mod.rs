//! Reading the lineage database for `governor lineage`: [`open`] it read-only (so it works
//! while the daemon writes, WAL), the filters the commands share ([`Filter`], [`parse_when`]),
//! and one module per question, each returning typed rows: [`events`] (and a single event),
//! [`trace`] (ancestry, lease or rule, policy owner), [`changes`] (what was allowed, by
//! lease), [`stats`] (per agent), [`graph`] (the process tree around an event). No SQL lives
//! outside these modules.
//!
//! Owns reading only: nothing here writes. May import the rest of `lineage/` (the schema)
//! and what `lineage/` may (its `mod.rs`).

pub mod authority;
pub mod changes;
pub mod events;
pub mod graph;
pub mod processes;
pub mod rollbacks;
pub mod safety;
pub mod stats;
pub mod trace;

#[cfg(test)]
pub(crate) mod fixture;

use std::path::{Path, PathBuf};

use rusqlite::{types::Value, Connection, OpenFlags};

use super::schema::MIGRATIONS;
use crate::time;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "no lineage database at {0}; the daemon creates it (--lineage-db) once it runs, or \
         pass --db PATH to read another one"
    )]
    Missing(PathBuf),
    #[error(
        "cannot open the lineage database {path}: {source}; reading it needs read access to \
         the file and its directory (run as root), or pass --db PATH"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{path} is not a lineage database (no lineage schema in it: {reason}); pass --db with \
         the daemon's lineage.db"
    )]
    NotLineage { path: PathBuf, reason: String },
    #[error(
        "the lineage database {path} is at schema version {found}, newer than this governor \
         knows ({known}); read it with the governor release that wrote it"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
}

/// A failed query, with what was being asked.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("reading the lineage database ({what}): {source}")]
    Sql {
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("no event {0} in the lineage database; `governor lineage events` lists their ids")]
    NoEvent(i64),
}

/// `map_err` helper: a SQL error while reading `what`.
pub(crate) fn sql(what: &'static str) -> impl Fn(rusqlite::Error) -> QueryError {
    move |source| QueryError::Sql { what, source }
}

/// How long a reader waits for the writer's lock (a checkpoint) before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the database at `path` read-only, after checking it exists and carries a schema
/// this governor knows.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    open_with(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// Opens it for writing (pruning), with the same checks.
pub fn open_rw(path: &Path) -> Result<Connection, OpenError> {
    open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
}

fn open_with(path: &Path, mode: OpenFlags) -> Result<Connection, OpenError> {
    if !path.exists() {
        return Err(OpenError::Missing(path.to_owned()));
    }
    let err = |source| OpenError::Open {
        path: path.to_owned(),
        source,
    };
    let conn =
        Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    check_schema(&conn, path)?;
    Ok(conn)
}

/// Refuses a file without the lineage tables, or one a newer governor wrote.
fn check_schema(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let not_lineage = |reason: String| OpenError::NotLineage {
        path: path.to_owned(),
        reason,
    };
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                not_lineage(e.to_string())
            }
            e => OpenError::Open {
                path: path.to_owned(),
                source: e,
            },
        })?;
    if found > MIGRATIONS.len() as i64 {
        return Err(OpenError::TooNew {
            path: path.to_owned(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    if found < 1 {
        return Err(not_lineage("schema version 0".to_owned()));
    }
    Ok(())
}

/// Which events a command looks at. Every field narrows; none set: all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub agent: Option<String>,
    /// Unix ns, inclusive.
    pub since_ns: Option<i64>,
    /// Unix ns, exclusive.
    pub until_ns: Option<i64>,
    /// `deny`, `observe-deny` or `lease-allow`.
    pub decision: Option<String>,
    pub class: Option<String>,
    /// The path itself or anything below it.
    pub path: Option<String>,
}

impl Filter {
    /// The `WHERE` conditions (joined by `AND`, on table alias `e`) and their parameters.
    /// A path filter is a range on the path index: `P`, or from `P/` up to `P0` (`0` is the
    /// byte after `/`), which is everything below `P`.
    pub(crate) fn conditions(&self) -> (Vec<String>, Vec<Value>) {
        let mut c = Vec::new();
        let mut p = Vec::new();
        let mut eq = |col: &str, v: &Option<String>| {
            if let Some(v) = v {
                p.push(Value::Text(v.clone()));
                c.push(format!("e.{col} = ?{}", p.len()));
            }
        };
        eq("agent", &self.agent);
        eq("decision", &self.decision);
        eq("class", &self.class);
        if let Some(ns) = self.since_ns {
            p.push(Value::Integer(ns));
            c.push(format!("e.ts_ns >= ?{}", p.len()));
        }
        if let Some(ns) = self.until_ns {
            p.push(Value::Integer(ns));
            c.push(format!("e.ts_ns < ?{}", p.len()));
        }
        if let Some(path) = &self.path {
            let base = path.trim_end_matches('/');
            p.push(Value::Text(path.clone()));
            let exact = p.len();
            p.push(Value::Text(format!("{base}/")));
            let lo = p.len();
            p.push(Value::Text(format!("{base}0")));
            let hi = p.len();
            c.push(format!(
                "(e.path = ?{exact} OR (e.path >= ?{lo} AND e.path < ?{hi}))"
            ));
        }
        (c, p)
    }

    /// `WHERE ...` (or nothing) for these conditions.
    pub(crate) fn where_clause(&self) -> (String, Vec<Value>) {
        let (c, p) = self.conditions();
        if c.is_empty() {
            (String::new(), p)
        } else {
            (format!("WHERE {}", c.join(" AND ")), p)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is neither an RFC 3339 time (2026-11-21T19:40:00Z) nor a time ago (30m, 1h, 7d)")]
pub struct WhenError(pub String);

/// A `--since`/`--until` argument as Unix ns: an RFC 3339 time, or a duration before
/// `now_ns` (`30m`, `1h`, `7d`, optionally followed by ` ago`).
pub fn parse_when(text: &str, now_ns: i64) -> Result<i64, WhenError> {
    let t = text.trim();
    let ago = t.strip_suffix("ago").map_or(t, str::trim_end);
    if let Ok(secs) = time::parse_positive_duration(ago) {
        let ns = i64::try_from(secs)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000_000))
            .ok_or_else(|| WhenError(text.to_owned()))?;
        return Ok(now_ns.saturating_sub(ns));
    }
    let secs = time::parse_rfc3339(t).map_err(|_| WhenError(text.to_owned()))?;
    i64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .ok_or_else(|| WhenError(text.to_owned()))
}

/// `2026-11-21T19:40:00.123Z` for Unix ns (milliseconds shown).
pub fn format_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let ms = ns.rem_euclid(1_000_000_000) / 1_000_000;
    match u64::try_from(secs) {
        Ok(s) => {
            let whole = time::rfc3339(s);
            let stem = whole.strip_suffix('Z').unwrap_or(&whole);
            format!("{stem}.{ms:03}Z")
        }
        Err(_) => format!("{ns}ns"),
    }
}

/// A JSON list column (`argv`, `agents`) as strings; text that is not one is kept whole.
pub(crate) fn json_list(text: Option<String>) -> Vec<String> {
    match text {
        None => Vec::new(),
        Some(t) => serde_json::from_str(&t).unwrap_or_else(|_| vec![t]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000 * 1_000_000_000;

    #[test]
    fn when_is_rfc3339_or_a_time_ago() {
        assert_eq!(
            parse_when("2023-11-14T22:13:20Z", NOW),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_when("1h", NOW), Ok(NOW - 3_600_000_000_000));
        assert_eq!(parse_when("30m ago", NOW), Ok(NOW - 1_800_000_000_000));
        assert_eq!(parse_when("7d", NOW), Ok(NOW - 7 * 86_400_000_000_000));
        for bad in ["yesterday", "1w", "", "2023-11-14", "-1h"] {
            let e = parse_when(bad, NOW).unwrap_err();
            assert!(e.to_string().contains("RFC 3339"), "{e}");
        }
    }

    #[test]
    fn formats_ns_with_milliseconds() {
        assert_eq!(
            format_ns(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn missing_foreign_and_newer_databases_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("governor-lq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let missing = dir.join("none.db");
        let e = open(&missing).unwrap_err();
        assert!(matches!(e, OpenError::Missing(_)), "{e}");
        assert!(e.to_string().contains("none.db"), "{e}");

        let junk = dir.join("junk.db");
        std::fs::write(
            &junk,
            b"this is not sqlite, not at all, and long enough to tell",
        )
        .expect("write");
        let e = open(&junk).unwrap_err();
        assert!(matches!(e, OpenError::NotLineage { .. }), "{e}");

        let empty = dir.join("empty.db");
        Connection::open(&empty).expect("create");
        let e = open(&empty).unwrap_err();
        assert!(matches!(e, OpenError::NotLineage { .. }), "{e}");

        let newer = dir.join("newer.db");
        let mut c = Connection::open(&newer).expect("create");
        crate::lineage::schema::migrate(&mut c).expect("schema");
        c.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .expect("bump");
        drop(c);
        let e = open(&newer).unwrap_err();
        assert!(matches!(e, OpenError::TooNew { .. }), "{e}");
        assert!(e.to_string().contains("newer.db"), "{e}");

        let good = dir.join("good.db");
        let mut c = Connection::open(&good).expect("create");
        crate::lineage::schema::migrate(&mut c).expect("schema");
        drop(c);
        let conn = open(&good).expect("opens");
        let e = conn
            .execute("DELETE FROM events", [])
            .expect_err("read-only");
        assert!(e.to_string().contains("readonly"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
