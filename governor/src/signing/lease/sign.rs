//! Signing: the issuer's signature makes a lease, each approver's cosignature adds one.

use super::{canonical::signed_message, Lease, LeaseBody, LeaseError, Role, Signature};
use crate::signing::keys::SecretKey;

fn signature(body: &LeaseBody, key: &SecretKey, role: Role, now: u64) -> Signature {
    let msg = signed_message(body, role, now, &key.id(), key.operator());
    Signature {
        key_id: key.id(),
        operator: key.operator().to_owned(),
        role,
        signed_at: now,
        signature: key.sign(&msg),
    }
}

impl Lease {
    /// A lease of `body` signed by `key` in `role` (the issuer, normally) at `now`.
    pub fn sign(body: LeaseBody, key: &SecretKey, role: Role, now: u64) -> Lease {
        let sig = signature(&body, key, role, now);
        Lease {
            body,
            signatures: vec![sig],
        }
    }

    /// Adds `key`'s approval. Refuses a key that already signed this lease.
    pub fn cosign(&mut self, key: &SecretKey, now: u64) -> Result<(), LeaseError> {
        if self.signatures.iter().any(|s| s.key_id == key.id()) {
            return Err(LeaseError::AlreadySigned {
                key_id: key.id().to_string(),
                operator: key.operator().to_owned(),
            });
        }
        let sig = signature(&self.body, key, Role::Approver, now);
        self.signatures.push(sig);
        Ok(())
    }
}
