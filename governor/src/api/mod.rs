//! The sockets' protocol, once for both ends: the envelope and the admin commands
//! ([`protocol`]), the agents' commands on the request socket ([`agent`]), and every reply
//! as a typed struct ([`status`], [`reply`]). The daemon builds its replies from these types
//! and the CLI reads them back into the same types, so a renamed field fails loudly on both
//! sides instead of printing "?".
//!
//! Owns: wire types only (serde structs and enums, framing and parsing of request lines).
//! May import: the ground floor (`crate::host`) for the records a reply carries. Nothing here
//! opens a socket (that is `crate::admin`) or decides anything.

pub mod agent;
pub mod protocol;
pub mod reply;
pub mod rollback;
pub mod safety;
pub mod status;
