//! Operators for the end-to-end lease tests: each has an ed25519 key made with `governor key
//! generate` (trusted by the test daemons, or not), and runs the operator's `governor`
//! commands against the running daemon's admin socket.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::{governor_bin, TEST_CONFIG_DIR};

/// The trusted-keys directory the test daemons read (`--config-dir`'s `trusted-keys`).
pub fn trusted_dir() -> PathBuf {
    Path::new(TEST_CONFIG_DIR).join("trusted-keys")
}

/// Runs `governor ARGS...` as a plain host process (an operator's shell).
pub fn governor(args: &[&str]) -> Output {
    Command::new(governor_bin())
        .args(args)
        .output()
        .expect("spawn governor")
}

/// Every lease the daemon lists (`lease list --all --json`), live or ended.
pub fn leases() -> Vec<serde_json::Value> {
    let out = ok_stdout(
        &governor(&["lease", "list", "--all", "--json"]),
        "lease list",
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("lease list json");
    v["leases"].as_array().cloned().unwrap_or_default()
}

/// The daemon's listing of lease `id`, if it lists it.
pub fn listed(id: &str) -> Option<serde_json::Value> {
    leases().into_iter().find(|l| l["id"] == id)
}

/// stdout of a command that must succeed.
pub fn ok_stdout(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: expected success, got {} stdout={:?} stderr={:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr of a command that must fail.
pub fn err_stderr(out: &Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what}: expected failure, got success stdout={:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One operator and their secret key.
pub struct Operator {
    pub name: String,
    pub key: PathBuf,
}

impl Operator {
    /// Generates a key for `name` under `dir`; its public half goes into the daemons'
    /// trusted-keys directory if `trusted`, else into a directory no daemon reads.
    pub fn new(dir: &Path, name: &str, trusted: bool) -> Operator {
        let secrets = dir.join(format!("keys-{name}"));
        let _ = std::fs::remove_dir_all(&secrets);
        let public = if trusted {
            trusted_dir()
        } else {
            dir.join(format!("untrusted-{name}"))
        };
        let operator = format!("{name} <{name}@example.com>");
        let out = governor(&[
            "key",
            "generate",
            "--operator",
            &operator,
            "--secret-dir",
            &secrets.display().to_string(),
            "--trusted-dir",
            &public.display().to_string(),
        ]);
        ok_stdout(&out, &format!("key generate for {name}"));
        let key = std::fs::read_dir(&secrets)
            .expect("secret dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "key"))
            .unwrap_or_else(|| panic!("no .key file in {}", secrets.display()));
        Operator {
            name: name.to_owned(),
            key,
        }
    }

    /// `governor lease issue` for `agent` with `scopes` ("class:target") and `ttl`, written
    /// to `out`.
    pub fn issue(&self, out: &Path, agent: &str, scopes: &[&str], ttl: &str) -> PathBuf {
        self.issue_with(out, agent, scopes, ttl, &[])
    }

    /// [`Operator::issue`] with more `governor lease issue` arguments (`--not-before`).
    pub fn issue_with(
        &self,
        out: &Path,
        agent: &str,
        scopes: &[&str],
        ttl: &str,
        extra: &[&str],
    ) -> PathBuf {
        let mut args = vec![
            "lease".to_owned(),
            "issue".to_owned(),
            "--key".to_owned(),
            self.key.display().to_string(),
            "--agent".to_owned(),
            agent.to_owned(),
            "--ttl".to_owned(),
            ttl.to_owned(),
            "--reason".to_owned(),
            format!("test by {}", self.name),
            "--ticket".to_owned(),
            "TEST-1".to_owned(),
            "--out".to_owned(),
            out.display().to_string(),
        ];
        for s in scopes {
            args.push("--scope".to_owned());
            args.push((*s).to_owned());
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        ok_stdout(&governor(&argv), "lease issue");
        out.to_owned()
    }

    /// `governor lease cosign FILE`.
    pub fn cosign(&self, file: &Path) {
        let out = governor(&[
            "lease",
            "cosign",
            &file.display().to_string(),
            "--key",
            &self.key.display().to_string(),
        ]);
        ok_stdout(&out, "lease cosign");
    }

    /// `governor lease approve REQ --key KEY`.
    pub fn approve(&self, request: &str) -> Output {
        governor(&[
            "lease",
            "approve",
            request,
            "--key",
            &self.key.display().to_string(),
        ])
    }
}

/// `governor lease submit FILE`.
pub fn submit(file: &Path) -> Output {
    governor(&["lease", "submit", &file.display().to_string()])
}

/// The `id` of lease file `file` (its `id = "..."` line).
pub fn lease_id(file: &Path) -> String {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("read lease {}: {e}", file.display()));
    text.lines()
        .find_map(|l| {
            let v = l
                .trim()
                .strip_prefix("id")?
                .trim_start()
                .strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no id in {text}"))
}
