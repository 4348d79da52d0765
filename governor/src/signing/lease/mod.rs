//! Leases: a self-contained, signed, time-limited grant that lets one agent on one host do
//! the operations named by its scopes, until it expires. The file is TOML (`format`); what
//! is signed is a canonical byte encoding of the body (`canonical`), so reformatting the
//! file never breaks a signature. An issuer signs it (`sign`), approvers cosign it, and the
//! daemon accepts it only if `verify` passes against its trusted keys and the policy's TTL
//! and approval count.
//!
//! May import `host` (bounded reads, the durable writer), `time`, and `signing/`'s keys and
//! canonical encoding.

mod canonical;
mod error;
mod format;
mod ident;
mod sign;
mod validate;
mod verify;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;

pub use error::LeaseError;
pub use ident::{host_id, kernel_id, new_lease_id};
pub use validate::split_scope;
pub use verify::{check_signature, verify, SignatureStatus, Signer, Verified, VerifyContext};

use crate::signing::keys::KeyId;

/// The only lease format version.
pub const VERSION: u32 = 1;

/// What a lease grants, and to whom, where and when. Everything here is signed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseBody {
    /// Always `VERSION`.
    pub version: u32,
    /// Unique id (`new_lease_id`); the daemon refuses an id it has seen (replay).
    pub id: String,
    /// Agent name, as in the policy.
    pub agent: String,
    /// The host it is valid on: that host's `/etc/machine-id`.
    pub host: String,
    pub scopes: Vec<Scope>,
    /// Start, unix seconds UTC.
    pub not_before: u64,
    /// End (exclusive), unix seconds UTC.
    pub not_after: u64,
    pub reason: String,
    pub ticket: Option<String>,
    /// The agent request this lease answers, if any.
    pub request: Option<String>,
}

/// One operation class on one target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Scope {
    /// An action class name from the policy language (validated by the daemon's policy).
    pub class: String,
    /// An absolute path (file and exec classes) or `ADDR[/PREFIX][:PORT]` (network
    /// classes; IPv6 in brackets when a port follows: `[::1]:5432`).
    pub target: String,
    /// The identity the path had when the lease was issued; a different file at the same
    /// path later is not covered.
    pub pin: Option<Pin>,
}

/// A file's identity: `st_dev` and `st_ino` as stat(2) returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    pub dev: u64,
    pub ino: u64,
}

/// A body and the signatures over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub body: LeaseBody,
    pub signatures: Vec<Signature>,
}

/// Whether a signer issued the lease or approved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Issuer,
    Approver,
}

impl Role {
    /// The byte that stands for the role in the signed message.
    fn tag(self) -> u8 {
        match self {
            Role::Issuer => 1,
            Role::Approver => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Issuer => "issuer",
            Role::Approver => "approver",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operator's ed25519 signature over `signed_message(body, role, signed_at, key_id,
/// operator)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub key_id: KeyId,
    /// The signer's operator identity as their secret key file names it (signed too).
    pub operator: String,
    pub role: Role,
    /// When it was signed, unix seconds UTC.
    pub signed_at: u64,
    pub signature: [u8; 64],
}
