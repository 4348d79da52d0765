//! The policy file exactly as written: serde types with spans, no validation yet.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub policy: Spanned<RawHeader>,
    #[serde(default)]
    pub agents: Vec<Spanned<RawAgent>>,
    #[serde(default)]
    pub protect: Vec<Spanned<RawProtect>>,
    #[serde(default)]
    pub network: Vec<Spanned<RawNetwork>>,
    #[serde(default)]
    pub binaries: Vec<Spanned<RawBinary>>,
    /// `[classes.<name>]`: tags and policy-wide decisions per class.
    #[serde(default)]
    pub classes: BTreeMap<Spanned<String>, Spanned<RawClass>>,
    /// `[rollback]`: the snapshot budget and how long snapshots are kept.
    #[serde(default)]
    pub rollback: Option<Spanned<RawRollback>>,
}

/// `[rollback]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollback {
    /// Bytes: an integer, or a string with a unit ("1GiB", "512MB").
    #[serde(default)]
    pub max_bytes: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub max_bytes_per_agent: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub retention: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClass {
    #[serde(default)]
    pub reversibility: Option<Spanned<String>>,
    #[serde(default)]
    pub blast_radius: Option<Spanned<String>>,
    #[serde(default)]
    pub decision: Option<Spanned<String>>,
    #[serde(default)]
    pub approvals: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    pub name: Spanned<String>,
    pub owner: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub name: Spanned<String>,
    #[serde(default)]
    pub cgroup: Option<Spanned<String>>,
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_fileless_exec: Option<Spanned<bool>>,
    #[serde(default)]
    pub max_lease_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_outside_abstract_unix: Option<Spanned<bool>>,
    #[serde(default)]
    pub allow_raw_sockets: Option<Spanned<bool>>,
    #[serde(default)]
    pub record: Option<Spanned<String>>,
}

/// A list of class names, as written.
pub type RawClasses = Spanned<Vec<Spanned<String>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtect {
    pub path: Spanned<String>,
    /// The path may be missing on this host (a control plane that is not installed).
    #[serde(default)]
    pub optional: Option<Spanned<bool>>,
    /// `"snapshot"` (the default) or `"none"`: whether a lease on this resource is
    /// snapshotted so that it can be rolled back.
    #[serde(default)]
    pub rollback: Option<Spanned<String>>,
    #[serde(default)]
    pub allow: Option<RawClasses>,
    #[serde(default)]
    pub deny: Option<RawClasses>,
    #[serde(default)]
    pub lease: Option<RawClasses>,
    /// `[[protect.agent]]`: one agent's own decisions on this resource.
    #[serde(default)]
    pub agent: Vec<Spanned<RawAgentDecisions>>,
}

/// One agent's decisions on a resource, replacing the resource's defaults for the classes
/// it names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentDecisions {
    pub name: Spanned<String>,
    #[serde(default)]
    pub allow: Option<RawClasses>,
    #[serde(default)]
    pub lease: Option<RawClasses>,
    #[serde(default)]
    pub deny: Option<RawClasses>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub cidr: Spanned<String>,
    #[serde(default)]
    pub ports: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    #[serde(default)]
    pub allow: Option<RawClasses>,
    #[serde(default)]
    pub deny: Option<RawClasses>,
    #[serde(default)]
    pub lease: Option<RawClasses>,
    /// `[[network.agent]]`: one agent's own decisions on this rule.
    #[serde(default)]
    pub agent: Vec<Spanned<RawAgentDecisions>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBinary {
    pub path: Spanned<String>,
    #[serde(default)]
    pub allow: Option<RawClasses>,
    #[serde(default)]
    pub deny: Option<RawClasses>,
    #[serde(default)]
    pub lease: Option<RawClasses>,
    /// `[[binaries.agent]]`: one agent's own decisions on this binary.
    #[serde(default)]
    pub agent: Vec<Spanned<RawAgentDecisions>>,
}
