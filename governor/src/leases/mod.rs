//! The daemon's lease manager: it turns a signed lease file into kernel lease entries, and
//! takes them out again when the lease ends, is revoked, or its agent is halted.
//!
//! Submit runs every check before anything changes: the file parses; its id is new (a lease
//! is used once: replay is refused, also across restarts, from the [`store`]); its agent is
//! one of the policy's and is not halted; its signatures verify against the trusted keys and
//! enough distinct trusted keys signed for the policy's approval count on each scope's
//! class; its lifetime fits the agent's `max_lease_ttl`; it is for this host; and every scope
//! resolves to something the policy leases ([`resolve`]). Only then is it recorded, with its
//! start and end placed on the boot clock once ([`window`]), and its kernel entries written
//! ([`entries`]): the kernel checks both bounds itself, so no change of the wall clock starts
//! a lease early or ends it late.
//!
//! [`LeaseManager::tick`] only tidies ended entries away, records the expiry and the start of
//! scheduled leases, and raises the wall clock's high-water mark ([`wall_mark`]) that a
//! daemon restarted after a reboot checks before it trusts the wall clock again.
//!
//! Every act leaves lineage rows through the lease manager's recorder
//! ([`crate::lineage::authority`]): the policy and the trusted keys it reads, each accepted
//! lease with its signers, each refusal with its error, and every step after.
//!
//! Owns: the lease store, lease checks (`check`), kernel entries, the boot-clock windows,
//! the clients' view of leases (`view`) and the answers to agents' requests (`approvals`).
//! The halt list is [`crate::halts`], the request book [`crate::requests`], freezing
//! [`crate::host::freeze`]. May import `crate::api` (reply types), `crate::halts`,
//! `crate::requests`, `crate::signing`, `crate::policy`, `crate::kernel` (the lease map),
//! `crate::host`, `crate::time`, and `crate::lineage`'s recorder; never `crate::admin` or
//! `crate::daemon`.

mod approvals;
mod carry;
mod check;
pub mod clock;
mod entries;
pub mod resolve;
mod rollback;
mod rows;
mod snapshot;
pub mod store;
mod view;
pub mod wall_mark;
pub mod window;

#[cfg(test)]
mod lineage_tests;
#[cfg(test)]
mod rollback_tests;
#[cfg(test)]
mod time_tests;

pub use approvals::Ask;
pub use rollback::Trigger;
pub use snapshot::{describe as describe_snapshot, describe_cost};

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use governor_common::{LeaseEntry, LeaseKey};

use crate::lineage::{self, boot::BootClock, recorder::Recorder};

use self::{
    clock::Now,
    resolve::ScopeError,
    store::{Record, State, Store, StoreError},
    wall_mark::{Found, WallMark},
    window::BootWindow,
};
use crate::{
    halts::Halts,
    host::freeze::Halt,
    kernel::loader::{Enforcer, LoadError},
    policy::{Compiled, Policy},
    requests::book::Book,
    rollback::Snapshots,
};

/// Why a request about leases was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Refused on its merits; the message says why and what to do.
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    NotFound(String),
    /// The daemon could not do its part (store, kernel map).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for LeaseError {
    fn from(e: StoreError) -> Self {
        LeaseError::Internal(e.to_string())
    }
}

impl From<ScopeError> for LeaseError {
    fn from(e: ScopeError) -> Self {
        LeaseError::Rejected(e.to_string())
    }
}

/// Where the lease manager installs lease entries: the kernel's lease map (the [`Enforcer`]),
/// or a stand-in that only remembers them (tests).
pub trait LeaseMap: Send {
    fn set_lease(&mut self, key: LeaseKey, entry: LeaseEntry) -> Result<(), LoadError>;
    fn remove_lease(&mut self, key: &LeaseKey) -> Result<(), LoadError>;
}

impl LeaseMap for Enforcer {
    fn set_lease(&mut self, key: LeaseKey, entry: LeaseEntry) -> Result<(), LoadError> {
        Enforcer::set_lease(self, key, entry)
    }

    fn remove_lease(&mut self, key: &LeaseKey) -> Result<(), LoadError> {
        Enforcer::remove_lease(self, key)
    }
}

