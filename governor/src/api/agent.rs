//! The request socket's protocol: the admin socket's framing and envelope, with two commands:
//! `{"version":1,"command":"request","args":{"class":"delete","target":"/srv/db/x",
//! "reason":"...","ttl_secs":600}}` and `{"version":1,"command":"request-status",
//! "args":{"id":"r-3"}}`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::protocol::{self, Response, VERSION};

/// What an agent may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "command",
    content = "args",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
pub enum AgentRequest {
    Request {
        class: String,
        target: String,
        reason: String,
        ttl_secs: Option<u64>,
    },
    RequestStatus {
        id: String,
    },
}

impl AgentRequest {
    pub fn to_line(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Value::Object(obj) = &mut v {
            obj.insert("version".to_owned(), Value::from(VERSION));
        }
        format!("{v}\n")
    }
}

/// Parses one line from an agent.
pub fn parse(line: &[u8]) -> Result<AgentRequest, Response> {
    let example = format!(
        "{{\"version\":{VERSION},\"command\":\"request\",\"args\":{{\"class\":\"delete\",\
         \"target\":\"/path\",\"reason\":\"why\"}}}} (or use `governor request`)"
    );
    let obj = protocol::envelope(line, &example)?;
    AgentRequest::deserialize(Value::Object(obj))
        .map_err(|e| protocol::malformed(&e.to_string(), &example))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_requests_round_trip_and_bad_ones_are_explained() {
        let req = AgentRequest::Request {
            class: "delete".into(),
            target: "/x".into(),
            reason: "cleanup".into(),
            ttl_secs: Some(60),
        };
        assert_eq!(parse(req.to_line().trim_end().as_bytes()), Ok(req));
        let bad = parse(br#"{"version":1,"command":"grant","args":{}}"#).unwrap_err();
        let msg = bad.error.expect("error").message;
        assert!(msg.contains("grant"), "{msg}");
        let bad = parse(br#"{"command":"request-status","args":{"id":"r-1"}}"#).unwrap_err();
        assert!(bad.error.expect("error").message.contains("version"));
    }
}
