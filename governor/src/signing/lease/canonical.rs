//! The bytes a lease signature covers. The body encodes as:
//!
//! ```text
//! "governor-lease-v1\0"
//! version u64 | id str | agent str | host str | not_before u64 | not_after u64
//! | reason str | ticket opt(str) | request opt(str)
//! | scope count u64 | per scope: class str | target str | pin opt(dev u64 | ino u64)
//! ```
//!
//! (str: u32 big-endian length then UTF-8 bytes; u64 big-endian; opt: byte 0, or byte 1 then
//! the value). A signature covers more than the body, so that a signer's role or time cannot
//! be changed either:
//!
//! ```text
//! "governor-lease-sig-v1\0" | body bytes | role u8 (1 issuer, 2 approver) | signed_at u64
//! | key_id bytes (16) | operator str
//! ```

use super::{LeaseBody, Role};
use crate::signing::{encode::Canon, keys::KeyId};

impl LeaseBody {
    /// The canonical encoding of the body; independent of how the file is formatted.
    pub fn canonical(&self) -> Vec<u8> {
        let mut c = Canon::new(b"governor-lease-v1\0");
        c.u64(self.version.into())
            .str(&self.id)
            .str(&self.agent)
            .str(&self.host)
            .u64(self.not_before)
            .u64(self.not_after)
            .str(&self.reason)
            .opt(self.ticket.as_deref(), |c, t| {
                c.str(t);
            })
            .opt(self.request.as_deref(), |c, r| {
                c.str(r);
            })
            .u64(self.scopes.len() as u64);
        for scope in &self.scopes {
            c.str(&scope.class)
                .str(&scope.target)
                .opt(scope.pin, |c, pin| {
                    c.u64(pin.dev).u64(pin.ino);
                });
        }
        c.finish()
    }
}

/// The message one signer signs.
pub fn signed_message(
    body: &LeaseBody,
    role: Role,
    signed_at: u64,
    key_id: &KeyId,
    operator: &str,
) -> Vec<u8> {
    Canon::new(b"governor-lease-sig-v1\0")
        .bytes(&body.canonical())
        .u8(role.tag())
        .u64(signed_at)
        .bytes(&key_id.0)
        .str(operator)
        .finish()
}
