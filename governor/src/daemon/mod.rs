//! The daemon (`governor daemon`): preflight, compile the policy (governor's own directories
//! first), build the kernel generation and take over from the generations before it
//! ([`takeover`]: attach and pin, their rings drained into the lineage, then retired), answer
//! the admin and request sockets and stream decisions to the log and the lineage until
//! SIGINT/SIGTERM. SIGHUP, like `governor policy reload`, reloads the policy ([`reload`]).
//! Stopping leaves enforcement pinned; `governor unload` ends it.
//!
//! Owns: start-up ([`start`]), the serve loop ([`serve`]), the decision sink ([`sink`]),
//! policy reload ([`reload`]), the control thread for the admin socket and the lease tick
//! ([`control`]) and the take-over of earlier generations ([`takeover`]).
//!
//! May import every other folder: it is the top of the house, the one place where the
//! kernel, the lease manager, the sockets and the lineage are wired together. Nothing but
//! `cmd/` (and the admin socket's reload and secret traits, implemented here) depends on it.

pub mod control;
mod guard;
pub mod reload;
mod serve;
mod sink;
mod start;
pub mod takeover;

pub use start::run;
