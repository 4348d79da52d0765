//! `governor status [--json]`: asks the running daemon, over its admin socket, what it
//! enforces and what it has counted, and prints a table (or the reply's JSON).

use std::{fmt::Write as _, process::ExitCode};

use anyhow::Context;

use crate::{
    admin::client,
    api::{protocol::Request, status::Status},
    cli::StatusArgs,
    time::span as duration,
};

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(&args.conn.socket, &Request::Status)?;
    let status: Status = serde_json::from_value(result.clone())
        .context("the daemon's status reply is not understood; is `governor` the same version as the daemon?")?;
    if args.conn.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", table(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// The human-readable form.
fn table(s: &Status) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<16} {v}");
    };
    line(
        "daemon",
        format!(
            "pid {}, up {}, governor {}",
            s.daemon.pid,
            duration(s.daemon.uptime_secs),
            s.daemon.version
        ),
    );
    line(
        "policy",
        format!(
            "{} (owner {}) from {}, version {}",
            s.policy.name, s.policy.owner, s.policy.file, s.policy.version
        ),
    );
    line(
        "  loaded",
        format!(
            "{} (generation {}, {} reloads)",
            s.policy.loaded_at, s.policy.generation, s.policy.reloads
        ),
    );
    line("host", s.host.clone());
    line(
        "kernel",
        format!("{}, {} mode", s.kernel.release, s.kernel.mode),
    );
    line("  enforced", list(&s.kernel.enforced));
    line("  not enforced", list(&s.kernel.not_enforced));
    line("own dirs", list(&s.own_dirs));
    out.push('\n');
    let name_w = s
        .agents
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let cg_w = s
        .agents
        .iter()
        .map(|a| a.cgroup.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let _ = writeln!(out, "{:<name_w$}  {:<cg_w$}  MODE", "AGENT", "CGROUP");
    if s.agents.is_empty() {
        let _ = writeln!(out, "(no agents)");
    }
    for a in &s.agents {
        let halted = s
            .halts
            .iter()
            .find(|h| h.agent == a.name)
            .map_or_else(String::new, |h| {
                format!(
                    "  HALTED ({:?}{})",
                    h.action,
                    h.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )
            });
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<cg_w$}  {}{halted}",
            a.name, a.cgroup, a.mode
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<28} {:<12} {:<10} {:>10}  SCOPES",
        "LEASE", "AGENT", "STATE", "LEFT"
    );
    if s.leases.is_empty() {
        let _ = writeln!(out, "(no live leases)");
    }
    for l in &s.leases {
        let scopes: Vec<String> = l
            .scopes
            .iter()
            .map(|sc| format!("{}:{}", sc.class, sc.target))
            .collect();
        let _ = writeln!(
            out,
            "{:<28} {:<12} {:<10} {:>10}  {}",
            l.id,
            l.agent,
            l.state.name(),
            duration(l.left_secs),
            scopes.join(", ")
        );
    }
    let _ = writeln!(out, "{:<16} {}", "pending requests", s.requests_pending);
    match (&s.safety, &s.safety_error) {
        (Some(f), _) => {
            let t = &f.time_to_recovery;
            let _ = writeln!(
                out,
                "{:<16} {} unsafe actions blocked before execution; time to recovery: {}",
                "safety",
                f.blocked_before_execution,
                match (t.median_ms, t.worst_ms) {
                    (Some(m), Some(w)) =>
                        format!("median {m} ms, worst {w} ms over {} rollback(s)", t.count),
                    _ => "no rollback yet".to_owned(),
                }
            );
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "{:<16} unknown: {e}", "safety");
        }
        (None, None) => {}
    }
    out.push('\n');
    let c = &s.counters;
    let e = &s.events;
    let rows = [
        ("denied", c.denied),
        ("observed (would deny)", c.observed),
        ("unresolved (failed closed)", c.unresolved),
        ("kernel events dropped", c.kernel_events_dropped),
        ("lease allowed", c.lease_allowed),
        ("lease expired", c.lease_expired),
        ("cgroups untracked", c.cgroups_untracked),
        ("process records dropped", c.procs_dropped),
        ("events received", e.received),
        ("events malformed", e.malformed),
        ("events overflowed", e.overflowed),
    ];
    let _ = writeln!(out, "{:<27} VALUE", "COUNTER");
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<27} {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::status::{
        AgentInfo, Counters, DaemonInfo, KernelInfo, PolicyInfo, ReaderCounters,
    };

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(61), "1m01s");
        assert_eq!(duration(3600 + 62), "1h01m02s");
        assert_eq!(duration(86_400 * 2 + 5), "2d00h00m05s");
    }

    #[test]
    fn table_shows_every_part() {
        let s = Status {
            daemon: DaemonInfo {
                pid: 42,
                uptime_secs: 75,
                version: "0.1.0".into(),
            },
            policy: PolicyInfo {
                name: "demo".into(),
                owner: "o@example.com".into(),
                file: "/etc/governor/policy.toml".into(),
                version: "abcd".into(),
                loaded_at: "2026-11-21T19:40:00Z".into(),
                generation: 3,
                reloads: 2,
            },
            agents: vec![AgentInfo {
                name: "demo-agent".into(),
                cgroup: "governor/demo-agent".into(),
                mode: "enforce".into(),
            }],
            kernel: KernelInfo {
                release: "6.12.0".into(),
                mode: "degraded".into(),
                enforced: vec!["connect".into()],
                not_enforced: vec![],
            },
            own_dirs: vec!["/var/lib/governor".into()],
            counters: Counters {
                denied: 7,
                kernel_events_dropped: 3,
                ..Counters::default()
            },
            events: ReaderCounters {
                received: 9,
                ..ReaderCounters::default()
            },
            host: "m1".into(),
            leases: vec![serde_json::from_value(serde_json::json!({
                "id": "l-1", "kernel_id": 1, "agent": "demo-agent",
                "scopes": [{"class": "delete", "target": "/srv/x", "object": "/srv/x",
                            "resource": "data"}],
                "not_before": 0, "not_after": 90, "reason": "r", "ticket": null,
                "request": null, "signers": [], "submitted_by_uid": 0, "policy": "demo",
                "state": "enforced", "history": [], "left_secs": 90, "enforced_at_ms": null,
            }))
            .expect("a lease view")],
            halts: Vec::new(),
            requests_pending: 2,
            safety: None,
            safety_error: None,
        };
        let t = table(&s);
        for want in [
            "pid 42, up 1m15s",
            "demo (owner o@example.com) from /etc/governor/policy.toml, version abcd",
            "  loaded         2026-11-21T19:40:00Z (generation 3, 2 reloads)",
            "l-1                          demo-agent   enforced        1m30s  delete:/srv/x",
            "pending requests 2",
            "6.12.0, degraded mode",
            "  enforced       connect",
            "  not enforced   (none)",
            "demo-agent  governor/demo-agent  enforce",
            "denied                      7",
            "kernel events dropped       3",
            "events received             9",
            "/var/lib/governor",
        ] {
            assert!(t.contains(want), "missing {want:?} in:\n{t}");
        }
    }
}
