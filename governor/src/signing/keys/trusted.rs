//! The trusted-keys directory: every `<key_id>.pub` in it whose fingerprint and
//! self-signature check out. A bad file is reported and never trusted; the good ones load.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use ed25519_dalek::VerifyingKey;

use super::{error::io, id, KeyError, KeyId, PublicKeyFile};

/// One operator key the daemon trusts.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub id: KeyId,
    pub operator: String,
    pub key: VerifyingKey,
    pub file: PathBuf,
}

/// The trusted keys, by id.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, TrustedKey>,
}

impl TrustedKeys {
    /// Reads every `*.pub` in `dir` (not recursively, in name order). Returns the keys that
    /// check out and one error per file that does not (unreadable, malformed, fingerprint
    /// or file name mismatch, bad self-signature, duplicate key). A missing or unreadable
    /// directory is one error and no keys.
    pub fn load(dir: &Path) -> (TrustedKeys, Vec<KeyError>) {
        let mut out = TrustedKeys::default();
        let mut errors = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return (out, vec![io(dir)(e)]),
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => paths.push(entry.path()),
                Err(e) => errors.push(io(dir)(e)),
            }
        }
        paths.retain(|p| p.extension().is_some_and(|e| e == "pub"));
        paths.sort();
        for path in paths {
            if let Err(e) = out.add_file(&path) {
                errors.push(e);
            }
        }
        (out, errors)
    }

    fn add_file(&mut self, path: &Path) -> Result<(), KeyError> {
        let file = PublicKeyFile::load(path)?;
        if let Some(first) = self.keys.get(&file.id) {
            return Err(KeyError::Duplicate {
                path: path.to_owned(),
                first: first.file.clone(),
                key_id: file.id.to_string(),
            });
        }
        if path.file_name().and_then(|n| n.to_str()) != Some(file.file_name().as_str()) {
            return Err(KeyError::FileName {
                path: path.to_owned(),
                key_id: file.id.to_string(),
            });
        }
        self.insert(TrustedKey {
            id: file.id,
            operator: file.operator,
            key: file.key,
            file: path.to_owned(),
        });
        Ok(())
    }

    /// Adds a key (tests, and callers that hold keys from elsewhere).
    pub fn insert(&mut self, key: TrustedKey) {
        self.keys.insert(key.id, key);
    }

    pub fn get(&self, id: &KeyId) -> Option<&TrustedKey> {
        self.keys.get(id)
    }

    /// The one key whose id starts with `prefix` (at least `MIN_PREFIX` hex digits).
    pub fn find(&self, prefix: &str) -> Result<&TrustedKey, KeyError> {
        let p = id::prefix(prefix)?;
        let matches: Vec<&TrustedKey> = self
            .keys
            .values()
            .filter(|k| k.id.starts_with(&p))
            .collect();
        match matches.as_slice() {
            [] => Err(KeyError::NotFound(p)),
            [one] => Ok(one),
            many => Err(KeyError::Ambiguous {
                prefix: p,
                matches: many.iter().map(|k| k.id.to_string()).collect(),
            }),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