/// What the lease manager needs from the rest of the daemon.
pub struct Setup {
    pub state_dir: PathBuf,
    pub trusted_dir: PathBuf,
    pub host: String,
    pub policy: Arc<Policy>,
    pub compiled: Arc<Compiled>,
    pub enforcer: Arc<Mutex<dyn LeaseMap>>,
    /// Where policy, key, lease, lifecycle and halt rows go.
    pub recorder: Recorder,
}

/// The leases this daemon knows, and the kernel entries it installed for them.
pub struct LeaseManager {
    store: Store,
    trusted_dir: PathBuf,
    host: String,
    policy: Arc<Policy>,
    compiled: Arc<Compiled>,
    enforcer: Arc<Mutex<dyn LeaseMap>>,
    records: BTreeMap<String, Record>,
    /// Kernel entries per installed lease.
    installed: HashMap<String, Vec<LeaseKey>>,
    /// Halted agents (persisted in `<state>/halts.json`): they take no leases until resumed.
    halts: Halts,
    /// Agents' lease requests.
    requests: Book,
    recorder: Recorder,
    /// Trusted keys already recorded in the lineage (by id).
    keys_recorded: BTreeSet<String>,
    /// This boot's id: lease windows recorded on another boot are placed again.
    boot_id: String,
    /// The wall clock's high-water mark, and what start-up found of it.
    mark: WallMark,
    mark_found: Found,
    /// The last failure to write the mark, logged once until a write succeeds.
    mark_failing: bool,
    /// Leases' snapshots (`<state>/snapshots`).
    snapshots: Snapshots,
    /// When the tick next removes snapshots past their retention (unix ms).
    next_prune_ms: u64,
}

