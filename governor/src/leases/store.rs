//! The lease store: every lease the daemon accepted, kept in its state directory so that a
//! restarted daemon re-installs the unexpired ones and refuses a lease id it has seen before
//! (replay). Each lease is two files under `<state>/leases/`: `<id>.lease`, the signed file
//! exactly as submitted (the receipt), and `<id>.json`, its [`Record`]: what the daemon made
//! of it and everything that happened to it since. Both are written atomically (temporary
//! file, fsync, rename), so a crash leaves the old or the new version, never a torn one.

use std::{
    collections::BTreeMap,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::window::BootWindow;
use crate::{
    api::rollback::SnapshotView,
    host::{files, write},
};

pub use crate::host::write::StoreError;

/// Where a lease stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Accepted; its `not_before` is still ahead.
    Scheduled,
    /// Installed in the kernel.
    Enforced,
    /// Past its `not_after`; removed from the kernel.
    Expired,
    Revoked {
        by_uid: u32,
        reason: Option<String>,
    },
    /// Accepted once, but no longer valid when a restarted daemon checked it again (a key
    /// no longer trusted, a policy that changed); never installed again.
    Dropped {
        reason: String,
    },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Enforced => "enforced",
            State::Expired => "expired",
            State::Revoked { .. } => "revoked",
            State::Dropped { .. } => "dropped",
        }
    }

    /// Whether the lease may still (come to) allow something.
    pub fn is_live(&self) -> bool {
        matches!(self, State::Scheduled | State::Enforced)
    }
}

/// One scope as accepted: what the lease file said and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeRecord {
    pub class: String,
    pub target: String,
    /// The object as resolved when last installed (symlinks followed).
    pub object: String,
    /// The policy resource whose `lease` decision it lifts.
    pub resource: String,
}

/// One signature that counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerRecord {
    pub key_id: String,
    pub operator: String,
    /// "issuer" or "approver".
    pub role: String,
}

/// One step of a lease's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// submitted, scheduled, enforced, expired, revoked, dropped, reinstalled.
    pub what: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What the daemon knows about one lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The id the kernel reports in events (see [`kernel_id`]).
    pub kernel_id: u64,
    pub agent: String,
    pub scopes: Vec<ScopeRecord>,
    /// Unix seconds.
    pub not_before: u64,
    pub not_after: u64,
    /// Where `not_before` and `not_after` lie on the boot clock, fixed when the daemon
    /// accepted the lease (or placed it again after a reboot); what the kernel and the
    /// daemon go by. Absent in records of daemons from before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootWindow>,
    pub reason: String,
    pub ticket: Option<String>,
    /// The agent request this lease answers, if any.
    pub request: Option<String>,
    pub signers: Vec<SignerRecord>,
    pub submitted_by_uid: u32,
    /// The policy (name and version) it was accepted under.
    pub policy: String,
    /// Stored nested (serde cannot read back an internally tagged enum flattened into its
    /// parent); clients see its fields at the top level (`leases::view`).
    #[serde(rename = "status")]
    pub state: State,
    pub history: Vec<Change>,
    /// Its snapshot, taken before its entries reached the kernel (or why it has none), and
    /// the restores of it. Absent in records of daemons from before snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotView>,
}

impl Record {
    /// Appends a step at `at_ms`.
    pub fn log(&mut self, at_ms: u64, what: &str, detail: impl Into<String>) {
        self.history.push(Change {
            at_ms,
            what: what.to_owned(),
            detail: detail.into(),
        });
    }

    /// When it was (last) installed in the kernel, in unix milliseconds.
    pub fn enforced_at_ms(&self) -> Option<u64> {
        self.history
            .iter()
            .rev()
            .find(|c| c.what == "enforced" || c.what == "reinstalled")
            .map(|c| c.at_ms)
    }
}

pub use crate::signing::lease::kernel_id;

/// Whether `id` may name files in the store: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The store directory.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating, mode 0700) the store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let dir = state_dir.join("leases");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })?;
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every record, by id, and the records that could not be read.
    pub fn load(&self) -> Result<(BTreeMap<String, Record>, Vec<StoreError>), StoreError> {
        let io = |source| StoreError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut records = BTreeMap::new();
        let mut bad = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = files::read(&path, files::STATE)
                .map_err(StoreError::Read)
                .and_then(|bytes| {
                    serde_json::from_slice::<Record>(&bytes).map_err(|e| StoreError::Corrupt {
                        path: path.clone(),
                        why: e.to_string(),
                    })
                });
            match parsed {
                Ok(r) => {
                    records.insert(r.id.clone(), r);
                }
                Err(e) => bad.push(e),
            }
        }
        Ok((records, bad))
    }

    /// Whether a lease with this id was ever accepted (its record exists).
    pub fn seen(&self, id: &str) -> bool {
        self.record_path(id).exists()
    }

    /// The signed lease file kept for `id`.
    pub fn lease_text(&self, id: &str) -> Result<String, StoreError> {
        let path = self.dir.join(format!("{id}.lease"));
        Ok(files::read_text(&path, files::LEASE)?)
    }

    /// Keeps the signed file of a newly accepted lease.
    pub fn save_lease(&self, id: &str, text: &str) -> Result<(), StoreError> {
        write_atomic(&self.dir.join(format!("{id}.lease")), text.as_bytes())
    }

    pub fn save(&self, record: &Record) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Corrupt {
            path: self.record_path(&record.id),
            why: e.to_string(),
        })?;
        write_atomic(&self.record_path(&record.id), &bytes)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
}

/// Replaces `path` with `bytes` (mode 0600) through [`write::replace`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write::replace(path, bytes, 0o600).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            id: id.to_owned(),
            kernel_id: kernel_id(id),
            agent: "a".into(),
            scopes: vec![ScopeRecord {
                class: "delete".into(),
                target: "/x".into(),
                object: "/x".into(),
                resource: "/x".into(),
            }],
            not_before: 10,
            not_after: 20,
            boot: Some(BootWindow {
                boot_id: "b".into(),
                not_before_ns: 1,
                not_after_ns: 2,
            }),
            reason: "r".into(),
            ticket: None,
            request: None,
            signers: Vec::new(),
            submitted_by_uid: 0,
            policy: "p@v".into(),
            state: State::Revoked {
                by_uid: 0,
                reason: Some("done".into()),
            },
            history: Vec::new(),
            snapshot: None,
        }
    }

    #[test]
    fn records_survive_a_round_trip_and_bad_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("governor-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        let mut r = record("l-1");
        r.log(5, "submitted", "");
        store.save(&r).expect("save");
        store.save_lease("l-1", "[lease]\n").expect("save lease");
        std::fs::write(store.dir().join("junk.json"), b"{").expect("write junk");
        let (records, bad) = store.load().expect("load");
        assert_eq!(records.get("l-1"), Some(&r));
        assert_eq!(bad.len(), 1);
        assert!(bad[0].to_string().contains("junk.json"), "{}", bad[0]);
        assert!(store.seen("l-1") && !store.seen("l-2"));
        assert_eq!(store.lease_text("l-1").expect("text"), "[lease]\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_are_checked_before_they_name_files() {
        assert!(valid_id("l-3f2a_9"));
        for bad in ["", "../x", "a/b", "a.json", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert_ne!(kernel_id("a"), kernel_id("b"));
        assert_ne!(kernel_id(""), 0);
    }
}
