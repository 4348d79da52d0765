//! The rows of acts of authority: policy loads (`policies`), operator keys (`keys`), accepted
//! leases with the signatures that counted (`leases`, `lease_signatures`), each step of a
//! lease's or request's life (`lease_lifecycle`), and halts (`halts`).

use rusqlite::{params, Transaction};

use super::{i, json_list};

/// A lease the daemon accepted, with the signatures that counted (`leases`,
/// `lease_signatures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub id: String,
    pub agent: String,
    pub host: String,
    /// JSON array of `{class, target, object, resource}`.
    pub scopes: String,
    pub not_before: u64,
    pub not_after: u64,
    pub reason: String,
    pub ticket: Option<String>,
    pub request_id: Option<String>,
    pub document: String,
    pub policy_version: String,
    pub signers: Vec<SignerRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerRow {
    pub key_id: String,
    pub operator: String,
    /// `issuer` or `approver`.
    pub role: String,
    pub signed_at: u64,
}

/// A step in a lease's (or request's) life (`lease_lifecycle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRow {
    pub ts_ns: i64,
    pub lease_id: Option<String>,
    pub request_id: Option<String>,
    /// One of the states the schema's CHECK lists.
    pub state: &'static str,
    pub actor: Option<String>,
    /// JSON object.
    pub detail: Option<String>,
}

/// A halt or resume (`halts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltRow {
    pub ts_ns: i64,
    /// `freeze`, `kill` or `resume`.
    pub action: &'static str,
    pub agents: Vec<String>,
    pub by_uid: u32,
    pub leases_revoked: u32,
    pub enforce_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    pub version: String,
    pub name: String,
    pub owner: String,
    pub source: String,
    pub loaded_ns: i64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key_id: String,
    pub operator: String,
    pub public_key: String,
    pub first_seen_ns: i64,
}

/// A lease and its signatures; one already there changes nothing.
pub(super) fn insert_lease(tx: &Transaction<'_>, l: &LeaseRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO leases (id, agent, host, scopes, not_before, not_after, \
         reason, ticket, request_id, document, policy_version) VALUES (?1, ?2, ?3, ?4, \
         ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        l.id,
        l.agent,
        l.host,
        l.scopes,
        i(l.not_before),
        i(l.not_after),
        l.reason,
        l.ticket,
        l.request_id,
        l.document,
        l.policy_version,
    ])?;
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO lease_signatures (lease_id, key_id, operator, role, \
         signed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for s in &l.signers {
        st.execute(params![l.id, s.key_id, s.operator, s.role, i(s.signed_at)])?;
    }
    Ok(())
}

/// A step in a lease's or request's life.
pub(super) fn insert_lifecycle(tx: &Transaction<'_>, c: &LifecycleRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO lease_lifecycle (ts_ns, lease_id, request_id, state, actor, \
         detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        c.ts_ns,
        c.lease_id,
        c.request_id,
        c.state,
        c.actor,
        c.detail
    ])?;
    Ok(())
}

/// A halt or resume.
pub(super) fn insert_halt(tx: &Transaction<'_>, h: &HaltRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO halts (ts_ns, action, agents, by_uid, leases_revoked, enforce_ns) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        h.ts_ns,
        h.action,
        json_list(&h.agents),
        h.by_uid,
        h.leases_revoked,
        h.enforce_ns.map(i),
    ])?;
    Ok(())
}

/// A policy load; one already there changes nothing.
pub(super) fn insert_policy(tx: &Transaction<'_>, p: &PolicyRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO policies (version, name, owner, source, loaded_ns, text) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        p.version,
        p.name,
        p.owner,
        p.source,
        p.loaded_ns,
        p.text
    ])?;
    Ok(())
}

/// A key first seen; one already there changes nothing.
pub(super) fn insert_key(tx: &Transaction<'_>, k: &KeyRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO keys (key_id, operator, public_key, first_seen_ns) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![k.key_id, k.operator, k.public_key, k.first_seen_ns])?;
    Ok(())
}
