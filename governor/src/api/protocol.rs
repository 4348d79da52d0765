//! The admin protocol: one JSON object per line each way, versioned.
//!
//! Request:  `{"version": 1, "command": "status"}`
//! Reply:    `{"version": 1, "ok": true, "result": {...}}`
//!        or `{"version": 1, "ok": false, "error": {"code": "unknown-command", "message": "..."}}`
//!
//! A request that is not a JSON object, lacks `version` or `command`, or is longer than
//! [`MAX_LINE`] gets a `malformed` reply; another version gets `unsupported-version`; a
//! command this daemon does not know gets `unknown-command`. Each is answered, never dropped.
//! A new command is one more [`Request`] variant, its name in [`COMMANDS`] and its handler
//! file next to this one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// Longest request line accepted, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;
/// Every command, by name.
pub const COMMANDS: &[&str] = &[
    "status",
    "lease-submit",
    "lease-list",
    "lease-show",
    "lease-revoke",
    "halt",
    "resume",
    "request-list",
    "request-show",
    "request-approve",
    "request-reject",
    "policy-reload",
    "protect-secret",
    "snapshot-cost",
    "rollback",
];

/// Which agents a halt or resume applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Agents {
    All,
    One(String),
}

/// A scope as a lease file states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeAsk {
    pub class: String,
    pub target: String,
}

/// Which leases a rollback restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum RollbackOf {
    /// One lease, by id.
    Lease(String),
    /// Every lease of `agent` submitted at or after `since_ms` (unix milliseconds), newest
    /// first.
    Agent { agent: String, since_ms: u64 },
}

/// One request: `command` names the variant, `args` carries its fields. The names are the
/// wire's command names (`request-list` lists agents' requests).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "command",
    content = "args",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
pub enum Request {
    Status,
    /// Verify a signed lease and install it. `lease` is the lease file's text; `origin` names
    /// it in messages (the file the operator gave).
    LeaseSubmit {
        lease: String,
        origin: String,
    },
    /// Leases the daemon knows: the active and scheduled ones, or (`all`) every one it has a
    /// record of.
    LeaseList {
        all: bool,
    },
    LeaseShow {
        id: String,
    },
    LeaseRevoke {
        id: String,
        reason: Option<String>,
    },
    /// Freeze (or kill) the agents' cgroups and revoke their leases. `sent_boot_ns` is when
    /// the client sent it (`CLOCK_BOOTTIME`, the same on every process of the host): the
    /// reply's times count from it, so time spent before the daemon read the request shows.
    Halt {
        agents: Agents,
        kill: bool,
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_boot_ns: Option<u64>,
        /// Then restore the snapshots of the leases it revoked (`halt --rollback`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rollback: bool,
    },
    Resume {
        agents: Agents,
    },
    /// What approving `scopes` (class and target each) for `agent` would cost in snapshot,
    /// estimated now (`lease show` states it before anyone signs).
    SnapshotCost {
        agent: String,
        scopes: Vec<ScopeAsk>,
    },
    /// Restore leases' snapshots: their targets go back to how they were before the lease.
    /// `revoke` revokes a live lease first (a live one is refused without it); `force`
    /// overwrites paths changed after the lease ended instead of reporting them.
    Rollback {
        of: RollbackOf,
        revoke: bool,
        force: bool,
    },
    /// Agents' lease requests; `all` includes decided ones.
    RequestList {
        all: bool,
    },
    RequestShow {
        id: String,
    },
    /// An operator's signed lease answering request `id` (it may still need approvals).
    RequestApprove {
        id: String,
        lease: String,
    },
    RequestReject {
        id: String,
        reason: String,
    },
    /// Replace the enforced policy with the daemon's policy file re-read, or with `file` (an
    /// absolute path), atomically: a policy that fails any check changes nothing.
    PolicyReload {
        file: Option<String>,
    },
    /// Protect an operator's secret key file (an absolute path) from agents like governor's
    /// own directories, at once and after restarts (`crate::secrets`).
    ProtectSecret {
        path: String,
    },
}

impl Request {
    pub fn to_line(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}));
        if let Value::Object(obj) = &mut v {
            obj.insert("version".to_owned(), Value::from(VERSION));
        }
        format!("{v}\n")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    Malformed,
    UnsupportedVersion,
    UnknownCommand,
    /// The peer may not use the admin socket (uid not allowed, or an agent).
    Forbidden,
    /// Understood, and refused on its merits (a lease that does not verify, an unknown
    /// agent, a halted agent); the message says why and what to do.
    Rejected,
    /// No lease or request with that id.
    NotFound,
    /// The daemon could not answer (a kernel map read failed).
    Internal,
}

/// The error part of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReply>,
}

