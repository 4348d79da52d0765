//! A small lineage database for the query tests, written through the daemon's own
//! [`record::insert`] after [`schema::migrate`]:
//!
//! ```text
//! sshd 50 (not an agent)
//! └─ governor run 100 (launcher, not an agent)
//!    └─ claude 200
//!       ├─ bash 300 @30s, exited @500s   └─ sleep 400 @40s, exited @100s   (pids reused later)
//!       ├─ sh 300 @600s
//!       │  ├─ rm 400 @900s    → EV_DENY (unlink /etc/passwd, rule /etc)
//!       │  └─ ls 401 @950s
//!       └─ mv 500 @700s       → EV_LEASED_1/2 (lease L1: alice + bob), EV_OBSERVE, EV_L2
//! codex's process 700 is not recorded → EV_CODEX
//! ```
//!
//! Event `k` happens at Unix time `T0 + k s`, boot time `1000 + k s`.
//!
//! Reversibility ([`reversibility`]): L2 was snapshotted, then rolled back at 100 s (partial,
//! one conflict), 40 s after its first destructive event (EV_L2). L3 was not snapshotted
//! (`rollback = "none"`). codex's L4 was snapshotted and restored by the kill at 70 s,
//! done at 73 s; claude's L5 by the freeze at 55 s, done at 56 s, and once more at 120 s
//! by `governor rollback`, with no destructive event under it on record (no incident to time).
//! Refusals: codex's expired lease LX (an unsafe action blocked), claude's LY over its TTL
//! (not one).

use rusqlite::Connection;

use std::path::PathBuf;

use crate::lineage::{
    authority::{self, RestoreFacts, SnapshotFacts, Trigger},
    boot::Stamp,
    record::{
        insert, EventRow, GapRow, HaltRow, KeyRow, LeaseRow, LifecycleRow, PolicyRow, ProcessRow,
        Record, SignerRow,
    },
    schema,
};

pub const SEC: i64 = 1_000_000_000;
/// 2026-11-21T19:40:00Z.
pub const T0: i64 = 1_795_290_000 * SEC;
pub const T0_SECS: u64 = 1_795_290_000;
pub const BOOT: &str = "boot-a";

pub const EV_LEASED_1: i64 = 1;
pub const EV_LEASED_2: i64 = 2;
pub const EV_OBSERVE: i64 = 3;
pub const EV_DENY: i64 = 4;
pub const EV_CODEX: i64 = 5;
pub const EV_L2: i64 = 6;
pub const EVENTS: usize = 6;

/// Boot ns of second `s` of the boot.
pub fn boot(s: u64) -> u64 {
    s * SEC as u64
}

fn started(pid: u32, start: u64, ppid: u32, pstart: u64, agent: Option<&str>) -> Record {
    Record::Process(ProcessRow::Started {
        boot_id: BOOT.into(),
        pid,
        start_ns: boot(start),
        ppid,
        parent_start_ns: boot(pstart),
        uid: 1000,
        cgroup_id: if agent.is_some() { 77 } else { 1 },
        agent: agent.map(Into::into),
    })
}

fn exec(pid: u32, start: u64, exe: &str, argv: &[&str]) -> Record {
    Record::Process(ProcessRow::Exec {
        boot_id: BOOT.into(),
        pid,
        start_ns: boot(start),
        exec_ns: Some(boot(start) + 1000),
        argv_truncated: false,
        exe: exe.into(),
        argv: argv.iter().map(|a| (*a).to_owned()).collect(),
        cwd: Some("/home/agent".into()),
        uid: 1000,
    })
}

fn exited(pid: u32, start: u64, at: u64) -> Record {
    Record::Process(ProcessRow::Exited {
        boot_id: BOOT.into(),
        pid,
        start_ns: boot(start),
        exit_ns: boot(at),
        exit_code: 0,
    })
}

pub struct Ev<'a> {
    pub k: i64,
    pub agent: &'a str,
    pub tgid: u32,
    pub comm: &'a str,
    pub class: &'a str,
    pub decision: &'a str,
    pub path: &'a str,
    pub rule: Option<&'a str>,
    pub lease: Option<&'a str>,
    pub policy: &'a str,
}

