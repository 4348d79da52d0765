//! Whether a lease may be enforced here and now: format version, field shapes, host, time
//! window and TTL, then the signatures. A trusted key's signature that does not verify fails
//! the lease (it was changed after signing); untrusted keys' signatures are not counted;
//! one key counts once, whatever roles it signed in.

use ed25519_dalek::Signature as EdSignature;

use super::{canonical::signed_message, Lease, LeaseBody, LeaseError, Role, Signature, VERSION};
use crate::signing::keys::{KeyId, TrustedKey, TrustedKeys};

/// What the lease is checked against.
#[derive(Debug, Clone, Copy)]
pub struct VerifyContext<'a> {
    pub trusted: &'a TrustedKeys,
    /// This host's identity (`host_id()`).
    pub host: &'a str,
    /// Unix seconds UTC.
    pub now: u64,
    /// The policy's maximum lease TTL for the agent.
    pub max_ttl_secs: u64,
    /// Distinct trusted signers needed, the issuer included (at least 1 is always needed).
    pub required_approvals: u32,
}

/// A trusted signer whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signer {
    pub key_id: KeyId,
    /// The operator as the trusted key file names it.
    pub operator: String,
    pub role: Role,
}

/// A lease that passed every check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// Distinct trusted signers, issuer first.
    pub signers: Vec<Signer>,
    /// `Some(not_before)` when the lease is valid but not yet in force (not_before > now):
    /// the daemon schedules it.
    pub starts_at: Option<u64>,
}

/// One signature's standing against the trusted keys.
#[derive(Debug, Clone, Copy)]
pub enum SignatureStatus<'a> {
    /// By a trusted key, and it verifies.
    Valid(&'a TrustedKey),
    /// By a trusted key, and it does not verify: the lease was changed after signing.
    Invalid(&'a TrustedKey),
    /// By a key that is not trusted here (not checked, never counted).
    Untrusted,
}

/// Checks one signature over `body`.
pub fn check_signature<'a>(
    sig: &Signature,
    body: &LeaseBody,
    trusted: &'a TrustedKeys,
) -> SignatureStatus<'a> {
    let Some(key) = trusted.get(&sig.key_id) else {
        return SignatureStatus::Untrusted;
    };
    let msg = signed_message(body, sig.role, sig.signed_at, &sig.key_id, &sig.operator);
    match key
        .key
        .verify_strict(&msg, &EdSignature::from_bytes(&sig.signature))
    {
        Ok(()) => SignatureStatus::Valid(key),
        Err(_) => SignatureStatus::Invalid(key),
    }
}

/// Checks `lease` against `ctx`; every failure is its own `LeaseError`.
pub fn verify(lease: &Lease, ctx: &VerifyContext) -> Result<Verified, LeaseError> {
    let b = &lease.body;
    if b.version != VERSION {
        return Err(LeaseError::UnsupportedVersion { version: b.version });
    }
    b.validate()?;
    if b.host != ctx.host {
        return Err(LeaseError::WrongHost {
            lease_host: b.host.clone(),
            this_host: ctx.host.to_owned(),
        });
    }
    if b.not_after <= b.not_before {
        return Err(LeaseError::EmptyWindow {
            not_before: b.not_before,
            not_after: b.not_after,
        });
    }
    let ttl = b.not_after - b.not_before;
    if ttl > ctx.max_ttl_secs {
        return Err(LeaseError::TtlTooLong {
            ttl,
            max: ctx.max_ttl_secs,
        });
    }
    if b.not_after <= ctx.now {
        return Err(LeaseError::Expired {
            not_after: b.not_after,
            now: ctx.now,
        });
    }
    let issuers: Vec<&Signature> = lease
        .signatures
        .iter()
        .filter(|s| s.role == Role::Issuer)
        .collect();
    let [issuer] = issuers.as_slice() else {
        return Err(LeaseError::IssuerCount {
            found: issuers.len(),
        });
    };
    let mut signers: Vec<Signer> = Vec::new();
    let mut untrusted: Vec<String> = Vec::new();
    // The issuer first, so `signers[0]` is the issuer.
    let ordered =
        std::iter::once(*issuer).chain(lease.signatures.iter().filter(|s| s.role != Role::Issuer));
    for sig in ordered {
        match check_signature(sig, b, ctx.trusted) {
            SignatureStatus::Invalid(key) => {
                return Err(LeaseError::Tampered {
                    key_id: key.id.to_string(),
                    operator: key.operator.clone(),
                })
            }
            SignatureStatus::Untrusted => {
                if sig.role == Role::Issuer {
                    return Err(LeaseError::IssuerUntrusted {
                        key_id: sig.key_id.to_string(),
                        operator: sig.operator.clone(),
                    });
                }
                let name = format!("{} ({})", sig.key_id, sig.operator);
                if !untrusted.contains(&name) {
                    untrusted.push(name);
                }
            }
            SignatureStatus::Valid(key) => {
                if !signers.iter().any(|s| s.key_id == key.id) {
                    signers.push(Signer {
                        key_id: key.id,
                        operator: key.operator.clone(),
                        role: sig.role,
                    });
                }
            }
        }
    }
    let needed = ctx.required_approvals.max(1);
    let present = u32::try_from(signers.len()).unwrap_or(u32::MAX);
    if present < needed {
        return Err(LeaseError::TooFewSigners {
            needed,
            present,
            untrusted,
        });
    }
    Ok(Verified {
        signers,
        starts_at: (b.not_before > ctx.now).then_some(b.not_before),
    })
}
