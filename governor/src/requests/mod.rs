//! The request book: agents' lease requests, kept in `<state>/requests/<id>.json` until an
//! operator decides ([`book`]). The socket agents file them on is `crate::admin`'s request
//! socket; the lease manager answers them.
//!
//! May import only the ground floor (`crate::host`): the lease manager imports this, never
//! the other way round.

pub mod book;
