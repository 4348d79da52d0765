//! The daemon's side of `governor key protect`: registers an operator's secret key file in
//! the registry ([`crate::secrets`]) and writes its protection into the enforcing generation
//! at once, through the reloader.

use std::{
    os::unix::fs::MetadataExt,
    sync::{Arc, Mutex, PoisonError},
};

use super::reload::Reloader;
use crate::{
    admin::secret::{NotProtected, Protect},
    api::{protocol::ErrorCode, reply::Protected},
    secrets::Registry,
};

/// Registers secret key files and protects them at once.
pub struct Guard {
    pub registry: Arc<Mutex<Registry>>,
    pub reloader: Reloader,
}

impl Protect for Guard {
    /// Registers `path` for `uid` and writes its protection into the enforcing generation.
    /// The reply: the canonical path, its inode, and whether it was new.
    fn protect(&self, path: &str, uid: u32) -> Result<Protected, NotProtected> {
        let (real, new) = self
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(path, uid)
            .map_err(|e| NotProtected {
                code: e.code(),
                message: e.to_string(),
            })?;
        self.reloader.protect_own().map_err(|e| NotProtected {
            code: ErrorCode::Internal,
            message: format!(
                "{}: registered (it is protected from the next restart or policy reload on), \
                 but not protected now: {e}",
                real.display()
            ),
        })?;
        let ino = std::fs::metadata(&real).map(|m| m.ino()).unwrap_or(0);
        tracing::info!(target: "governor::secrets", file = %real.display(), uid, new,
            "secret key file protected from agents (every file class and reads)");
        Ok(Protected {
            path: real.display().to_string(),
            inode: ino,
            new,
        })
    }
}
