//! Signing: the cryptographic proof that operators relaxed enforcement. Operators' ed25519
//! keys, the signed lease files, and the canonical encoding the signatures cover. Nothing
//! here installs or enforces anything: the lease manager (`crate::leases`) does that with
//! what this module verifies.
//!
//! May import: `crate::time`, `crate::host` (bounded reads, atomic writes). Imported by the
//! lease manager, the CLI and the lineage's records of keys and leases.
//!
//! - `keys`: operator ed25519 keys, their fingerprints (key ids), the secret key file and the
//!   self-signed public key files of the trusted-keys directory the daemon reads.
//! - `lease`: the portable, signed, time-limited lease file, its canonical encoding, signing,
//!   cosigning and verification.

mod encode;
pub mod keys;
pub mod lease;

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// A TOML error's first line of message (toml's own message repeats the source line and a
/// caret), and the line it points at.
fn toml_error(text: &str, err: &toml::de::Error) -> (usize, String) {
    let line = err.span().map_or(1, |s| line_of(text, s.start));
    (line, err.message().trim().to_owned())
}
