//! The key id: a key's fingerprint, the first 16 bytes of SHA-256 over its 32-byte ed25519
//! public key, written as 32 lowercase hex digits.

use std::{fmt, str::FromStr};

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use super::KeyError;

/// Shortest prefix that may name a key.
pub const MIN_PREFIX: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// The fingerprint of `key`.
    pub fn of(key: &VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }

    /// Whether this id's hex form starts with `prefix` (lowercase hex).
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.to_string().starts_with(prefix)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = KeyError;

    /// Exactly 32 lowercase hex digits.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadId(s.to_owned());
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(Self(id))
    }
}

/// A key id prefix as a user typed it, checked and lowercased.
pub fn prefix(text: &str) -> Result<String, KeyError> {
    let p = text.trim().to_ascii_lowercase();
    if p.len() > 32 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::BadId(text.to_owned()));
    }
    if p.len() < MIN_PREFIX {
        return Err(KeyError::ShortPrefix(text.to_owned()));
    }
    Ok(p)
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
