//! Opening the lineage database for writing: the pragmas a flood needs (page size, WAL,
//! `synchronous = NORMAL`, cache, checkpoints), a busy timeout, and the schema brought up
//! to date.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use rusqlite::Connection;

use crate::lineage::schema::{self, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "opening the lineage database {}: {source}; make sure its directory exists and root \
         can write it, or choose another file with --lineage-db",
        path.display()
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "setting up the lineage database {} ({what}): {source}; if the file is damaged, move \
         it aside (the daemon creates a new one) and keep it for the record",
        path.display()
    )]
    Setup {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("the lineage database {}: {source}", path.display())]
    Schema { path: PathBuf, source: SchemaError },
}

/// How long a writer (or a reader) waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes per database page, for a database this writer creates.
pub(crate) const PAGE_SIZE: i64 = 16 * 1024;
/// The writer's page cache, in KiB (`PRAGMA cache_size` takes a negated KiB count).
const CACHE_KIB: i64 = -16 * 1024;
/// WAL pages after which a commit checkpoints the WAL into the database file (32 MiB of
/// 16 KiB pages).
const CHECKPOINT_PAGES: i64 = 2048;

/// Opens (creating it if missing) the lineage database at `path` for writing: WAL journal,
/// `synchronous = NORMAL` (a committed transaction survives the daemon's crash or SIGKILL; a
/// power loss may take the last ones), a busy timeout so that readers never make a write
/// fail, and the schema brought up to date.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    let mut conn = Connection::open(path).map_err(|source| OpenError::Open {
        path: path.to_owned(),
        source,
    })?;
    let setup = |what| {
        let path = path.to_owned();
        move |source| OpenError::Setup { path, what, source }
    };
    // A new database gets 16 KiB pages: at flood rates a page split moves a row in four
    // times fewer inserts (measured: about a fifth more rows per second than 4 KiB). An
    // existing database keeps the page size it was created with.
    conn.pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(setup("page_size"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(setup("busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(setup("journal_mode = WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Setup {
            path: path.to_owned(),
            what: "journal_mode = WAL",
            source: rusqlite::Error::InvalidQuery,
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(setup("synchronous = NORMAL"))?;
    // Flood rates: a page cache that holds the indexes' hot pages, and checkpoints every
    // 32 MiB of WAL instead of every 1,000 pages (each checkpoint syncs the database file).
    conn.pragma_update(None, "cache_size", CACHE_KIB)
        .map_err(setup("cache_size"))?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
        .map_err(setup("wal_autocheckpoint"))?;
    schema::migrate(&mut conn).map_err(|source| OpenError::Schema {
        path: path.to_owned(),
        source,
    })?;
    Ok(conn)
}
