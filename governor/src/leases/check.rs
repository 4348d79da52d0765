//! The checks a lease passes before the lease manager records it, and again on every
//! restart and policy reload: its id, replay, host, agent and halt, window, scopes against
//! the policy, and its signatures against the trusted keys (read afresh each time).

use governor_common::LeaseKey;

use super::{
    clock, resolve,
    resolve::ScopeSpec,
    store::{self, ScopeRecord, SignerRecord},
    LeaseError, LeaseManager,
};
use crate::{
    lineage,
    signing::{
        keys::TrustedKeys,
        lease::{self, Lease, Role, VerifyContext},
    },
};

/// A lease that passed every check, ready to record.
pub(super) struct Checked {
    pub(super) lease: Lease,
    pub(super) scopes: Vec<(ScopeRecord, Vec<LeaseKey>)>,
    pub(super) signers: Vec<SignerRecord>,
    /// Distinct trusted keys that signed, and how many the policy asks for.
    pub(super) have: u32,
    pub(super) need: u32,
}

impl LeaseManager {
    /// Reads the trusted-keys directory (it is read afresh for every lease checked, so a
    /// key added or removed counts at once), recording each key not recorded before.
    pub(super) fn trusted_keys(&mut self) -> TrustedKeys {
        let (trusted, problems) = TrustedKeys::load(&self.trusted_dir);
        for p in &problems {
            tracing::warn!(target: "governor::lease", problem = %p,
                "trusted keys: a key file is not trusted");
        }
        for k in trusted.iter() {
            if self.keys_recorded.insert(k.id.to_string()) {
                self.recorder.record(lineage::authority::key_row(k));
            }
        }
        trusted
    }

    /// Runs every check again on the stored lease `id` (a restart or a policy reload
    /// re-checking what it accepted before; the replay check is skipped). Its expiry is
    /// checked against the time its boot-clock window says it is, not the wall clock.
    pub(super) fn recheck(&mut self, id: &str) -> Result<Checked, LeaseError> {
        let text = self.store.lease_text(id)?;
        let boot_ns = clock::boot_ns();
        let now = self
            .records
            .get(id)
            .and_then(|r| Some((r, self.window(r)?)))
            .map_or_else(clock::wall_secs, |(r, w)| {
                w.wall_secs_at(r.not_after, boot_ns)
            });
        self.check(&text, &format!("{id}.lease"), true, now)
    }

    /// Runs every check on lease `text` at unix second `now`; `replayed` skips the replay
    /// check (a restart re-checking its own store).
    pub(super) fn check(
        &mut self,
        text: &str,
        origin: &str,
        replayed: bool,
        now: u64,
    ) -> Result<Checked, LeaseError> {
        let lease = Lease::parse(text, origin).map_err(|e| LeaseError::Rejected(e.to_string()))?;
        let body = &lease.body;
        if !store::valid_id(&body.id) {
            return Err(LeaseError::Rejected(format!(
                "{origin}: lease id `{}` is not usable: 1 to 64 characters of letters, digits, \
                 `-` and `_` (`governor lease issue` makes one)",
                body.id
            )));
        }
        if !replayed {
            if let Some(prior) = self.records.get(&body.id) {
                return Err(LeaseError::Rejected(format!(
                    "{origin}: lease {} was already submitted (it is {}): a lease is used \
                     once; issue a new one",
                    body.id,
                    prior.state.name()
                )));
            }
            if self.store.seen(&body.id) {
                return Err(LeaseError::Rejected(format!(
                    "{origin}: lease {} was already submitted (its record in {} is \
                     unreadable): a lease is used once; issue a new one",
                    body.id,
                    self.store.dir().display()
                )));
            }
        }
        let Some(agent_id) = self
            .compiled
            .agents
            .iter()
            .position(|a| a.name == body.agent)
        else {
            return Err(LeaseError::Rejected(format!(
                "{origin}: the lease is for agent `{}`, which policy `{}` does not define \
                 (agents: {})",
                body.agent,
                self.policy.name,
                self.compiled
                    .agents
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let Some(agent) = self.policy.agent(&body.agent) else {
            return Err(LeaseError::Internal(format!(
                "agent `{}` is compiled but not in the policy",
                body.agent
            )));
        };
        if body.scopes.is_empty() {
            return Err(LeaseError::Rejected(format!(
                "{origin}: the lease has no scope, so it would allow nothing"
            )));
        }
        let need = body
            .scopes
            .iter()
            .map(|s| self.policy.approvals_required(&s.class))
            .max()
            .unwrap_or(1)
            .max(1);
        let max_ttl_secs = agent.max_lease_ttl.as_secs();
        let trusted = self.trusted_keys();
        let verified = lease::verify(
            &lease,
            &VerifyContext {
                trusted: &trusted,
                host: &self.host,
                now,
                max_ttl_secs,
                required_approvals: 1,
            },
        )
        .map_err(|e| LeaseError::Rejected(format!("{origin}: {e}")))?;
        let mut signers: Vec<SignerRecord> = Vec::new();
        for s in &verified.signers {
            let key_id = s.key_id.to_string();
            if signers.iter().all(|x| x.key_id != key_id) {
                signers.push(SignerRecord {
                    key_id,
                    operator: s.operator.clone(),
                    role: match s.role {
                        Role::Issuer => "issuer",
                        Role::Approver => "approver",
                    }
                    .to_owned(),
                });
            }
        }
        let mut scopes = Vec::new();
        for s in &body.scopes {
            let spec = ScopeSpec {
                class: &s.class,
                target: &s.target,
                pin: s.pin.as_ref().map(|p| (p.dev, p.ino)),
            };
            let r = resolve::resolve(
                &self.policy,
                &self.compiled,
                agent_id as u32,
                &body.agent,
                &spec,
            )
            .map_err(|e| LeaseError::Rejected(format!("{origin}: {e}")))?;
            scopes.push((
                ScopeRecord {
                    class: s.class.clone(),
                    target: s.target.clone(),
                    object: r.object,
                    resource: r.resource,
                },
                r.keys,
            ));
        }
        Ok(Checked {
            have: signers.len() as u32,
            need,
            lease,
            scopes,
            signers,
        })
    }
}