impl Response {
    pub fn ok(result: Value) -> Response {
        Response {
            version: VERSION,
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A successful reply carrying `result` (one of [`super::reply`]'s types). A result that
    /// cannot be serialized (it cannot happen with those plain types) is an `internal` error.
    pub fn reply<T: Serialize>(result: &T) -> Response {
        match serde_json::to_value(result) {
            Ok(v) => Response::ok(v),
            Err(e) => Response::error(ErrorCode::Internal, format!("encoding the reply: {e}")),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response {
            version: VERSION,
            ok: false,
            result: None,
            error: Some(ErrorReply {
                code,
                message: message.into(),
            }),
        }
    }

    /// The reply as one line (newline included).
    pub fn to_line(&self) -> String {
        // A Response is plain data: serializing it cannot fail.
        let mut s = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"version":{VERSION},"ok":false,"error":{{"code":"internal","message":"{e}"}}}}"#)
        });
        s.push('\n');
        s
    }
}

/// Parses one request line (without its newline), or the reply that refuses it.
/// A `malformed` reply: `why`, then what a request line looks like (`example`).
pub fn malformed(why: &str, example: &str) -> Response {
    Response::error(
        ErrorCode::Malformed,
        format!("malformed request: {why}; send one JSON object per line, like {example}"),
    )
}

/// Checks the envelope every socket shares: one JSON object with a supported whole-number
/// `version`. Returns the object without `version`; errors are replies that show `example`.
pub fn envelope(line: &[u8], example: &str) -> Result<Map<String, Value>, Response> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| malformed(&format!("not JSON ({e})"), example))?;
    let Value::Object(mut obj) = value else {
        return Err(malformed("not a JSON object", example));
    };
    let version = match obj.remove("version") {
        None => return Err(malformed("no `version` field", example)),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| malformed(&format!("`version` is {v}, not a whole number"), example))?,
    };
    if version != u64::from(VERSION) {
        return Err(Response::error(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {version} is not supported; this daemon speaks version {VERSION}"
            ),
        ));
    }
    Ok(obj)
}

