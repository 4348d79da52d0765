//! The kill switch's kernel side: freezing, thawing and killing agent cgroups through the
//! cgroup v2 interface files (`cgroup.freeze`, `cgroup.kill`), and waiting until the kernel
//! reports it done (`frozen` / `populated` in `cgroup.events`), so that the time from
//! command to enforcement is measured, not assumed. Halts themselves (who, when, why) are
//! kept by the lease manager, which also revokes the agent's leases in the same step.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// How long a freeze or kill may take before the halt reports a failure.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HaltError {
    #[error("{0}")]
    Read(#[from] super::files::ReadError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: the kernel did not report the cgroup {what} within {secs} s; check \
         `cat {path}/cgroup.events`"
    )]
    Timeout {
        path: PathBuf,
        what: &'static str,
        secs: u64,
    },
}

/// What a halt does to the cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Freeze,
    Kill,
}

/// One agent's halt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    pub agent: String,
    pub action: Action,
    /// Unix milliseconds.
    pub at_ms: u64,
    pub by_uid: u32,
    pub reason: Option<String>,
    /// Leases revoked by it.
    pub revoked: Vec<String>,
    /// From the client sending the command (or, without its stamp, the daemon reading it) to
    /// the kernel reporting the cgroup frozen (or emptied).
    pub enforced_in_us: u64,
}

fn write(path: &Path, file: &str, value: &str) -> Result<(), HaltError> {
    let p = path.join(file);
    std::fs::write(&p, value).map_err(|source| HaltError::Io { path: p, source })
}

/// One `key value` line of `cgroup.events`.
fn event(path: &Path, key: &str) -> Result<Option<String>, HaltError> {
    let p = path.join("cgroup.events");
    let text = super::files::read_text(&p, super::files::KERNEL)?;
    Ok(text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().to_owned())
    }))
}

/// Starts the action on the cgroup at `path` (absolute, under the cgroup v2 mount).
pub fn start(path: &Path, action: Action) -> Result<(), HaltError> {
    match action {
        Action::Freeze => write(path, "cgroup.freeze", "1"),
        Action::Kill => write(path, "cgroup.kill", "1"),
    }
}

/// Thaws the cgroup at `path`.
pub fn thaw(path: &Path) -> Result<(), HaltError> {
    write(path, "cgroup.freeze", "0")
}

/// Whether the action is complete: every task frozen, or none left.
pub fn done(path: &Path, action: Action) -> Result<bool, HaltError> {
    Ok(match action {
        Action::Freeze => event(path, "frozen")?.as_deref() == Some("1"),
        Action::Kill => event(path, "populated")?.as_deref() == Some("0"),
    })
}

/// Whether the cgroup is thawed.
pub fn thawed(path: &Path) -> Result<bool, HaltError> {
    Ok(event(path, "frozen")?.as_deref() != Some("1"))
}

/// Polls `check` until it holds, or fails after [`WAIT`]; the time it took from `since`.
pub async fn wait_until(
    path: &Path,
    what: &'static str,
    since: Instant,
    check: impl Fn(&Path) -> Result<bool, HaltError>,
) -> Result<Duration, HaltError> {
    loop {
        if check(path)? {
            return Ok(since.elapsed());
        }
        if since.elapsed() > WAIT {
            return Err(HaltError::Timeout {
                path: path.to_owned(),
                what,
                secs: WAIT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_by_key() {
        let dir = std::env::temp_dir().join(format!("governor-halt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").expect("write");
        assert!(done(&dir, Action::Freeze).expect("read"));
        assert!(!done(&dir, Action::Kill).expect("read"));
        assert!(!thawed(&dir).expect("read"));
        std::fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 0\n").expect("write");
        assert!(done(&dir, Action::Kill).expect("read"));
        assert!(thawed(&dir).expect("read"));
        let err = done(&dir.join("nope"), Action::Freeze).unwrap_err();
        assert!(err.to_string().contains("nope/cgroup.events"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
