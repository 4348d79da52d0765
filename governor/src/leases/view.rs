//! Leases as clients see them: each record with the seconds it has left on the boot clock
//! and when it was enforced, and (`show`) its signed file.

use serde_json::{json, Value};

use super::{clock::Now, store::Record, window::BootWindow, LeaseError, LeaseManager};

impl LeaseManager {
    /// The leases, newest first: the live ones, or (`all`) every one on record.
    pub fn list(&self, all: bool) -> Vec<Value> {
        let now = Now::read();
        let mut out: Vec<&Record> = self
            .records
            .values()
            .filter(|r| all || r.state.is_live())
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.history.first().map_or(0, |c| c.at_ms)));
        out.into_iter()
            .map(|r| view(r, self.window(r), now))
            .collect()
    }

    /// One lease's record and its signed file.
    pub fn show(&self, id: &str) -> Result<Value, LeaseError> {
        let r = self
            .records
            .get(id)
            .ok_or_else(|| LeaseError::NotFound(format!("no lease {id}")))?;
        let mut v = view(r, self.window(r), Now::read());
        v["file"] = Value::from(self.store.lease_text(id).unwrap_or_default());
        Ok(v)
    }
}

/// A record as clients see it: the record plus the seconds left (on the boot clock, by its
/// window on this boot if it has one).
fn view(r: &Record, window: Option<&BootWindow>, now: Now) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_else(|_| json!({ "id": r.id }));
    crate::requests::book::lift(&mut v);
    v["left_secs"] = Value::from(match window {
        _ if !r.state.is_live() => 0,
        Some(w) => w.left_secs(now.boot_ns),
        None => r.not_after.saturating_sub(now.wall_ms / 1000),
    });
    v["enforced_at_ms"] = r.enforced_at_ms().map_or(Value::Null, Value::from);
    v
}
