//! Lineage: every kernel decision and every act of authority (policy loads, keys, leases and
//! their life, halts), with the processes behind them, in a SQLite database
//! (`<state>/lineage.db`) that an incident responder can query with `governor lineage` or
//! plain `sqlite3`. [`schema`] defines the tables, [`record`] the rows and how they are
//! written, [`recorder`] the never-waiting handle producers use, [`writer`] the thread that
//! commits them in batches, [`runs`] the daemon runs (and the downtime between them),
//! [`retain`] the pruning of old rows, [`boot`] the clocks, [`authority`] the rows of
//! policies, keys, leases and halts, [`processes`] the process tracker (kernel process
//! records and `/proc` → `processes` rows), [`decision`] a kernel decision in the policy's
//! words, [`losses`] the daemon's loss counters, [`handover`] what a starting daemon takes
//! over from the generations it finds (their rings drained, every loss counted); [`query`]
//! reads it back for `governor lineage`, [`synth`] builds a synthetic one for its benchmark.

pub mod authority;
pub mod boot;
pub mod decision;
pub mod handover;
pub mod losses;
pub mod processes;
pub mod query;
pub mod reconcile;
pub mod record;
pub mod recorder;
pub mod retain;
pub mod runs;
pub mod schema;
#[cfg(feature = "bench")]
pub mod synth;
pub mod writer;