pub fn event(e: &Ev<'_>) -> Record {
    Record::Event(Box::new(EventRow {
        boot_id: BOOT.into(),
        boot_ns: boot(1000) + (e.k * SEC) as u64,
        ts_ns: T0 + e.k * SEC,
        agent: Some(e.agent.into()),
        cgroup_id: 77,
        pid: e.tgid,
        tgid: e.tgid,
        uid: 1000,
        gid: 1000,
        comm: e.comm.into(),
        exe: Some(format!("/usr/bin/{}", e.comm)),
        class: e.class.into(),
        decision: e.decision.into(),
        target: e.path.into(),
        path: Some(e.path.into()),
        inode: Some((8, 1000 + e.k as u64)),
        detail: 0,
        rule: e.rule.map(Into::into),
        lease_id: e.lease.map(Into::into),
        policy_version: e.policy.into(),
        ring: 0,
    }))
}

fn signer(key: &str, who: &str, role: &str) -> SignerRow {
    SignerRow {
        key_id: key.into(),
        operator: who.into(),
        role: role.into(),
        signed_at: T0_SECS - 120,
    }
}

fn lease(id: &str, reason: &str, ticket: Option<&str>, signers: Vec<SignerRow>) -> Record {
    Record::Lease(Box::new(LeaseRow {
        id: id.into(),
        agent: "claude".into(),
        host: "host-1".into(),
        scopes: r#"[{"class":"delete","target":"/srv/app"}]"#.into(),
        not_before: T0_SECS - 60,
        not_after: T0_SECS + 3600,
        reason: reason.into(),
        ticket: ticket.map(Into::into),
        request_id: if id == "L1" { Some("R1".into()) } else { None },
        document: format!("lease {id}"),
        policy_version: "pv1".into(),
        signers,
    }))
}

fn life(k: i64, lease: Option<&str>, request: Option<&str>, state: &'static str) -> Record {
    Record::Lifecycle(LifecycleRow {
        ts_ns: T0 + k * SEC,
        lease_id: lease.map(Into::into),
        request_id: request.map(Into::into),
        state,
        actor: Some("alice@example.com".into()),
        detail: None,
    })
}

fn policy(version: &str, owner: &str, loaded_ns: i64) -> Record {
    Record::Policy(Box::new(PolicyRow {
        version: version.into(),
        name: "prod".into(),
        owner: owner.into(),
        source: "/etc/governor/policy.toml".into(),
        loaded_ns,
        text: "# policy".into(),
    }))
}

fn key(id: &str, who: &str) -> Record {
    Record::Key(KeyRow {
        key_id: id.into(),
        operator: who.into(),
        public_key: "AAAA".into(),
        first_seen_ns: T0 - 3600 * SEC,
    })
}

