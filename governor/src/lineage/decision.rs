//! A kernel decision in the policy's words: what the numbers of an [`Event`] (agent id, rule
//! id, class, decision) stand for in the compiled policy of the generation that made it, shared
//! by the daemon's decision log line and the lineage row ([`event_row`]).

use governor_common::{
    maps::AGENT_UNKNOWN,
    maps::{
        RULE_ANCESTOR_FLAG, RULE_BUILTIN, RULE_FILELESS, RULE_LINKED_FLAG, RULE_NONE, RULE_SELF,
        RULE_UNRESOLVED,
    },
    net::{AF_INET, AF_INET6},
    path::RecordedPath,
    Class, Decision, Event, EventKind,
};

use super::{boot::BootClock, record::EventRow};
use crate::policy::Compiled;

/// governor's own directories, comma-separated.
pub fn own_dirs_text(compiled: &Compiled) -> String {
    compiled
        .own
        .iter()
        .map(|d| d.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a decision's `rule_id` stands for, in words.
pub fn rule_text(ev: &Event, class: Option<Class>, compiled: &Compiled) -> String {
    let path = |id: u32, p: Option<&std::path::Path>| {
        p.map_or_else(|| format!("rule {id}"), |p| p.display().to_string())
    };
    match ev.rule_id {
        RULE_UNRESOLVED => "(unresolved: failed closed)".to_owned(),
        RULE_NONE => "(none: no protected resource decides it)".to_owned(),
        RULE_BUILTIN => "(built-in: agents may never do this)".to_owned(),
        RULE_FILELESS => "(fileless: the file has no name on any filesystem)".to_owned(),
        // Also the ancestors of those directories: RULE_SELF has RULE_ANCESTOR_FLAG's bit.
        RULE_SELF => format!("(governor's own: {})", own_dirs_text(compiled)),
        id if class == Some(Class::Exec) => path(id, compiled.binary_path(id)),
        id if id & RULE_ANCESTOR_FLAG != 0 => {
            let id = id & !RULE_ANCESTOR_FLAG;
            format!("(ancestor of) {}", path(id, compiled.protected_path(id)))
        }
        id if id & RULE_LINKED_FLAG != 0 => {
            let id = id & !RULE_LINKED_FLAG;
            format!("(by inode, from) {}", path(id, compiled.protected_path(id)))
        }
        id => path(id, compiled.protected_path(id)),
    }
}

/// Whether a rule text of [`rule_text`] names a rule the kernel applies outside the policy's
/// resources (unresolved, built-in, fileless execution, governor's own directories):
/// `governor simulate` does not re-decide those.
pub fn fixed_rule(text: &str) -> bool {
    [
        "(unresolved:",
        "(built-in:",
        "(fileless:",
        "(governor's own:",
    ]
    .iter()
    .any(|p| text.starts_with(p))
}

/// A decision in the policy's words, shared by the log line and the lineage row.
pub struct Described<'a> {
    /// The agent's name, or what stands in for it.
    pub agent: &'a str,
    pub class: Option<Class>,
    pub class_name: &'static str,
    pub decision: &'static str,
    pub comm: std::borrow::Cow<'a, str>,
    pub exe: RecordedPath<'a>,
    pub target_path: RecordedPath<'a>,
    /// What was acted on: the file's path, `addr:port`, the target pid or the host object.
    pub target: String,
    /// The rule that decided: a protected path (or what stands for it) or a network rule.
    pub rule: String,
}

/// What the kernel's numbers in `ev` stand for in `compiled`.
pub fn describe<'a>(ev: &'a Event, compiled: &'a Compiled) -> Described<'a> {
    let agent = if ev.agent_id == AGENT_UNKNOWN {
        "(unregistered cgroup below an agent cgroup)"
    } else {
        compiled.agent_name(ev.agent_id).unwrap_or("?")
    };
    let class = Class::from_u32(ev.class);
    let target_path = ev.target_path();
    let name = || String::from_utf8_lossy(Event::trim_nul(&ev.name)).into_owned();
    let kind = EventKind::from_u16(ev.kind);
    let target = match kind {
        Some(EventKind::NetDecision) => match ev.target.family {
            AF_INET6 => format!("[{}]:{}", net_addr(ev).0, ev.target.port),
            _ => format!("{}:{}", net_addr(ev).0, ev.target.port),
        },
        Some(EventKind::TaskDecision) => format!("pid {}", ev.target.pid),
        _ if target_path.is_present() => target_path.to_string(),
        _ => match name() {
            n if n.is_empty() => class.map_or("unknown", Class::name).to_owned(),
            n => n,
        },
    };
    let rule = if kind == Some(EventKind::NetDecision) {
        compiled
            .network_rule(ev.rule_id)
            .map_or_else(|| format!("rule {}", ev.rule_id), str::to_owned)
    } else {
        rule_text(ev, class, compiled)
    };
    Described {
        agent,
        class,
        class_name: class.map_or("unknown", Class::name),
        decision: Decision::from_u32(ev.decision).map_or("unknown", Decision::name),
        comm: String::from_utf8_lossy(Event::trim_nul(&ev.comm)),
        // Both recorded by the kernel at decision time: right even if the process has exited.
        exe: ev.exe_path(),
        target_path,
        target,
        rule,
    }
}

/// The lineage row of a decision (`events`) that came from kernel ring `ring`.
pub fn event_row(
    ev: &Event,
    d: &Described<'_>,
    clock: &BootClock,
    lease: Option<String>,
    policy_version: &str,
    ring: u32,
) -> EventRow {
    let file = EventKind::from_u16(ev.kind) == Some(EventKind::FileDecision);
    EventRow {
        boot_id: clock.boot_id.clone(),
        boot_ns: ev.boot_ns,
        ts_ns: clock.wall_ns(ev.boot_ns),
        agent: (ev.agent_id != AGENT_UNKNOWN && d.agent != "?").then(|| d.agent.to_owned()),
        cgroup_id: ev.cgroup_id,
        pid: ev.pid,
        tgid: ev.tgid,
        uid: ev.uid,
        gid: ev.gid,
        comm: d.comm.clone().into_owned(),
        exe: d.exe.is_present().then(|| d.exe.to_string()),
        class: d.class_name.to_owned(),
        decision: d.decision.to_owned(),
        target: d.target.clone(),
        path: d
            .target_path
            .is_present()
            .then(|| d.target_path.to_string()),
        inode: file.then_some((ev.target.inode.dev.into(), ev.target.inode.ino)),
        detail: ev.target.detail,
        rule: Some(d.rule.clone()),
        lease_id: lease,
        policy_version: policy_version.to_owned(),
        ring,
    }
}

/// The address of a network event as text, and its family name.
pub fn net_addr(ev: &Event) -> (String, &'static str) {
    let a = ev.target.addr;
    match ev.target.family {
        AF_INET => (
            std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
            "ipv4",
        ),
        AF_INET6 => (std::net::Ipv6Addr::from(a).to_string(), "ipv6"),
        other => (format!("(family {other})"), "unknown"),
    }
}
