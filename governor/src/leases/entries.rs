//! The lease manager's lease entries in the kernel, on the boot clock: writing and removing
//! them, placing the stored leases again when the daemon starts, and the tick that records
//! starts and ends.
//!
//! Several live leases may hold the same kernel key (agent, class, object); the kernel keeps
//! one entry per key, and [`window::choose`] picks it: the lease in force with the latest
//! end, else the next one to start (its entry goes in ahead, and the kernel opens it at its
//! boot-clock start). Every change of a lease's state refreshes the keys it holds.

use std::collections::HashMap;

use governor_common::{LeaseEntry, LeaseKey};

use super::{
    clock::{self, Now},
    store::{Record, State},
    window::{self, BootWindow},
    LeaseError, LeaseManager,
};

impl LeaseManager {
    /// Lease `r`'s window if it lies on this boot.
    pub(super) fn window<'a>(&self, r: &'a Record) -> Option<&'a BootWindow> {
        r.boot.as_ref().filter(|w| w.boot_id == self.boot_id)
    }

    /// The ids of the leases still live (enforced or scheduled), collected so that the
    /// records can be changed while going through them.
    pub(super) fn live_ids(&self) -> Vec<String> {
        self.records
            .values()
            .filter(|r| r.state.is_live())
            .map(|r| r.id.clone())
            .collect()
    }

    /// The entry `key` should hold at `now` among the live leases `installed` says hold it
    /// ([`window::choose`] picks between several), if any.
    pub(super) fn entry_for(
        &self,
        installed: &HashMap<String, Vec<LeaseKey>>,
        key: &LeaseKey,
        now: u64,
    ) -> Option<LeaseEntry> {
        let holders = installed
            .iter()
            .filter(|(_, ks)| ks.contains(key))
            .filter_map(|(id, _)| self.records.get(id))
            .filter(|r| r.state.is_live())
            .filter_map(|r| Some((r.kernel_id, self.window(r)?)));
        window::choose(holders, now)
    }

    /// Writes into the kernel the entry each of `keys` should hold now (or removes it).
    fn refresh(&self, keys: &[LeaseKey]) -> Result<(), LeaseError> {
        let now = clock::boot_ns();
        let mut e = self
            .enforcer
            .lock()
            .map_err(|_| LeaseError::Internal("the enforcer lock is poisoned".into()))?;
        for key in keys {
            let res = match self.entry_for(&self.installed, key, now) {
                Some(entry) => e.set_lease(*key, entry),
                None => e.remove_lease(key),
            };
            res.map_err(|err| LeaseError::Internal(format!("lease entry {key:?}: {err}")))?;
        }
        Ok(())
    }

    /// Writes lease `id`'s entries into the kernel (where another live lease holds the same
    /// entry, [`window::choose`] decides which one the kernel keeps).
    pub(super) fn install(&mut self, id: &str) -> Result<(), LeaseError> {
        if !self.records.contains_key(id) {
            return Err(LeaseError::NotFound(format!("no lease {id}")));
        }
        let keys = self.installed.get(id).cloned().unwrap_or_default();
        self.refresh(&keys)
            .map_err(|e| LeaseError::Internal(format!("installing lease {id}: {e}")))
    }

    /// Takes lease `id`'s entries out of the kernel, handing each entry that another live
    /// lease also holds to that lease.
    pub(super) fn uninstall(&mut self, id: &str) {
        let Some(keys) = self.installed.remove(id) else {
            return;
        };
        if let Err(err) = self.refresh(&keys) {
            tracing::error!(lease = id, error = %err,
                "could not remove a lease entry from the kernel (it still ends there on time)");
        }
    }

    /// Raises the wall clock's high-water mark to `now` (written at once if `force`).
    pub(super) fn advance_mark(&mut self, now: Now, force: bool) {
        match self.mark.advance(now.wall_ms, now.boot_ns, force) {
            Ok(()) => self.mark_failing = false,
            Err(e) if !self.mark_failing => {
                self.mark_failing = true;
                tracing::error!(target: "governor::lease", error = %e,
                    "cannot record the wall clock's high-water mark: after a reboot, leases \
                     are placed against an older mark");
            }
            Err(_) => {}
        }
    }

    /// Places every live lease of the store on this boot's clock ([`window::on_restart`]),
    /// checks it again (keys and policy may have changed since) and writes its entries: a
    /// lease ended by its window is recorded expired, however valid the wall clock makes it
    /// look; one that cannot be placed is dropped with the reason.
    pub(super) fn restore(&mut self) {
        let now = Now::read();
        for id in self.live_ids() {
            let Some(r) = self.records.get(&id) else {
                continue;
            };
            let placed = window::on_restart(
                r.boot.as_ref(),
                &self.boot_id,
                now,
                &self.mark_found,
                r.not_before,
                r.not_after,
            );
            let how = placed.describe();
            let Some(w) = placed.window().cloned() else {
                self.drop_lease(&id, &how);
                continue;
            };
            if let Some(r) = self.records.get_mut(&id) {
                r.boot = Some(w.clone());
            }
            if w.ended(now.boot_ns) {
                tracing::info!(target: "governor::lease", lease = %id, placed = %how,
                    "lease ended while no daemon ran: it stays out of the kernel");
                self.change(
                    &id,
                    State::Expired,
                    "expired",
                    &format!("at restart ({how})"),
                );
                continue;
            }
            match self.recheck(&id) {
                Ok(checked) if checked.have >= checked.need => {
                    if let Some(r) = self.records.get_mut(&id) {
                        r.scopes = checked.scopes.iter().map(|(s, _)| s.clone()).collect();
                    }
                    let keys: Vec<LeaseKey> =
                        checked.scopes.into_iter().flat_map(|(_, k)| k).collect();
                    self.installed.insert(id.clone(), keys);
                    if let Err(e) = self.install(&id) {
                        self.drop_lease(&id, &e.to_string());
                    } else if w.started(now.boot_ns) {
                        self.change(&id, State::Enforced, "reinstalled", &how);
                    } else {
                        self.change(&id, State::Scheduled, "scheduled", &how);
                    }
                }
                Ok(checked) => self.drop_lease(
                    &id,
                    &format!(
                        "{} of the {} approvals it needs are still valid",
                        checked.have, checked.need
                    ),
                ),
                Err(e) => self.drop_lease(&id, &e.to_string()),
            }
        }
        self.tick();
    }

    /// Records the end of ended leases (removing their entries) and the start of scheduled
    /// ones, both by their boot-clock windows, and raises the wall clock's mark.
    pub fn tick(&mut self) {
        let now = Now::read();
        self.advance_mark(now, false);
        let ended_at = |a: &LeaseManager, r: &Record| match a.window(r) {
            Some(w) => w.ended(now.boot_ns),
            // Not placed on this boot (cannot happen after `restore`): the wall clock.
            None => r.not_after.saturating_mul(1000) <= now.wall_ms,
        };
        let ended: Vec<String> = self
            .records
            .values()
            .filter(|r| r.state.is_live() && ended_at(self, r))
            .map(|r| r.id.clone())
            .collect();
        for id in ended {
            self.uninstall(&id);
            self.change(&id, State::Expired, "expired", "");
            tracing::info!(target: "governor::lease", lease = %id, "lease expired");
        }
        let due: Vec<String> = self
            .records
            .values()
            .filter(|r| {
                r.state == State::Scheduled
                    && self.window(r).is_some_and(|w| w.started(now.boot_ns))
            })
            .map(|r| r.id.clone())
            .collect();
        for id in due {
            // Its entries are in already (or another lease's that ends later): refresh them,
            // now that it is in force.
            match self.install(&id) {
                Ok(()) => {
                    self.change(&id, State::Enforced, "enforced", "not_before reached");
                    tracing::info!(target: "governor::lease", lease = %id, "lease enforced");
                }
                Err(e) => self.drop_lease(&id, &e.to_string()),
            }
        }
        if now.wall_ms >= self.next_prune_ms {
            self.next_prune_ms = now.wall_ms.saturating_add(PRUNE_EVERY_MS);
            for id in self.prune_snapshots() {
                tracing::info!(target: "governor::rollback", lease = %id,
                    "snapshot removed: its retention passed");
            }
        }
    }
}

/// How often the tick removes snapshots whose retention passed.
const PRUNE_EVERY_MS: u64 = 60_000;
