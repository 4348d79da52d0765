//! Operator keys. Each operator holds an ed25519 secret key (a 0600 TOML file that never
//! leaves their machine); its public half, self-signed so the operator's name is bound to
//! it, goes into the trusted-keys directory the daemon reads. A key is named by its id, the
//! fingerprint of its public key.
//!
//! May import `host` (bounded reads, the durable writer), `time` and the rest of `signing/`.

mod error;
mod id;
mod public;
mod secret;
mod trusted;

#[cfg(test)]
mod tests;

use std::{
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

pub use error::KeyError;
pub use id::KeyId;
pub use public::PublicKeyFile;
pub use secret::SecretKey;
pub use trusted::{TrustedKey, TrustedKeys};

use super::encode::Canon;

/// Where the daemon reads trusted public keys (`<key_id>.pub`).
pub const DEFAULT_TRUSTED_DIR: &str = "/etc/governor/trusted-keys";

/// Environment variable naming the secret-key directory.
pub const KEY_DIR_ENV: &str = "GOVERNOR_KEY_DIR";

/// The secret-key directory: `$GOVERNOR_KEY_DIR`, else `~/.config/governor/keys`.
pub fn default_secret_dir() -> Result<PathBuf, KeyError> {
    if let Some(dir) = std::env::var_os(KEY_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .ok_or(KeyError::NoHome)?;
    Ok(PathBuf::from(home).join(".config/governor/keys"))
}

/// The message a key signs to bind its operator: key id, operator, public key and creation
/// time, under its own domain tag.
fn self_signed_message(id: &KeyId, operator: &str, public: &[u8; 32], created: u64) -> Vec<u8> {
    Canon::new(b"governor-key-v1\0")
        .bytes(&id.0)
        .str(operator)
        .bytes(public)
        .u64(created)
        .finish()
}

/// Checks an operator identity: `Name <email>` or a bare email address.
pub fn check_operator(operator: &str) -> Result<(), KeyError> {
    let bad = |why| {
        Err(KeyError::Operator {
            operator: operator.to_owned(),
            why,
        })
    };
    if operator.trim() != operator || operator.is_empty() {
        return bad("it is empty or starts or ends with a space");
    }
    if operator.len() > 200 {
        return bad("it is longer than 200 bytes");
    }
    if operator.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    let email = match operator.split_once('<') {
        None => operator,
        Some((name, rest)) => {
            let Some(email) = rest.strip_suffix('>') else {
                return bad("the email must end with `>`");
            };
            if name.trim().is_empty() || !name.ends_with(' ') {
                return bad("a name and a space must come before `<`");
            }
            email
        }
    };
    let Some((local, domain)) = email.split_once('@') else {
        return bad("the email has no `@`");
    };
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || email
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return bad("the email is not of the form user@domain");
    }
    Ok(())
}

/// Decodes base64 into exactly `N` bytes.
pub(crate) fn decode_fixed<const N: usize>(text: &str) -> Result<[u8; N], String> {
    use base64ct::{Base64, Encoding};
    let bytes = Base64::decode_vec(text.trim()).map_err(|_| "it is not valid base64".to_owned())?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| format!("it decodes to {} bytes, not {N}", bytes.len()))
}

pub(crate) fn encode(bytes: &[u8]) -> String {
    use base64ct::{Base64, Encoding};
    Base64::encode_string(bytes)
}

/// A TOML string literal of `s` (quoted and escaped).
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Writes `text` to a new key file at `path` (mode `mode`, from creation on), creating its
/// parent directories (mode `dir_mode`) first; refuses to replace an existing file.
fn create_file(path: &Path, text: &str, mode: u32, dir_mode: u32) -> Result<(), KeyError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(parent)
            .map_err(error::io(parent))?;
    }
    crate::host::write::create_new(path, text.as_bytes(), mode).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists {
            path: path.to_owned(),
        },
        _ => error::io(path)(e),
    })
}

/// A key file's TOML, parsed into `T`; a syntax error names the file and line.
fn from_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, KeyError> {
    toml::from_str(text).map_err(|e| {
        let (line, message) = super::toml_error(text, &e);
        KeyError::Syntax {
            path: path.to_owned(),
            line,
            message,
        }
    })
}