impl LeaseManager {
    /// Opens the store and re-installs what a previous daemon left enforced or scheduled,
    /// after checking each lease again (keys and policy may have changed since).
    pub fn open(setup: Setup) -> Result<LeaseManager, LeaseError> {
        let store = Store::open(&setup.state_dir)?;
        let (records, bad) = store.load()?;
        let (requests, bad_requests) = Book::open(&setup.state_dir)?;
        for e in &bad_requests {
            tracing::error!(error = %e, "request store: record not readable; ignored");
        }
        let halts =
            Halts::open(&setup.state_dir).map_err(|e| LeaseError::Internal(e.to_string()))?;
        for e in &bad {
            tracing::error!(error = %e, "lease store: record not readable; ignored");
        }
        let boot_id = BootClock::now()
            .map_err(|e| {
                LeaseError::Internal(format!(
                    "reading this boot's id (/proc/sys/kernel/random/boot_id), which lease \
                     windows are kept with: {e}"
                ))
            })?
            .boot_id;
        let (mark, mark_found) = WallMark::open(&setup.state_dir);
        if let Found::Unreadable(why) = &mark_found {
            tracing::error!(target: "governor::lease", problem = %why,
                "the wall clock's high-water mark is unreadable");
        }
        let snapshots = Snapshots::new(&setup.state_dir);
        let mut auth = LeaseManager {
            snapshots,
            next_prune_ms: 0,
            store,
            trusted_dir: setup.trusted_dir,
            host: setup.host,
            policy: setup.policy,
            compiled: setup.compiled,
            enforcer: setup.enforcer,
            records,
            installed: HashMap::new(),
            halts,
            requests,
            recorder: setup.recorder,
            keys_recorded: BTreeSet::new(),
            boot_id,
            mark,
            mark_found,
            mark_failing: false,
        };
        auth.recorder
            .record(lineage::authority::policy_row(&auth.policy));
        auth.trusted_keys();
        auth.restore();
        auth.seal_ended();
        Ok(auth)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Where this lease manager's lineage rows go (the kill switch records halts there too).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Marks a lease that no longer verifies as dropped.
    fn drop_lease(&mut self, id: &str, reason: &str) {
        tracing::warn!(target: "governor::lease", lease = id, reason,
            "lease dropped: it no longer verifies, so it is not installed again");
        self.uninstall(id);
        self.change(
            id,
            State::Dropped {
                reason: reason.to_owned(),
            },
            "dropped",
            reason,
        );
    }

    /// Verifies and records lease `text` (from `origin`), installing it now if its
    /// `not_before` has come. `halted` names agents that take no leases now.
    pub fn submit(&mut self, text: &str, origin: &str, uid: u32) -> Result<Record, LeaseError> {
        let received = Now::read();
        let received_ms = received.wall_ms;
        let received_ns = BootClock::now_ns();
        let outcome = self
            .check(text, origin, false, received_ms / 1000)
            .and_then(|c| {
                if let Some(h) = self.halts.get(&c.lease.body.agent) {
                    return Err(LeaseError::Rejected(format!(
                        "{origin}: agent `{}` was halted by uid {}{}; it takes no leases until \
                     `governor resume --agent {}`",
                        c.lease.body.agent,
                        h.by_uid,
                        h.reason
                            .as_ref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default(),
                        c.lease.body.agent
                    )));
                }
                if c.have < c.need {
                    return Err(LeaseError::Rejected(format!(
                    "{origin}: {} distinct trusted key(s) signed this lease, and the policy asks \
                     for {} on its scope(s); another operator adds one with `governor lease \
                     cosign {origin} --key THEIR_KEY`",
                    c.have, c.need
                )));
                }
                Ok(c)
            });
        let checked = match outcome {
            Ok(c) => c,
            Err(e) => return Err(self.refuse(text, origin, uid, e)),
        };
        let body = &checked.lease.body;
        let id = body.id.clone();
        // The snapshot, after every check and before any entry exists: nothing the lease
        // allows can happen first, and a lease whose snapshot fails is not installed.
        let scope_records: Vec<_> = checked.scopes.iter().map(|(s, _)| s.clone()).collect();
        let plan = self.plan(&scope_records);
        let snapshot = match self.take_snapshot(&id, &body.agent, &plan) {
            Ok(s) => s,
            Err(e) => {
                let e = match e {
                    LeaseError::Rejected(m) => LeaseError::Rejected(format!("{origin}: {m}")),
                    other => other,
                };
                return Err(self.refuse(text, origin, uid, e));
            }
        };
        if snapshot.state == "taken" {
            tracing::info!(target: "governor::lease", lease = %id, files = snapshot.files,
                bytes = snapshot.bytes, method = %snapshot.method, took_ms = snapshot.took_ms,
                "lease snapshot taken");
        }
        let mut record = Record {
            id: id.clone(),
            kernel_id: store::kernel_id(&id),
            agent: body.agent.clone(),
            scopes: checked.scopes.iter().map(|(s, _)| s.clone()).collect(),
            not_before: body.not_before,
            not_after: body.not_after,
            boot: Some(BootWindow::from_wall(
                &self.boot_id,
                body.not_before,
                body.not_after,
                received,
            )),
            reason: body.reason.clone(),
            ticket: body.ticket.clone(),
            request: body.request.clone(),
            signers: checked.signers.clone(),
            submitted_by_uid: uid,
            policy: format!("{}@{}", self.policy.name, self.policy.version),
            state: State::Scheduled,
            history: Vec::new(),
            snapshot: Some(snapshot),
        };
        record.log(
            received_ms,
            "submitted",
            format!("by uid {uid} from {origin}"),
        );
        if let Err(e) = self
            .store
            .save_lease(&id, text)
            .and_then(|()| self.store.save(&record))
        {
            self.drop_snapshot(&id);
            return Err(e.into());
        }
        for row in rows::accepted(
            &checked.lease,
            &record,
            text,
            &self.policy.version,
            received_ns,
            origin,
        ) {
            self.recorder.record(row);
        }
        if let Some(row) =
            rows::snapshotted(&record, self.policy.rollback.retention.as_millis() as u64)
        {
            self.recorder.record(row);
        }
        let started = record
            .boot
            .as_ref()
            .is_some_and(|w| w.started(received.boot_ns));
        self.records.insert(id.clone(), record);
        self.installed.insert(
            id.clone(),
            checked.scopes.into_iter().flat_map(|(_, k)| k).collect(),
        );
        // A scheduled lease's entries go in now too: the kernel opens them at its start.
        self.install(&id)?;
        if started {
            self.change(&id, State::Enforced, "enforced", "");
        } else {
            self.change(&id, State::Scheduled, "scheduled", "");
        }
        self.advance_mark(received, true);
        let record = self
            .records
            .get(&id)
            .cloned()
            .ok_or_else(|| LeaseError::Internal(format!("lease {id} vanished")))?;
        tracing::info!(target: "governor::lease", lease = %id, agent = %record.agent,
            state = record.state.name(),
            scopes = %record.scopes.iter().map(|s| format!("{}:{}", s.class, s.target))
                .collect::<Vec<_>>().join(", "),
            signers = %record.signers.iter().map(|s| format!("{} ({})", s.operator, s.role))
                .collect::<Vec<_>>().join(", "),
            not_after = record.not_after,
            latency_ms = clock::wall_ms().saturating_sub(received_ms),
            "lease {}", record.state.name());
        Ok(record)
    }

    /// Records and logs the refusal of lease `text`; the error, to return.
    fn refuse(&self, text: &str, origin: &str, uid: u32, e: LeaseError) -> LeaseError {
        tracing::warn!(target: "governor::lease", origin, uid, error = %e, "lease rejected");
        self.recorder.record(lineage::authority::refused(
            text,
            origin,
            uid,
            &e.to_string(),
            None,
        ));
        e
    }

    /// Moves lease `id` to `state`, logging `what` in its history and the lineage, and
    /// saves it.
    fn change(&mut self, id: &str, state: State, what: &str, detail: &str) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.state = state;
        r.log(clock::wall_ms(), what, detail);
        if let Some(row) = rows::transition(r, what, detail) {
            self.recorder.record(row);
        }
        if let Err(e) = self.store.save(r) {
            tracing::error!(lease = id, error = %e, "lease store: could not save the record");
        }
        if !r.state.is_live() {
            // The lease has ended: what its targets look like now is what a rollback
            // compares against, to tell later outside changes from the lease's own.
            self.seal(id);
        }
    }

