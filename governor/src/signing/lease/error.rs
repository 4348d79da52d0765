//! Why a lease file cannot be read or a lease is not accepted: one variant per check, each
//! saying what to do.

use std::path::PathBuf;

use crate::time::{rfc3339, span};

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Not a regular file, too large, unreadable (the message names the file).
    #[error("{0}")]
    Read(#[from] crate::host::files::ReadError),
    #[error("{path}: cannot write the lease: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{origin}:{line}: {message}; a lease file is the TOML `governor lease issue` writes: \
         get an intact copy from its issuer"
    )]
    Syntax {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}:{line}: field `{field}`: {why}")]
    Field {
        origin: String,
        line: usize,
        field: String,
        why: String,
    },
    #[error("lease field `{field}`: {why}")]
    Invalid { field: String, why: String },
    #[error(
        "lease format version {version} is not supported (this governor reads version {}); \
         issue the lease with this governor's `governor lease issue`",
        super::VERSION
    )]
    UnsupportedVersion { version: u32 },
    #[error(
        "the lease is for host {lease_host}, but this host is {this_host} (/etc/machine-id); \
         issue one with `--host {this_host}` (or `--host this` on this host)"
    )]
    WrongHost {
        lease_host: String,
        this_host: String,
    },
    #[error(
        "the lease ends ({}) at or before it starts ({}); issue one with a positive --ttl",
        rfc3339(*not_after), rfc3339(*not_before)
    )]
    EmptyWindow { not_before: u64, not_after: u64 },
    #[error(
        "the lease lasts {} but the policy allows this agent at most {}; issue a shorter \
         one (--ttl)",
        span(*ttl), span(*max)
    )]
    TtlTooLong { ttl: u64, max: u64 },
    #[error(
        "the lease expired at {} ({} ago); issue a new one",
        rfc3339(*not_after), span(now.saturating_sub(*not_after))
    )]
    Expired { not_after: u64, now: u64 },
    #[error(
        "the lease has {found} issuer signatures; exactly one is required (the one \
         `governor lease issue` makes); issue it again"
    )]
    IssuerCount { found: usize },
    #[error(
        "the lease's issuer key {key_id} ({operator}) is not trusted here; add its .pub to \
         the trusted-keys directory or have a trusted operator issue it"
    )]
    IssuerUntrusted { key_id: String, operator: String },
    #[error(
        "the lease was changed after {key_id} ({operator}) signed it; its signature does not \
         verify: discard this file and get the original from its issuer"
    )]
    Tampered { key_id: String, operator: String },
    #[error(
        "the lease needs {needed} distinct trusted signers, it has {present}{}; add one with \
         `governor lease cosign LEASE_FILE --key SECRET_KEY` by another trusted operator",
        if untrusted.is_empty() { String::new() } else {
            format!(" (not counted, key not trusted here: {})", untrusted.join(", "))
        }
    )]
    TooFewSigners {
        needed: u32,
        present: u32,
        untrusted: Vec<String>,
    },
    #[error(
        "key {key_id} ({operator}) already signed this lease; an approval must come from \
         another operator's key"
    )]
    AlreadySigned { key_id: String, operator: String },
    #[error("{path}: this host's identity: {why}")]
    HostId { path: PathBuf, why: String },
    #[error("the system's random number source failed: {0}")]
    Random(String),
}
