//! The secret key file: TOML with the key id, the operator, the base64 32-byte ed25519 seed
//! and the creation time. Created with mode 0600 from the first byte and never overwritten;
//! refused when group or others may read it.

use std::{os::unix::fs::MetadataExt, path::Path};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::Deserialize;
use toml::{value::Datetime, Spanned};

use super::{
    check_operator, decode_fixed, encode, error::io, quote, self_signed_message, KeyError, KeyId,
    PublicKeyFile,
};
use crate::{host::files, time};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    key_id: Spanned<String>,
    operator: Spanned<String>,
    secret: Spanned<String>,
    created: Spanned<Datetime>,
}

/// An operator's signing key.
pub struct SecretKey {
    id: KeyId,
    operator: String,
    signing: SigningKey,
    created: u64,
}

impl SecretKey {
    /// A fresh key from the system's random source.
    pub fn generate(operator: &str, now: u64) -> Result<Self, KeyError> {
        check_operator(operator)?;
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed, operator, now))
    }

    /// The key of a fixed seed (tests and loading).
    pub fn from_seed(seed: [u8; 32], operator: &str, created: u64) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        Self {
            id: KeyId::of(&signing.verifying_key()),
            operator: operator.to_owned(),
            signing,
            created,
        }
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn operator(&self) -> &str {
        &self.operator
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// The self-signed public key file of this key.
    pub fn public_file(&self) -> PublicKeyFile {
        let key = self.verifying_key();
        let msg = self_signed_message(&self.id, &self.operator, key.as_bytes(), self.created);
        PublicKeyFile {
            id: self.id,
            operator: self.operator.clone(),
            key,
            created: self.created,
            self_signature: self.sign(&msg),
        }
    }

    pub fn to_toml(&self) -> String {
        format!(
            "# governor secret key. Keep it private (mode 0600): whoever holds it can sign\n\
             # leases as the operator below.\n\
             key_id = {}\noperator = {}\nsecret = {}\ncreated = {}\n",
            quote(&self.id.to_string()),
            quote(&self.operator),
            quote(&encode(self.signing.as_bytes())),
            time::to_datetime(self.created),
        )
    }

    /// Writes the key to a new file at `path`, mode 0600 from creation on (parent
    /// directories are created mode 0700). Refuses to replace an existing file.
    pub fn create(&self, path: &Path) -> Result<(), KeyError> {
        super::create_file(path, &self.to_toml(), 0o600, 0o700)
    }

    /// Reads a secret key file (a regular file of at most [`files::KEY`]'s size); refuses
    /// one that group or others may read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let file = files::open_regular(path, files::KEY)?;
        let mode = file.metadata().map_err(io(path))?.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        let bytes = files::read_open(file, path, files::KEY)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            KeyError::Read(files::ReadError::NotText {
                path: path.to_owned(),
                what: files::KEY.what,
                source: e.utf8_error(),
            })
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, KeyError> {
        let raw: RawSecret = super::from_toml(text, path)?;
        let field = |field, span: std::ops::Range<usize>, why: String| KeyError::Field {
            path: path.to_owned(),
            line: crate::signing::line_of(text, span.start),
            field,
            why,
        };
        let seed: [u8; 32] = decode_fixed(raw.secret.get_ref())
            .map_err(|why| field("secret", raw.secret.span(), why))?;
        check_operator(raw.operator.get_ref())
            .map_err(|e| field("operator", raw.operator.span(), e.to_string()))?;
        let created = time::from_datetime(raw.created.get_ref())
            .map_err(|e| field("created", raw.created.span(), e.to_string()))?;
        let key = Self::from_seed(seed, raw.operator.get_ref(), created);
        if key.id.to_string() != *raw.key_id.get_ref() {
            return Err(KeyError::Fingerprint {
                path: path.to_owned(),
                stated: raw.key_id.into_inner(),
                actual: key.id.to_string(),
            });
        }
        Ok(key)
    }
}