    /// Revokes lease `id`: its entries leave the kernel at once.
    pub fn revoke(
        &mut self,
        id: &str,
        uid: u32,
        reason: Option<String>,
    ) -> Result<Record, LeaseError> {
        let Some(r) = self.records.get(id) else {
            return Err(LeaseError::NotFound(format!(
                "no lease {id} (see `governor lease list --all`)"
            )));
        };
        if !r.state.is_live() {
            return Err(LeaseError::Rejected(format!(
                "lease {id} is already {}",
                r.state.name()
            )));
        }
        self.uninstall(id);
        let detail = reason.clone().unwrap_or_default();
        self.change(
            id,
            State::Revoked {
                by_uid: uid,
                reason,
            },
            "revoked",
            &format!(
                "by uid {uid}{}",
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            ),
        );
        tracing::info!(target: "governor::lease", lease = id, uid, "lease revoked");
        self.records
            .get(id)
            .cloned()
            .ok_or_else(|| LeaseError::Internal(format!("lease {id} vanished")))
    }

    /// Revokes every live lease of `agent`; their ids.
    pub fn revoke_agent(&mut self, agent: &str, uid: u32, reason: &str) -> Vec<String> {
        let ids: Vec<String> = self
            .records
            .values()
            .filter(|r| r.agent == agent && r.state.is_live())
            .map(|r| r.id.clone())
            .collect();
        for id in &ids {
            let _ = self.revoke(id, uid, Some(reason.to_owned()));
        }
        ids
    }

    /// Looks up the lease the kernel reported as `kernel_id`.
    pub fn by_kernel_id(&self, kernel_id: u64) -> Option<&Record> {
        self.records.values().find(|r| r.kernel_id == kernel_id)
    }

    /// The halt of `agent`, if it is halted.
    pub fn halted(&self, agent: &str) -> Option<&Halt> {
        self.halts.get(agent)
    }

    pub fn halts(&self) -> impl Iterator<Item = &Halt> {
        self.halts.iter()
    }

    /// Records (and persists) a halt.
    pub fn record_halt(&mut self, halt: Halt) -> Result<(), LeaseError> {
        self.halts
            .record(halt)
            .map_err(|e| LeaseError::Internal(e.to_string()))
    }

    /// Forgets `agent`'s halt; whether it was halted.
    pub fn clear_halt(&mut self, agent: &str) -> Result<bool, LeaseError> {
        self.halts
            .clear(agent)
            .map_err(|e| LeaseError::Internal(e.to_string()))
    }
}