/// Every record of the fixture, in the order the daemon could have written them.
pub fn records() -> Vec<Record> {
    let claude = Some("claude");
    let mut r = vec![
        key("k-alice", "alice@example.com"),
        key("k-bob", "bob@example.com"),
        key("k-carol", "carol@example.com"),
        policy(
            "pv1",
            "platform-team <platform@example.com>",
            T0 - 100 * SEC,
        ),
        // Reloaded (same file) before EV_DENY: the trace names this load.
        policy("pv1", "platform-team <platform@example.com>", T0 + 35 * SEC),
        policy("pv2", "security-team", T0 + 45 * SEC),
        started(50, 1, 1, 0, None),
        exec(50, 1, "/usr/sbin/sshd", &["sshd"]),
        started(100, 10, 50, 1, None),
        exec(
            100,
            10,
            "/usr/bin/governor",
            &["governor", "run", "--agent", "claude", "claude"],
        ),
        started(200, 20, 100, 10, claude),
        exec(200, 20, "/usr/bin/claude", &["claude"]),
        started(300, 30, 200, 20, claude),
        exec(300, 30, "/bin/bash", &["bash"]),
        started(400, 40, 300, 30, claude),
        exec(400, 40, "/usr/bin/sleep", &["sleep", "50"]),
        exited(400, 40, 100),
        exited(300, 30, 500),
        started(300, 600, 200, 20, claude),
        exec(300, 600, "/bin/sh", &["sh", "-c", "rm -rf /etc/passwd"]),
        started(500, 700, 200, 20, claude),
        exec(
            500,
            700,
            "/usr/bin/mv",
            &["mv", "/srv/app/conf", "/srv/app/conf.old"],
        ),
        started(400, 900, 300, 600, claude),
        exec(400, 900, "/usr/bin/rm", &["rm", "-rf", "/etc/passwd"]),
        started(401, 950, 300, 600, claude),
        exec(401, 950, "/usr/bin/ls", &["ls"]),
        life(-200, None, Some("R1"), "requested"),
        life(-150, Some("L1"), Some("R1"), "issued"),
        lease(
            "L1",
            "rotate logs",
            Some("OPS-42"),
            vec![
                signer("k-alice", "alice@example.com", "issuer"),
                signer("k-bob", "bob@example.com", "approver"),
            ],
        ),
        life(-100, Some("L1"), None, "submitted"),
        life(-99, Some("L1"), None, "enforced"),
        lease(
            "L2",
            "reset db",
            None,
            vec![signer("k-carol", "carol@example.com", "issuer")],
        ),
        life(-90, Some("L2"), None, "enforced"),
        life(65, Some("L2"), None, "revoked"),
    ];
    let evs = [
        Ev {
            k: EV_LEASED_1 * 10,
            ..evs_base()
        },
        Ev {
            k: EV_LEASED_2 * 10,
            path: "/srv/app/tmp/x",
            ..evs_base()
        },
        Ev {
            k: EV_OBSERVE * 10,
            class: "rename",
            decision: "observe-deny",
            path: "/srv/app/conf",
            lease: None,
            ..evs_base()
        },
        Ev {
            k: EV_DENY * 10,
            tgid: 400,
            comm: "rm",
            class: "unlink",
            decision: "deny",
            path: "/etc/passwd",
            rule: Some("/etc"),
            lease: None,
            ..evs_base()
        },
        Ev {
            k: EV_CODEX * 10,
            agent: "codex",
            tgid: 700,
            comm: "curl",
            class: "exec",
            decision: "deny",
            path: "/usr/bin/curl",
            rule: Some("/usr/bin/curl"),
            lease: None,
            policy: "pv2",
        },
        Ev {
            k: EV_L2 * 10,
            class: "truncate",
            path: "/var/db/x",
            rule: Some("/var/db"),
            lease: Some("L2"),
            policy: "pv2",
            ..evs_base()
        },
    ];
    r.extend(evs.iter().map(event));
    r.extend([
        Record::Halt(HaltRow {
            ts_ns: T0 + 55 * SEC,
            action: "freeze",
            agents: vec!["claude".into()],
            by_uid: 0,
            leases_revoked: 1,
            enforce_ns: Some(2_000_000),
        }),
        Record::Halt(HaltRow {
            ts_ns: T0 + 70 * SEC,
            action: "kill",
            agents: vec!["claude".into(), "codex".into()],
            by_uid: 0,
            leases_revoked: 0,
            enforce_ns: Some(6_000_000),
        }),
        Record::Halt(HaltRow {
            ts_ns: T0 + 80 * SEC,
            action: "resume",
            agents: vec!["claude".into()],
            by_uid: 0,
            leases_revoked: 0,
            enforce_ns: None,
        }),
        Record::Gap(GapRow {
            source: "kernel-ring",
            lost: 12,
            from_ns: T0 + 41 * SEC,
            until_ns: T0 + 42 * SEC,
            detail: "ring buffer full".into(),
            ring: None,
        }),
    ]);
    r.extend(reversibility());
    r
}

/// A stamp at second `k` after T0 on both clocks (boot time `1000 + k`), in ms.
fn stamp(k_ms: i64) -> Stamp {
    Stamp {
        boot_ns: boot(1000) + (k_ms * 1_000_000) as u64,
        unix_ns: T0 + k_ms * 1_000_000,
    }
}

fn at(mut r: Record, k: i64) -> Record {
    if let Record::Lifecycle(c) = &mut r {
        c.ts_ns = T0 + k * SEC;
    }
    r
}

fn snapshot(lease: &str, k: i64, method: &str, targets: &[PathBuf]) -> Record {
    let facts = SnapshotFacts {
        files: 3,
        entries: 5,
        bytes: 4096,
        method,
        took_ms: 12,
        targets,
        retain_until_ms: (T0_SECS + 3600 + 7 * 86_400) * 1000,
    };
    at(
        authority::snapshotted(lease, None, Some("uid:0".into()), &facts),
        k,
    )
}

