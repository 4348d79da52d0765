//! The policy file exactly as written: serde types with spans, no validation yet.

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
    pub cgroup: Spanned<String>,
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_fileless_exec: Option<Spanned<bool>>,
    #[serde(default)]
    pub allow_outside_abstract_unix: Option<Spanned<bool>>,
}

/// A list of class names, as written.
pub type RawClasses = Spanned<Vec<Spanned<String>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtect {
    pub path: Spanned<String>,
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
    pub deny: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBinary {
    pub path: Spanned<String>,
    #[serde(default)]
    pub deny: Option<RawClasses>,
    #[serde(default)]
    pub lease: Option<RawClasses>,
    /// `[[binaries.agent]]`: one agent's own decisions on this binary.
    #[serde(default)]
    pub agent: Vec<Spanned<RawAgentDecisions>>,
}
