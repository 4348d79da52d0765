//! Carrying the live leases across a policy reload. Before a new kernel generation attaches,
//! [`LeaseManager::carry`] re-checks every live lease against the new policy (every check a
//! restarted daemon runs, `restore`) and writes the entries of the enforced ones into the new
//! generation's lease map, so the new generation honours them from its first instant. Nothing
//! of the lease manager changes until [`LeaseManager::commit`], called once the new generation
//! enforces; a reload that fails before then drops the [`Carried`] and the lease manager goes on
//! with the old policy as if nothing happened. A lease the new policy no longer allows (its
//! agent is gone, its scope no longer resolves to something leased) is dropped at commit,
//! with the reason, in its history and the log.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use governor_common::LeaseKey;

use super::{
    clock,
    store::{ScopeRecord, State},
    LeaseError, LeaseManager,
};
use crate::{
    kernel::loader::Enforcer,
    policy::{Compiled, Policy},
};

/// The live leases as the successor policy sees them.
pub struct Carried {
    policy: Arc<Policy>,
    compiled: Arc<Compiled>,
    /// Kernel entries per carried lease, under the new policy.
    installed: HashMap<String, Vec<LeaseKey>>,
    scopes: HashMap<String, Vec<ScopeRecord>>,
    /// Leases kept, by id.
    pub kept: Vec<String>,
    /// Leases the new policy no longer allows: id and why.
    pub dropped: Vec<(String, String)>,
}

impl LeaseManager {
    /// Re-checks every live lease against `policy`/`compiled` and writes the entries of the
    /// enforced ones into `into`, the new generation's maps (not attached yet). The lease manager
    /// itself is left as it was.
    pub fn carry(
        &mut self,
        policy: Arc<Policy>,
        compiled: Arc<Compiled>,
        into: &mut Enforcer,
    ) -> Result<Carried, LeaseError> {
        let live = self.live_ids();
        // `check` reads the lease manager's policy: lend it the new one for the checks.
        let old_policy = std::mem::replace(&mut self.policy, Arc::clone(&policy));
        let old_compiled = std::mem::replace(&mut self.compiled, Arc::clone(&compiled));
        let mut carried = Carried {
            policy,
            compiled,
            installed: HashMap::new(),
            scopes: HashMap::new(),
            kept: Vec::new(),
            dropped: Vec::new(),
        };
        for id in live {
            let outcome = self.recheck(&id);
            match outcome {
                Ok(c) if c.have >= c.need => {
                    carried.scopes.insert(
                        id.clone(),
                        c.scopes.iter().map(|(s, _)| s.clone()).collect(),
                    );
                    carried.installed.insert(
                        id.clone(),
                        c.scopes.into_iter().flat_map(|(_, k)| k).collect(),
                    );
                    carried.kept.push(id);
                }
                Ok(c) => carried.dropped.push((
                    id,
                    format!(
                        "{} of the {} approvals it needs under the new policy are valid",
                        c.have, c.need
                    ),
                )),
                Err(e) => carried.dropped.push((id, e.to_string())),
            }
        }
        self.policy = old_policy;
        self.compiled = old_compiled;
        self.fill(&carried, into)?;
        Ok(carried)
    }

    /// Writes the carried entries of the live leases into `into`; where two leases hold the
    /// same entry, [`window::choose`] picks it (as `install` does).
    fn fill(&self, carried: &Carried, into: &mut Enforcer) -> Result<(), LeaseError> {
        let now = clock::boot_ns();
        let keys: HashSet<LeaseKey> = carried.installed.values().flatten().copied().collect();
        for key in keys {
            if let Some(entry) = self.entry_for(&carried.installed, &key, now) {
                into.set_lease(key, entry)
                    .map_err(|e| LeaseError::Internal(format!("carrying leases: {e}")))?;
            }
        }
        Ok(())
    }

    /// Makes the carried policy the lease manager's, once its generation enforces (the enforcer
    /// the lease manager shares already holds the new generation), and records its load in the
    /// lineage. Dropped leases are recorded with `why` (the reload) and their reason.
    pub fn commit(&mut self, carried: Carried, why: &str) {
        let Carried {
            policy,
            compiled,
            installed,
            mut scopes,
            kept: _,
            dropped,
        } = carried;
        self.policy = policy;
        self.compiled = compiled;
        self.installed = installed;
        // Decisions from now on name this version; lineage says who owns it.
        self.recorder
            .record(crate::lineage::authority::policy_row(&self.policy));
        for (id, s) in scopes.drain() {
            if let Some(r) = self.records.get_mut(&id) {
                r.scopes = s;
            }
        }
        for (id, reason) in dropped {
            let reason = format!("{why}: {reason}");
            tracing::warn!(target: "governor::lease", lease = %id, reason = %reason,
                "lease dropped: the reloaded policy no longer allows it, so it is out of the kernel");
            self.change(
                &id,
                State::Dropped {
                    reason: reason.clone(),
                },
                "dropped",
                &reason,
            );
        }
    }
}
