//! Lineage: every kernel decision and every act of authority (policy loads, keys, leases and
//! their life, halts), with the processes behind them, in a SQLite database
//! (`<state>/lineage.db`) that an incident responder can query with `governor lineage` or
//! plain `sqlite3`. [`schema`] defines the tables, [`record`] the rows and how they are
//! written, [`recorder`] the never-waiting handle producers use, [`boot`] the clocks;
//! [`query`] reads it back for `governor lineage`.

pub mod boot;
pub mod query;
pub mod record;
pub mod recorder;
pub mod schema;
pub mod synth;
