//! The public key file `<key_id>.pub`: TOML with the key id, the operator, the base64
//! public key, the creation time and the key's signature over all four (see
//! `self_signed_message`), so an edited operator name or a swapped key is detected.

use std::path::Path;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;
use toml::{value::Datetime, Spanned};

use super::{check_operator, decode_fixed, encode, quote, self_signed_message, KeyError, KeyId};
use crate::{host::files, signing::line_of, time};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublic {
    key_id: Spanned<String>,
    operator: Spanned<String>,
    public_key: Spanned<String>,
    created: Spanned<Datetime>,
    self_signature: Spanned<String>,
}

/// A public key bound to its operator by its own signature.
#[derive(Debug, Clone)]
pub struct PublicKeyFile {
    pub id: KeyId,
    pub operator: String,
    pub key: VerifyingKey,
    pub created: u64,
    pub self_signature: [u8; 64],
}

impl PublicKeyFile {
    /// The file name it must have in a trusted-keys directory.
    pub fn file_name(&self) -> String {
        format!("{}.pub", self.id)
    }

    pub fn to_toml(&self) -> String {
        format!(
            "# governor operator public key. The self_signature (by this key) covers key_id,\n\
             # operator, public_key and created: editing any of them makes the file untrusted.\n\
             key_id = {}\noperator = {}\npublic_key = {}\ncreated = {}\nself_signature = {}\n",
            quote(&self.id.to_string()),
            quote(&self.operator),
            quote(&encode(self.key.as_bytes())),
            time::to_datetime(self.created),
            quote(&encode(&self.self_signature)),
        )
    }

    /// Writes a new file (mode 0644; parents created 0755); refuses to replace one.
    pub fn create(&self, path: &Path) -> Result<(), KeyError> {
        super::create_file(path, &self.to_toml(), 0o644, 0o755)
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = files::read_text(path, files::KEY)?;
        Self::parse(&text, path)
    }

    /// Parses and checks a public key file: its fingerprint must match `key_id` and its
    /// self-signature must verify.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyError> {
        let raw: RawPublic = super::from_toml(text, path)?;
        let field = |field, span: std::ops::Range<usize>, why: String| KeyError::Field {
            path: path.to_owned(),
            line: line_of(text, span.start),
            field,
            why,
        };
        let bytes: [u8; 32] = decode_fixed(raw.public_key.get_ref())
            .map_err(|why| field("public_key", raw.public_key.span(), why))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
            field(
                "public_key",
                raw.public_key.span(),
                "it is not a valid ed25519 public key".to_owned(),
            )
        })?;
        let self_signature: [u8; 64] = decode_fixed(raw.self_signature.get_ref())
            .map_err(|why| field("self_signature", raw.self_signature.span(), why))?;
        check_operator(raw.operator.get_ref())
            .map_err(|e| field("operator", raw.operator.span(), e.to_string()))?;
        let created = time::from_datetime(raw.created.get_ref())
            .map_err(|e| field("created", raw.created.span(), e.to_string()))?;
        let id = KeyId::of(&key);
        if id.to_string() != *raw.key_id.get_ref() {
            return Err(KeyError::Fingerprint {
                path: path.to_owned(),
                stated: raw.key_id.into_inner(),
                actual: id.to_string(),
            });
        }
        let operator = raw.operator.into_inner();
        let msg = self_signed_message(&id, &operator, key.as_bytes(), created);
        key.verify_strict(&msg, &Signature::from_bytes(&self_signature))
            .map_err(|_| KeyError::SelfSignature {
                path: path.to_owned(),
            })?;
        Ok(Self {
            id,
            operator,
            key,
            created,
            self_signature,
        })
    }
}
