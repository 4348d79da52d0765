//! How a lease the daemon reports is printed for people.

use serde_json::Value;

use crate::time;

/// One lease, as a sentence (or JSON).
pub fn print_lease(l: &Value, json: bool) {
    if json {
        println!("{l}");
        return;
    }
    let state = l["state"].as_str().unwrap_or("?");
    let when = match (state, l["enforced_at_ms"].as_u64()) {
        ("enforced", Some(ms)) => format!("enforced since {}", time::rfc3339(ms / 1000)),
        ("scheduled", _) => format!(
            "scheduled: enforced from {}",
            time::rfc3339(l["not_before"].as_u64().unwrap_or(0))
        ),
        (s, _) => s.to_owned(),
    };
    println!(
        "lease {} for agent {}: {when}; ends {} (in {})",
        l["id"].as_str().unwrap_or("?"),
        l["agent"].as_str().unwrap_or("?"),
        time::rfc3339(l["not_after"].as_u64().unwrap_or(0)),
        time::span(l["left_secs"].as_u64().unwrap_or(0)),
    );
    for s in l["scopes"].as_array().into_iter().flatten() {
        println!(
            "  scope {}:{} (lifts `lease` on {})",
            s["class"].as_str().unwrap_or("?"),
            s["target"].as_str().unwrap_or("?"),
            s["resource"].as_str().unwrap_or("?")
        );
    }
    for s in l["signers"].as_array().into_iter().flatten() {
        println!(
            "  signed by {} ({}, key {})",
            s["operator"].as_str().unwrap_or("?"),
            s["role"].as_str().unwrap_or("?"),
            s["key_id"].as_str().unwrap_or("?")
        );
    }
}
