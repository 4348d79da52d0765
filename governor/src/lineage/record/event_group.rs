//! The group `INSERT` of events bound in place through SQLite's C API.

use std::{ffi::c_int, ptr::NonNull};

use rusqlite::{ffi, Connection, Transaction};

use super::{
    events::{event_statements, event_values, EventRow, Value},
    EVENTS_PER_INSERT,
};

/// The group `INSERT` ([`EVENTS_PER_INSERT`] events), prepared once on the writer's
/// connection and bound through SQLite's C API with `SQLITE_STATIC`: SQLite reads each text
/// in place during the step instead of copying it at bind time (rusqlite binds every text as
/// `SQLITE_TRANSIENT`, a copy and a free per column: a fifth of a row's cost at flood rates).
///
/// It belongs to the connection it was prepared on: its owner must drop it before that
/// connection closes (the writer keeps it in a local of its thread's loop, which ends before
/// the connection is dropped), and [`EventGroup::insert`] refuses any other connection.
pub struct EventGroup {
    db: *mut ffi::sqlite3,
    stmt: NonNull<ffi::sqlite3_stmt>,
}

/// The error SQLite reports for `rc` on `db` (the same shape rusqlite gives, so that the
/// writer tells a refused record from a failing database by its code).
///
/// # Safety
/// `db` is an open connection.
unsafe fn sqlite_error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: the caller's: `db` is open; sqlite3_errmsg returns a NUL-terminated string
    // that lives until the next call on `db`, copied here at once.
    let message = unsafe { std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned();
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(message))
}

impl EventGroup {
    /// Prepares the group statement on `conn`.
    pub fn prepare(conn: &Connection) -> rusqlite::Result<EventGroup> {
        let sql = &event_statements().0;
        let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        // SAFETY: the handle is `conn`'s, open while `conn` lives; the statement prepared on
        // it is finalized by `Drop`, which its owner runs before `conn` closes (see above).
        let db = unsafe { conn.handle() };
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `sql` is valid for `len` bytes; `stmt` receives the statement or NULL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: `db` is open.
            return Err(unsafe { sqlite_error(db, rc) });
        }
        let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        Ok(EventGroup { db, stmt })
    }

    /// Writes `group` ([`EVENTS_PER_INSERT`] events, in order) in `tx`, which must be on the
    /// connection the statement was prepared on; an event already there changes nothing.
    pub fn insert(&mut self, tx: &Transaction<'_>, group: &[&EventRow]) -> rusqlite::Result<()> {
        // SAFETY: only compared, never used through.
        if group.len() != EVENTS_PER_INSERT || unsafe { tx.handle() } != self.db {
            return Err(rusqlite::Error::InvalidQuery);
        }
        let mut col: c_int = 1;
        let mut rc = ffi::SQLITE_OK;
        for e in group {
            rc = self.bind_event(&mut col, e);
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        if rc != ffi::SQLITE_OK {
            // SAFETY: `self.db` is open (the statement is live on it).
            return Err(unsafe { sqlite_error(self.db, rc) });
        }
        // SAFETY: the statement is live and every parameter is bound to data that `group`
        // keeps alive until this call returns; the step reads it, the reset ends the
        // statement's use of it (each call binds every parameter again before stepping).
        let (step, reset) = unsafe {
            let step = ffi::sqlite3_step(self.stmt.as_ptr());
            (step, ffi::sqlite3_reset(self.stmt.as_ptr()))
        };
        match (step, reset) {
            (ffi::SQLITE_DONE, ffi::SQLITE_OK) => Ok(()),
            (ffi::SQLITE_ROW, _) => Err(rusqlite::Error::ExecuteReturnedResults),
            // SAFETY: `self.db` is open (the statement is live on it).
            (ffi::SQLITE_DONE, rc) | (rc, _) => Err(unsafe { sqlite_error(self.db, rc) }),
        }
    }

    /// Binds `e`'s columns from parameter `*col` on (in [`super::EVENT_COLUMNS`] order), leaving
    /// `*col` after them; returns SQLite's first non-OK code, or OK.
    fn bind_event(&mut self, col: &mut c_int, e: &EventRow) -> c_int {
        let ints = |s: &mut Self, col: &mut c_int, v: i64| {
            *col += 1;
            // SAFETY: a live statement; an out-of-range index is reported, not used.
            unsafe { ffi::sqlite3_bind_int64(s.stmt.as_ptr(), *col - 1, v) }
        };
        let text = |s: &mut Self, col: &mut c_int, v: Option<&str>| {
            *col += 1;
            let stmt = s.stmt.as_ptr();
            match v {
                // SAFETY: a live statement, and UTF-8 text that the caller keeps alive until
                // the statement is reset (`insert`'s contract), so SQLITE_STATIC holds. An
                // empty text points at a static byte, never at a dangling pointer.
                Some(t) => unsafe {
                    let ptr: *const std::ffi::c_char = if t.is_empty() {
                        c"".as_ptr()
                    } else {
                        t.as_ptr().cast()
                    };
                    ffi::sqlite3_bind_text64(
                        stmt,
                        *col - 1,
                        ptr,
                        t.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    )
                },
                // SAFETY: a live statement.
                None => unsafe { ffi::sqlite3_bind_null(stmt, *col - 1) },
            }
        };
        let rcs = event_values(e).map(|v| match v {
            Value::Int(n) => ints(self, col, n),
            Value::Text(t) => text(self, col, Some(t)),
            Value::Null => text(self, col, None),
        });
        rcs.into_iter()
            .find(|&rc| rc != ffi::SQLITE_OK)
            .unwrap_or(ffi::SQLITE_OK)
    }
}

impl Drop for EventGroup {
    fn drop(&mut self) {
        // SAFETY: the statement is live (its connection still open: the owner's contract)
        // and finalized once, here.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}