pub fn parse(line: &[u8]) -> Result<Request, Response> {
    let example = format!("{{\"version\": {VERSION}, \"command\": \"status\"}}");
    let malformed = |why: String| malformed(&why, &example);
    let obj = envelope(line, &example)?;
    let command = match obj.get("command") {
        None => return Err(malformed("no `command` field".to_owned())),
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(malformed(format!("`command` is {v}, not a string"))),
    };
    if let Some(extra) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "command" | "args"))
    {
        return Err(malformed(format!("unknown field `{extra}`")));
    }
    if !COMMANDS.contains(&command.as_str()) {
        return Err(Response::error(
            ErrorCode::UnknownCommand,
            format!(
                "unknown command `{command}`; commands: {}",
                COMMANDS.join(", ")
            ),
        ));
    }
    Request::deserialize(Value::Object(obj))
        .map_err(|e| malformed(format!("bad arguments for `{command}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(line: &str) -> ErrorReply {
        let reply = parse(line.as_bytes()).expect_err(line);
        assert!(!reply.ok);
        assert_eq!(reply.version, VERSION);
        // The reply itself is one well-formed line.
        let text = reply.to_line();
        assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'));
        let back: Response = serde_json::from_str(&text).expect("reply parses");
        assert_eq!(back, reply);
        reply.error.expect("an error")
    }

    #[test]
    fn status_parses_and_round_trips() {
        assert_eq!(
            parse(br#"{"version":1,"command":"status"}"#),
            Ok(Request::Status)
        );
        let line = Request::Status.to_line();
        assert!(line.ends_with('\n'));
        assert_eq!(parse(line.trim_end().as_bytes()), Ok(Request::Status));
    }

    #[test]
    fn every_request_round_trips() {
        for req in [
            Request::LeaseSubmit {
                lease: "[lease]\n".into(),
                origin: "x.lease".into(),
            },
            Request::LeaseList { all: true },
            Request::LeaseRevoke {
                id: "l-1".into(),
                reason: None,
            },
            Request::Halt {
                agents: Agents::One("a".into()),
                kill: false,
                reason: Some("why".into()),
                sent_boot_ns: None,
                rollback: false,
            },
            Request::Halt {
                agents: Agents::All,
                kill: true,
                reason: None,
                sent_boot_ns: Some(123_456_789),
                rollback: true,
            },
            Request::Rollback {
                of: RollbackOf::Lease("l-1".into()),
                revoke: true,
                force: false,
            },
            Request::Rollback {
                of: RollbackOf::Agent {
                    agent: "a".into(),
                    since_ms: 1_700_000_000_000,
                },
                revoke: false,
                force: true,
            },
            Request::SnapshotCost {
                agent: "a".into(),
                scopes: vec![ScopeAsk {
                    class: "delete".into(),
                    target: "/srv/x".into(),
                }],
            },
            Request::Resume {
                agents: Agents::All,
            },
            Request::RequestReject {
                id: "r-1".into(),
                reason: "no".into(),
            },
            Request::PolicyReload { file: None },
            Request::ProtectSecret {
                path: "/root/.config/governor/keys/k.key".into(),
            },
            Request::PolicyReload {
                file: Some("/etc/governor/next.toml".into()),
            },
        ] {
            let line = req.to_line();
            assert_eq!(parse(line.trim_end().as_bytes()), Ok(req), "{line}");
        }
    }

    #[test]
    fn bad_arguments_name_the_command_and_field() {
        let e = refused(r#"{"version":1,"command":"lease-show","args":{}}"#);
        assert_eq!(e.code, ErrorCode::Malformed);
        assert!(e.message.contains("`lease-show`"), "{}", e.message);
        assert!(e.message.contains("`id`"), "{}", e.message);
        let e = refused(r#"{"version":1,"command":"lease-show","args":{"id":"x","y":1}}"#);
        assert!(e.message.contains("`y`"), "{}", e.message);
    }

    #[test]
    fn policy_reload_parses_with_and_without_a_file() {
        assert_eq!(
            parse(br#"{"version":1,"command":"policy-reload","args":{}}"#),
            Ok(Request::PolicyReload { file: None })
        );
        assert_eq!(
            parse(br#"{"version":1,"command":"policy-reload","args":{"file":"/p.toml"}}"#),
            Ok(Request::PolicyReload {
                file: Some("/p.toml".into())
            })
        );
        for (line, why) in [
            (
                r#"{"version":1,"command":"policy-reload"}"#,
                "`policy-reload`",
            ),
            (
                r#"{"version":1,"command":"policy-reload","args":{"file":7}}"#,
                "`policy-reload`",
            ),
            (
                r#"{"version":1,"command":"policy-reload","args":{"path":"/p.toml"}}"#,
                "`path`",
            ),
        ] {
            let e = refused(line);
            assert_eq!(e.code, ErrorCode::Malformed, "{line}");
            assert!(e.message.contains(why), "{line}: {}", e.message);
        }
    }

    #[test]
    fn malformed_requests_get_a_malformed_reply() {
        for (line, why) in [
            ("", "not JSON"),
            ("status", "not JSON"),
            ("{\"version\":1,", "not JSON"),
            ("[1,2]", "not a JSON object"),
            ("\"status\"", "not a JSON object"),
            (r#"{"command":"status"}"#, "no `version`"),
            (
                r#"{"version":"1","command":"status"}"#,
                "not a whole number",
            ),
            (r#"{"version":-1,"command":"status"}"#, "not a whole number"),
            (r#"{"version":1}"#, "no `command`"),
            (r#"{"version":1,"command":7}"#, "not a string"),
            (
                r#"{"version":1,"command":"status","x":1}"#,
                "unknown field `x`",
            ),
        ] {
            let e = refused(line);
            assert_eq!(e.code, ErrorCode::Malformed, "{line}: {e:?}");
            assert!(e.message.contains(why), "{line}: {}", e.message);
        }
        let e = refused("\u{fffd}\u{0}");
        assert_eq!(e.code, ErrorCode::Malformed);
    }

    #[test]
    fn unknown_command_names_the_known_ones() {
        let e = refused(r#"{"version":1,"command":"halt-everything"}"#);
        assert_eq!(e.code, ErrorCode::UnknownCommand);
        assert!(e.message.contains("`halt-everything`"), "{}", e.message);
        assert!(
            e.message.contains("commands: status, lease-submit"),
            "{}",
            e.message
        );
    }

    #[test]
    fn version_mismatch_is_refused_with_our_version() {
        for v in [0, 2, 99] {
            let e = refused(&format!(r#"{{"version":{v},"command":"status"}}"#));
            assert_eq!(e.code, ErrorCode::UnsupportedVersion);
            assert!(
                e.message.contains(&format!("version {v} is not supported")),
                "{}",
                e.message
            );
            assert!(e.message.contains("speaks version 1"), "{}", e.message);
        }
    }

    #[test]
    fn error_codes_are_kebab_case_on_the_wire() {
        let line = Response::error(ErrorCode::UnsupportedVersion, "x").to_line();
        assert!(line.contains(r#""code":"unsupported-version""#), "{line}");
        let ok = Response::ok(serde_json::json!({"a": 1})).to_line();
        assert_eq!(ok, "{\"version\":1,\"ok\":true,\"result\":{\"a\":1}}\n");
    }
}
