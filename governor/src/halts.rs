//! The halt list: which agents an operator halted, when, by whom and why
//! ([`crate::host::freeze::Halt`]), kept in `<state>/halts.json` across daemon restarts and
//! reboots until `governor resume`. A halted agent takes no leases; freezing its cgroup is
//! [`crate::host::freeze`]'s, revoking its leases the lease manager's.
//!
//! Imports only the ground floor (`crate::host`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::host::{
    files::{self, ReadError},
    freeze::Halt,
    write,
};

/// Why the halt list could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum HaltsError {
    #[error(
        "{}: not governor's halt list ({why}); fix or remove it (agents listed there stay \
         halted until then)",
        path.display()
    )]
    Corrupt { path: PathBuf, why: String },
    #[error("{0}")]
    Read(ReadError),
    #[error("{0}")]
    Encode(String),
    #[error("lease store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The halted agents, by name, and the file they are saved in.
#[derive(Debug)]
pub struct Halts {
    halts: BTreeMap<String, Halt>,
    file: PathBuf,
}

impl Halts {
    /// Reads `<state_dir>/halts.json` (none there: no agent is halted).
    pub fn open(state_dir: &Path) -> Result<Halts, HaltsError> {
        let file = state_dir.join("halts.json");
        let halts = match files::read(&file, files::STATE) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| HaltsError::Corrupt {
                path: file.clone(),
                why: e.to_string(),
            })?,
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => BTreeMap::new(),
            Err(e) => return Err(HaltsError::Read(e)),
        };
        Ok(Halts { halts, file })
    }

    /// The halt of `agent`, if it is halted.
    pub fn get(&self, agent: &str) -> Option<&Halt> {
        self.halts.get(agent)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Halt> {
        self.halts.values()
    }

    /// Records (and saves) a halt.
    pub fn record(&mut self, halt: Halt) -> Result<(), HaltsError> {
        self.halts.insert(halt.agent.clone(), halt);
        self.save()
    }

    /// Forgets `agent`'s halt (and saves); whether it was halted.
    pub fn clear(&mut self, agent: &str) -> Result<bool, HaltsError> {
        let was = self.halts.remove(agent).is_some();
        self.save()?;
        Ok(was)
    }

    fn save(&self) -> Result<(), HaltsError> {
        let bytes = serde_json::to_vec_pretty(&self.halts)
            .map_err(|e| HaltsError::Encode(e.to_string()))?;
        write::replace(&self.file, &bytes, 0o600).map_err(|source| HaltsError::Io {
            path: self.file.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::freeze::Action;

    #[test]
    fn halts_survive_a_reopen_and_a_bad_file_is_named() {
        let dir = std::env::temp_dir().join(format!("governor-halts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut h = Halts::open(&dir).expect("no file: empty");
        assert!(h.get("a").is_none());
        h.record(Halt {
            agent: "a".into(),
            action: Action::Freeze,
            at_ms: 1,
            by_uid: 0,
            reason: Some("why".into()),
            revoked: vec!["l-1".into()],
            enforced_in_us: 5,
        })
        .expect("saved");
        let mut again = Halts::open(&dir).expect("reopened");
        assert_eq!(
            again.get("a").map(|x| x.revoked.clone()),
            Some(vec!["l-1".into()])
        );
        assert!(again.clear("a").expect("cleared"));
        assert!(!Halts::open(&dir)
            .expect("reopened")
            .clear("a")
            .expect("none"));
        std::fs::write(dir.join("halts.json"), b"[").expect("write");
        let e = Halts::open(&dir).expect_err("corrupt").to_string();
        assert!(e.contains("not governor's halt list"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
