//! `[rollback]`: what a lease's snapshot may cost and how long it is kept, and each
//! resource's `rollback = "snapshot" | "none"`. Validated here; the snapshots themselves are
//! [`crate::rollback`]'s, and the lease manager takes them before it installs a lease.

use std::time::Duration;

use toml::Spanned;

use super::{raw::RawRollback, Validator};

/// `[rollback] max_bytes` when the policy is silent: 1 GiB per lease.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// `[rollback] max_bytes_per_agent` when the policy is silent: 4 GiB held per agent.
pub const DEFAULT_MAX_BYTES_PER_AGENT: u64 = 4 << 30;
/// `[rollback] retention` when the policy is silent: 7 days after the lease ends.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The policy's `[rollback]` table, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The most content (logical bytes of regular files, once per inode) one lease's snapshot
    /// may hold; a lease over it is refused.
    pub max_bytes: u64,
    /// The most all of an agent's kept snapshots may hold together.
    pub max_bytes_per_agent: u64,
    /// How long a snapshot is kept after its lease ends.
    pub retention: Duration,
}

impl Default for Rollback {
    fn default() -> Rollback {
        Rollback {
            max_bytes: DEFAULT_MAX_BYTES,
            max_bytes_per_agent: DEFAULT_MAX_BYTES_PER_AGENT,
            retention: DEFAULT_RETENTION,
        }
    }
}

/// Whether leases on a resource are snapshotted before they take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Snapshot {
    /// The default: no destructive class is lifted before its targets are snapshotted.
    #[default]
    Take,
    /// `rollback = "none"`: the operator said this resource needs no snapshot; approvals
    /// say so.
    None,
}

impl Validator<'_> {
    /// `[rollback]`, or its defaults.
    pub(super) fn rollback(&mut self, raw: Option<Spanned<RawRollback>>) -> Rollback {
        let mut r = Rollback::default();
        let Some(raw) = raw else {
            return r;
        };
        let raw = raw.into_inner();
        if let Some(v) = &raw.max_bytes {
            r.max_bytes = self.bytes(v, "rollback.max_bytes").unwrap_or(r.max_bytes);
        }
        if let Some(v) = &raw.max_bytes_per_agent {
            r.max_bytes_per_agent = self
                .bytes(v, "rollback.max_bytes_per_agent")
                .unwrap_or(r.max_bytes_per_agent);
        }
        if let Some(v) = &raw.retention {
            match crate::time::parse_duration(v.get_ref()) {
                Ok(secs) => r.retention = Duration::from_secs(secs),
                Err(why) => self.problem(v, "rollback.retention", why.to_string()),
            }
        }
        if r.max_bytes > r.max_bytes_per_agent {
            if let Some(v) = raw.max_bytes.as_ref() {
                self.problem(
                    v,
                    "rollback.max_bytes",
                    format!(
                        "{} per lease is more than max_bytes_per_agent ({}); one lease could \
                         never use it: lower max_bytes or raise max_bytes_per_agent",
                        human(r.max_bytes),
                        human(r.max_bytes_per_agent)
                    ),
                );
            }
        }
        r
    }

    /// A byte count: a non-negative integer, or a string with a unit ("1GiB", "512 MB").
    fn bytes(&mut self, v: &Spanned<toml::Value>, field: &str) -> Option<u64> {
        let hint = "give bytes as an integer (1073741824) or a string with a unit (\"1GiB\", \
                    \"512MB\")";
        match v.get_ref() {
            toml::Value::Integer(n) if *n >= 0 => Some(*n as u64),
            toml::Value::String(s) => match s.trim().parse::<bytesize::ByteSize>() {
                Ok(b) => Some(b.as_u64()),
                Err(_) => {
                    self.problem(v, field, format!("`{s}` is not a size; {hint}"));
                    None
                }
            },
            other => {
                self.problem(v, field, format!("`{other}` is not a size; {hint}"));
                None
            }
        }
    }

    /// A resource's `rollback = "snapshot" | "none"`.
    pub(super) fn snapshot(&mut self, raw: Option<&Spanned<String>>, field: &str) -> Snapshot {
        match raw.map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "snapshot")) => Snapshot::Take,
            Some((_, "none")) => Snapshot::None,
            Some((v, other)) => {
                self.problem(
                    v,
                    field,
                    format!(
                        "`{other}` is not a rollback setting; give \"snapshot\" (the default: \
                         leases here are snapshotted and can be rolled back) or \"none\""
                    ),
                );
                Snapshot::Take
            }
        }
    }
}

/// `1.0 GiB`: sizes as operators read them.
pub fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::Policy;

    fn policy(extra: &str, protect: &str) -> Result<Policy, crate::policy::PolicyError> {
        Policy::parse(
            Path::new("p.toml"),
            &format!(
                "[policy]\nname = \"p\"\nowner = \"o\"\n[[agents]]\nname = \"a\"\n\
                 [[protect]]\npath = \"/srv\"\nlease = [\"delete\"]\n{protect}\n{extra}"
            ),
        )
    }

    #[test]
    fn defaults_when_silent() {
        let p = policy("", "").expect("valid");
        assert_eq!(p.rollback, Rollback::default());
        assert_eq!(p.rollback.max_bytes, 1 << 30);
        assert_eq!(p.protected[0].snapshot, Snapshot::Take);
    }

    #[test]
    fn sizes_as_integers_or_with_units_and_retention() {
        let p = policy(
            "[rollback]\nmax_bytes = 4096\nmax_bytes_per_agent = \"1MiB\"\nretention = \"2d\"",
            "rollback = \"none\"",
        )
        .expect("valid");
        assert_eq!(p.rollback.max_bytes, 4096);
        assert_eq!(p.rollback.max_bytes_per_agent, 1 << 20);
        assert_eq!(p.rollback.retention, Duration::from_secs(2 * 86400));
        assert_eq!(p.protected[0].snapshot, Snapshot::None);
    }

    #[test]
    fn bad_values_name_their_field() {
        for (extra, protect, field) in [
            ("[rollback]\nmax_bytes = \"lots\"", "", "rollback.max_bytes"),
            ("[rollback]\nmax_bytes = -1", "", "rollback.max_bytes"),
            (
                "[rollback]\nmax_bytes_per_agent = true",
                "",
                "rollback.max_bytes_per_agent",
            ),
            ("[rollback]\nretention = \"soon\"", "", "rollback.retention"),
            (
                "[rollback]\nmax_bytes = \"2GiB\"\nmax_bytes_per_agent = \"1GiB\"",
                "",
                "rollback.max_bytes",
            ),
            ("", "rollback = \"sometimes\"", "protect[0].rollback"),
            ("[rollback]\nmax_size = 1", "", "max_size"),
        ] {
            let err = policy(extra, protect).expect_err(extra).to_string();
            assert!(err.contains(field), "{extra} {protect}: {err}");
        }
    }
}