/// A restore of `lease` from `from_ms` to `to_ms` (ms after T0).
fn restore(lease: &str, agent: &str, trigger: Trigger, from_ms: i64, to_ms: i64) -> Record {
    let paths = |p: &[&str]| p.iter().map(PathBuf::from).collect::<Vec<_>>();
    let (restored, recreated, removed) = (
        paths(&["/var/db/x", "/var/db/z"]),
        paths(&["/var/db/gone"]),
        paths(&["/var/db/new"]),
    );
    let conflicts = if lease == "L2" {
        vec![(
            PathBuf::from("/var/db/y"),
            "changed since the lease ended".into(),
        )]
    } else {
        Vec::new()
    };
    authority::rollback_row(&RestoreFacts {
        lease_id: lease,
        agent,
        uid: 0,
        trigger,
        boot_id: BOOT,
        started: stamp(from_ms),
        ended: stamp(to_ms),
        restored: &restored,
        recreated: &recreated,
        removed: &removed,
        unchanged: 7,
        conflicts: &conflicts,
        forced: false,
    })
}

fn refused(k: i64, lease: &str, agent: &str, expired: bool) -> Record {
    Record::Lifecycle(LifecycleRow {
        ts_ns: T0 + k * SEC,
        lease_id: Some(lease.into()),
        request_id: None,
        state: "refused",
        actor: Some("uid:1000".into()),
        detail: Some(
            serde_json::json!({
                "error": if expired { "the lease expired" } else { "the lease lasts too long" },
                "origin": "x.lease",
                "agent": agent,
                "expired": expired,
            })
            .to_string(),
        ),
    })
}

/// Snapshots, restores and refusals (see the module doc).
fn reversibility() -> Vec<Record> {
    let db = [PathBuf::from("/var/db")];
    let other = |id: &str, agent: &str, class: &str, target: &str| {
        let Record::Lease(mut l) = lease(id, "cleanup", None, vec![]) else {
            unreachable!("lease() makes a lease row")
        };
        l.agent = agent.into();
        l.scopes = format!(r#"[{{"class":"{class}","target":"{target}"}}]"#);
        Record::Lease(l)
    };
    vec![
        snapshot("L2", -91, "reflink", &db),
        restore("L2", "claude", Trigger::Rollback, 99_750, 100_000),
        other("L3", "claude", "delete", "/srv/cache"),
        at(
            authority::not_snapshotted("L3", None, None, "rollback = \"none\" on /srv/cache"),
            -80,
        ),
        other("L4", "codex", "write", "/var/db"),
        snapshot("L4", -70, "copy", &db),
        restore(
            "L4",
            "codex",
            Trigger::Halt {
                halt_ns: T0 + 70 * SEC,
            },
            71_000,
            73_000,
        ),
        other("L5", "claude", "truncate", "/var/db"),
        snapshot("L5", -60, "copy", &db),
        restore(
            "L5",
            "claude",
            Trigger::Halt {
                halt_ns: T0 + 55 * SEC,
            },
            55_500,
            56_000,
        ),
        restore("L5", "claude", Trigger::Rollback, 119_000, 120_000),
        refused(20, "LX", "codex", true),
        refused(21, "LY", "claude", false),
    ]
}

/// The claude/mv/lease-allow event every other one varies.
fn evs_base() -> Ev<'static> {
    Ev {
        k: 0,
        agent: "claude",
        tgid: 500,
        comm: "mv",
        class: "unlink",
        decision: "lease-allow",
        path: "/srv/app/old.log",
        rule: Some("/srv/app"),
        lease: Some("L1"),
        policy: "pv1",
    }
}

/// An in-memory database holding [`records`].
pub fn db() -> Connection {
    let mut conn = Connection::open_in_memory().expect("memory db");
    schema::migrate(&mut conn).expect("schema");
    write(&mut conn, &records());
    conn
}

/// Writes `records` in one transaction.
pub fn write(conn: &mut Connection, records: &[Record]) {
    let tx = conn.transaction().expect("tx");
    for r in records {
        insert(&tx, r).expect("insert");
    }
    tx.commit().expect("commit");
}
