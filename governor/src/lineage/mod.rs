//! Lineage: every kernel decision and every act of authority (policy loads, keys, leases and
//! their life, halts), with the processes behind them, in a SQLite database
//! (`<state>/lineage.db`) that an incident responder can query with `governor lineage` or
//! plain `sqlite3`.
//!
//! What the folder owns:
//! - the database: [`schema`] (the tables, as migrations), [`writer`] (opening it for
//!   writing, and the thread that commits records in batches, counting every loss),
//!   [`retain`] (pruning old rows);
//! - the rows: [`record`] (one type per row family, and the only code that writes them),
//!   [`recorder`] (the never-waiting handle producers use);
//! - what fills them: [`decision`] (a kernel decision in the policy's words), [`processes`]
//!   (the process tracker: kernel process records and `/proc` → `processes` rows),
//!   [`authority`] (the rows of policies, keys, leases and halts), [`losses`] (the daemon's
//!   loss counters), [`runs`] (the daemon runs and the downtime between them), [`handover`]
//!   (what a starting daemon takes over from the generations it finds: their rings drained,
//!   every loss counted), [`reconcile`] (each ring's tallies against the kernel's counts),
//!   [`boot`] (the boot id and clocks);
//! - reading it back: [`query`], the typed queries behind `governor lineage`;
//! - with the `bench` feature only, [`synth`]: a synthetic database for the trace benchmark.
//!
//! What it may import: the ground floor ([`crate::host`], [`crate::time`]), the policy's
//! types ([`crate::policy`]), the signing types ([`crate::signing`]) and the kernel side's
//! records and counters ([`crate::kernel`]: `inherit`, `events::ReaderStats`,
//! `procs::ProcStats`). Never the commands (`cmd`), the admin sockets (`admin`), the daemon,
//! the lease manager (`leases`) or the request book: they call into lineage, not the other
//! way (the admin status counters reach [`losses`] through its `KernelCounters` trait; the
//! lease manager builds its leases' rows itself, in `leases/rows.rs`). `governor/tests/layers.rs`
//! holds it to that.

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
