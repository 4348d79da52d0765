//! What can go wrong with a key file or a key id, naming the file and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a regular file, too large, unreadable (the message names the file).
    #[error("{0}")]
    Read(#[from] crate::host::files::ReadError),
    #[error("{path} already exists; governor never overwrites a key file (move it away first)")]
    Exists { path: PathBuf },
    #[error(
        "{path}: the secret key is readable by group or others (mode {mode:04o}); run \
         `chmod 600 {path}` and consider the key exposed if others could read it"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: field `{field}`: {why}")]
    Field {
        path: PathBuf,
        line: usize,
        field: &'static str,
        why: String,
    },
    #[error(
        "{path}: key_id says {stated} but the key's fingerprint is {actual}; the file was \
         edited or damaged: use the original (for a trusted key, ask its owner)"
    )]
    Fingerprint {
        path: PathBuf,
        stated: String,
        actual: String,
    },
    #[error(
        "{path}: a trusted key file must be named `{key_id}.pub` (its fingerprint); rename it"
    )]
    FileName { path: PathBuf, key_id: String },
    #[error(
        "{path}: the self-signature does not verify: the operator, key or date was changed \
         after the key signed them; ask the key's owner for the original file"
    )]
    SelfSignature { path: PathBuf },
    #[error("{path}: key {key_id} is already trusted from {first}; remove one of the two")]
    Duplicate {
        path: PathBuf,
        first: PathBuf,
        key_id: String,
    },
    #[error(
        "operator `{operator}`: {why}; write `Name <email>` or an email address, e.g. \
         \"Alice Doe <alice@example.com>\""
    )]
    Operator { operator: String, why: &'static str },
    #[error("`{0}` is not a key id: write the 32 lowercase hex digits `governor key list` shows")]
    BadId(String),
    #[error(
        "`{0}` is too short to name a key: give at least 8 hex digits of the id \
         (`governor key list` shows them)"
    )]
    ShortPrefix(String),
    #[error("no trusted key has an id starting with `{0}` (`governor key list` shows them)")]
    NotFound(String),
    #[error("`{prefix}` names several trusted keys ({}); give more digits", .matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    #[error("the system's random number source failed: {0}")]
    Random(String),
    #[error(
        "no directory for secret keys: neither GOVERNOR_KEY_DIR nor HOME is set; pass \
         --secret-dir"
    )]
    NoHome,
}

pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}
