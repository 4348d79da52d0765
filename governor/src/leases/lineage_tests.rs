//! The lease manager's lineage rows, from a real lease manager on a scratch state directory,
//! trusted-keys directory and policy, with a stand-in for the kernel's lease map: what a
//! refused submit, an accepted one, a revoke, an expiry, a request and its approval or
//! rejection record, read back from an in-memory lineage database.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{mpsc::Receiver, Arc, Mutex},
};

use governor_common::{LeaseEntry, LeaseKey};
use rusqlite::Connection;

use super::{clock, Ask, LeaseManager, LeaseMap, Setup};
use crate::{
    host::cgroup::CgroupFs,
    kernel::loader::LoadError,
    lineage::{
        record::{self, Record},
        recorder::Recorder,
        schema,
    },
    policy::{self, Policy},
    signing::{
        keys::SecretKey,
        lease::{Lease, LeaseBody, Role, Scope},
    },
};

pub(super) const HOST: &str = "0123456789abcdef0123456789abcdef";

/// The kernel's lease map, remembered.
#[derive(Default)]
pub(super) struct Map(pub(super) HashMap<LeaseKey, LeaseEntry>);

impl LeaseMap for Map {
    fn set_lease(&mut self, key: LeaseKey, entry: LeaseEntry) -> Result<(), LoadError> {
        self.0.insert(key, entry);
        Ok(())
    }

    fn remove_lease(&mut self, key: &LeaseKey) -> Result<(), LoadError> {
        self.0.remove(key);
        Ok(())
    }
}

pub(super) struct Fixture {
    pub(super) dir: PathBuf,
    pub(super) auth: LeaseManager,
    pub(super) rows: Receiver<Record>,
    pub(super) map: Arc<Mutex<Map>>,
    pub(super) key: SecretKey,
    pub(super) policy: Arc<Policy>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn fixture(name: &str) -> Fixture {
    fixture_with(name, "", "")
}

/// [`fixture`] with `protect` added to its `[[protect]]` entry and `extra` to its policy.
pub(super) fn fixture_with(name: &str, protect: &str, extra: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!(
        "governor-lineage-auth-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("prod")).expect("mkdir prod");
    std::fs::write(dir.join("prod/a"), b"x").expect("write target");
    let text = format!(
        "[policy]\nname = \"t\"\nowner = \"owners@example.com\"\n\n\
         [[agents]]\nname = \"coder\"\ncgroup = \"governor/coder\"\nmode = \"enforce\"\n\
         max_lease_ttl = \"15m\"\n\n\
         [classes.delete]\ndecision = \"lease\"\napprovals = 1\n\n\
         [[protect]]\npath = \"{}\"\nlease = [\"delete\"]\n{protect}\n{extra}\n",
        dir.join("prod").display()
    );
    let policy_file = dir.join("policy.toml");
    std::fs::write(&policy_file, &text).expect("write policy");
    let policy = Arc::new(Policy::load(&policy_file).expect("policy"));
    let cgroups = CgroupFs::at(dir.join("cgroup"));
    let compiled = Arc::new(policy::compile(&policy, &cgroups, &[]).expect("compile"));
    let key = SecretKey::from_seed([7; 32], "Ann Op <ann@example.com>", clock::wall_secs());
    key.public_file()
        .create(&dir.join("trusted").join(key.public_file().file_name()))
        .expect("trust key");
    let (recorder, rows, _) = Recorder::channel(1024);
    let map = Arc::new(Mutex::new(Map::default()));
    let auth = LeaseManager::open(Setup {
        state_dir: dir.join("state"),
        trusted_dir: dir.join("trusted"),
        host: HOST.to_owned(),
        policy: Arc::clone(&policy),
        compiled,
        enforcer: Arc::clone(&map) as Arc<Mutex<dyn LeaseMap>>,
        recorder,
    })
    .expect("leases");
    Fixture {
        dir,
        auth,
        rows,
        map,
        key,
        policy,
    }
}

impl Fixture {
    /// A lease on `<dir>/prod/a` signed by the fixture's key, lasting `secs` from now.
    pub(super) fn lease(&self, id: &str, secs: u64, request: Option<&str>) -> String {
        let now = clock::wall_secs();
        self.lease_between(id, now - 5, now + secs, request)
    }

    /// A lease on `<dir>/prod/a` valid from `not_before` until `not_after` (unix seconds).
    pub(super) fn lease_between(
        &self,
        id: &str,
        not_before: u64,
        not_after: u64,
        request: Option<&str>,
    ) -> String {
        let now = clock::wall_secs();
        Lease::sign(
            LeaseBody {
                version: 1,
                id: id.to_owned(),
                agent: "coder".into(),
                host: HOST.into(),
                scopes: vec![Scope {
                    class: "delete".into(),
                    target: self.dir.join("prod/a").display().to_string(),
                    pin: None,
                }],
                not_before,
                not_after,
                reason: "clean up".into(),
                ticket: Some("OPS-7".into()),
                request: request.map(str::to_owned),
            },
            &self.key,
            Role::Issuer,
            now - 3,
        )
        .to_toml()
    }

    /// Every row recorded since the last call.
    pub(super) fn drain(&self) -> Vec<Record> {
        self.rows.try_iter().collect()
    }

    /// A new lease manager on the fixture's state directory and map, as a restarted daemon
    /// opens it, and the rows it records.
    pub(super) fn reopen(&self) -> (LeaseManager, Receiver<Record>) {
        let (recorder, rows, _) = Recorder::channel(1024);
        let auth = LeaseManager::open(Setup {
            state_dir: self.dir.join("state"),
            trusted_dir: self.dir.join("trusted"),
            host: HOST.to_owned(),
            policy: Arc::clone(&self.policy),
            compiled: Arc::clone(&self.auth.compiled),
            enforcer: Arc::clone(&self.map) as Arc<Mutex<dyn LeaseMap>>,
            recorder,
        })
        .expect("reopen");
        (auth, rows)
    }
}

pub(super) fn states(rows: &[Record]) -> Vec<&'static str> {
    rows.iter()
        .filter_map(|r| match r {
            Record::Lifecycle(l) => Some(l.state),
            _ => None,
        })
        .collect()
}

/// The rows in a fresh lineage database.
fn database(rows: &[Record]) -> Connection {
    let mut conn = Connection::open_in_memory().expect("memory db");
    schema::migrate(&mut conn).expect("schema");
    let tx = conn.transaction().expect("tx");
    for r in rows {
        record::insert(&tx, r).expect("insert");
    }
    tx.commit().expect("commit");
    conn
}

#[test]
fn start_records_the_policy_with_its_owner_and_each_trusted_key_once() {
    let f = fixture("start");
    let rows = f.drain();
    let conn = database(&rows);
    let (name, owner, version, text): (String, String, String, String) = conn
        .query_row("SELECT name, owner, version, text FROM policies", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("policy row");
    assert_eq!((name.as_str(), owner.as_str()), ("t", "owners@example.com"));
    assert_eq!(version, f.policy.version);
    assert_eq!(text, *f.policy.text);
    let (key_id, operator, public): (String, String, String) = conn
        .query_row("SELECT key_id, operator, public_key FROM keys", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("key row");
    assert_eq!(key_id, f.key.id().to_string());
    assert_eq!(operator, "Ann Op <ann@example.com>");
    assert_eq!(
        public,
        crate::signing::keys::encode(f.key.verifying_key().as_bytes())
    );
    // The keys are read again at each submit; a key already recorded is not recorded again.
    let mut f = f;
    let text = f.lease("l-keys", 600, None);
    f.auth.submit(&text, "l.lease", 0).expect("accepted");
    assert!(
        !f.drain().iter().any(|r| matches!(r, Record::Key(_))),
        "a known key is recorded once"
    );
}

#[test]
fn a_refused_submit_is_one_refused_row_with_the_error_and_changes_nothing_else() {
    let mut f = fixture("refused");
    f.drain();
    let good = f.lease("l-ok", 600, None);
    let cases = [
        ("tampered", good.replace("clean up", "clean up more")),
        (
            "wrong host",
            good.replace(HOST, "ffffffffffffffffffffffffffffffff"),
        ),
        ("unknown agent", good.replace("\"coder\"", "\"other\"")),
        ("too long", f.lease("l-long", 3 * 3600, None)),
        ("not a lease", "this is not toml [".to_owned()),
    ];
    for (what, text) in &cases {
        let err = f
            .auth
            .submit(text, "x.lease", 1000)
            .expect_err(what)
            .to_string();
        let rows = f.drain();
        assert_eq!(rows.len(), 1, "{what}: {rows:?}");
        let Record::Lifecycle(l) = &rows[0] else {
            panic!("{what}: not a lifecycle row: {rows:?}");
        };
        assert_eq!(l.state, "refused", "{what}");
        assert_eq!(l.actor.as_deref(), Some("uid:1000"), "{what}");
        let detail: serde_json::Value =
            serde_json::from_str(l.detail.as_deref().expect("detail")).expect("json");
        assert_eq!(detail["error"], err.as_str(), "{what}");
        assert_eq!(detail["origin"], "x.lease", "{what}");
        if *what == "not a lease" {
            assert_eq!(l.lease_id, None);
        } else {
            assert!(l.lease_id.is_some(), "{what}: the parsed lease id is named");
        }
    }
    assert!(f.auth.list(true).is_empty(), "nothing was accepted");
    assert!(f.map.lock().expect("map").0.is_empty(), "nothing installed");
    // A replay is refused too, and recorded against the lease it replays.
    f.auth.submit(&good, "ok.lease", 0).expect("accepted");
    f.drain();
    let err = f.auth.submit(&good, "again.lease", 0).unwrap_err();
    let rows = f.drain();
    assert_eq!(states(&rows), ["refused"]);
    let Record::Lifecycle(l) = &rows[0] else {
        unreachable!()
    };
    assert_eq!(l.lease_id.as_deref(), Some("l-ok"));
    assert!(l
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("already submitted"));
    assert!(err.to_string().contains("already submitted"));
}

#[test]
fn an_accepted_lease_records_itself_its_signers_issued_submitted_enforced() {
    let mut f = fixture("accepted");
    f.drain();
    let text = f.lease("l-good", 600, None);
    f.auth.submit(&text, "good.lease", 1000).expect("accepted");
    let rows = f.drain();
    // The snapshot of the lease's scope is taken after its checks, before its entries.
    assert_eq!(
        states(&rows),
        ["issued", "submitted", "snapshotted", "enforced"]
    );
    let conn = database(&rows);
    let (agent, host, scopes, reason, ticket, document, version): (
        String,
        String,
        String,
        String,
        Option<String>,
        String,
        String,
    ) = conn
        .query_row(
            "SELECT agent, host, scopes, reason, ticket, document, policy_version FROM leases \
             WHERE id = 'l-good'",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .expect("lease row");
    assert_eq!((agent.as_str(), host.as_str()), ("coder", HOST));
    assert_eq!(
        (reason.as_str(), ticket.as_deref()),
        ("clean up", Some("OPS-7"))
    );
    assert_eq!(document, text);
    assert_eq!(version, f.policy.version);
    let scopes: serde_json::Value = serde_json::from_str(&scopes).expect("json");
    let target = f.dir.join("prod/a").display().to_string();
    assert_eq!(scopes[0]["class"], "delete");
    assert_eq!(scopes[0]["target"], target.as_str());
    assert_eq!(scopes[0]["object"], target.as_str());
    assert_eq!(
        scopes[0]["resource"],
        f.dir.join("prod").display().to_string().as_str()
    );
    let signer: (String, String, String, i64) = conn
        .query_row(
            "SELECT key_id, operator, role, signed_at FROM lease_signatures \
             WHERE lease_id = 'l-good'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("signer row");
    let issued_at = Lease::parse(&text, "t").expect("parse").signatures[0].signed_at;
    assert_eq!(
        signer,
        (
            f.key.id().to_string(),
            "Ann Op <ann@example.com>".to_owned(),
            "issuer".to_owned(),
            issued_at as i64
        )
    );
    let life: Vec<(String, Option<String>, i64)> = conn
        .prepare(
            "SELECT state, actor, ts_ns FROM lease_lifecycle WHERE lease_id = 'l-good' ORDER BY id",
        )
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(life[0].0, "issued");
    assert_eq!(life[0].1.as_deref(), Some("Ann Op <ann@example.com>"));
    assert_eq!(life[0].2, issued_at as i64 * 1_000_000_000);
    assert_eq!(life[1].0, "submitted");
    assert_eq!(life[1].1.as_deref(), Some("uid:1000"));
    assert_eq!(life[2].0, "snapshotted");
    assert_eq!(life[2].1.as_deref(), Some("uid:1000"));
    assert_eq!(life[3].0, "enforced");
    assert!(
        life[0].2 < life[1].2 && life[1].2 <= life[2].2 && life[2].2 <= life[3].2,
        "{life:?}"
    );
    assert!(!f.map.lock().expect("map").0.is_empty(), "installed");
}

#[test]
fn revoke_and_expiry_are_recorded_with_who_and_why() {
    let mut f = fixture("end");
    let text = f.lease("l-rev", 600, None);
    f.auth.submit(&text, "r.lease", 0).expect("accepted");
    f.drain();
    f.auth
        .revoke("l-rev", 1000, Some("done early".into()))
        .expect("revoked");
    let rows = f.drain();
    assert_eq!(states(&rows), ["revoked"]);
    let Record::Lifecycle(l) = &rows[0] else {
        unreachable!()
    };
    assert_eq!(l.lease_id.as_deref(), Some("l-rev"));
    assert_eq!(l.actor.as_deref(), Some("uid:1000"));
    assert!(l.detail.as_deref().unwrap_or("").contains("done early"));
    assert!(f.map.lock().expect("map").0.is_empty(), "uninstalled");

    // The lease manager reads the wall clock: a lease ending 2 s after the current whole second
    // has more than 1 s left now (1 s would leave anything from 0 to 1 s, and a slow submit
    // saw it expired), and has expired 2.2 s later.
    let text = f.lease("l-exp", 2, None);
    f.auth.submit(&text, "e.lease", 0).expect("accepted");
    f.drain();
    f.auth.tick();
    assert!(states(&f.drain()).is_empty(), "not expired yet");
    std::thread::sleep(std::time::Duration::from_millis(2200));
    f.auth.tick();
    let rows = f.drain();
    assert_eq!(states(&rows), ["expired"]);
    let Record::Lifecycle(l) = &rows[0] else {
        unreachable!()
    };
    assert_eq!(l.lease_id.as_deref(), Some("l-exp"));
    f.auth.tick();
    assert!(f.drain().is_empty(), "an expiry is recorded once");
}

#[test]
fn requests_record_requested_rejected_and_an_approval_links_request_and_lease() {
    let mut f = fixture("requests");
    f.drain();
    let target = f.dir.join("prod/a").display().to_string();
    let ask = |reason| Ask {
        agent: "coder",
        class: "delete",
        target: &target,
        reason,
        ttl_secs: Some(300),
        pid: 42,
        uid: 1001,
    };
    let r1 = f.auth.file_request(&ask("tidy")).expect("filed");
    let r2 = f.auth.file_request(&ask("tidy again")).expect("filed");
    let rows = f.drain();
    assert_eq!(states(&rows), ["requested", "requested"]);
    let Record::Lifecycle(l) = &rows[0] else {
        unreachable!()
    };
    assert_eq!(
        (l.request_id.as_deref(), l.lease_id.as_deref()),
        (Some(r1.id.as_str()), None)
    );
    assert_eq!(l.actor.as_deref(), Some("agent:coder"));
    assert!(l
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("\"reason\":\"tidy\""));

    f.auth.reject(&r2.id, 1000, "not now").expect("rejected");
    let rows = f.drain();
    assert_eq!(states(&rows), ["rejected"]);
    let Record::Lifecycle(l) = &rows[0] else {
        unreachable!()
    };
    assert_eq!(l.request_id.as_deref(), Some(r2.id.as_str()));
    assert_eq!(l.actor.as_deref(), Some("uid:1000"));

    // A lease that does not answer the request is refused, on the request's record.
    let wrong = f.lease("l-wrong", 300, None);
    f.auth
        .approve(&r1.id, &wrong, 1000)
        .expect_err("not an answer");
    let rows = f.drain();
    assert_eq!(states(&rows), ["refused"]);
    let Record::Lifecycle(l) = &rows[0] else {
        unreachable!()
    };
    assert_eq!(
        (l.request_id.as_deref(), l.lease_id.as_deref()),
        (Some(r1.id.as_str()), Some("l-wrong"))
    );

    let answer = f.lease("l-answer", 300, Some(&r1.id));
    f.auth.approve(&r1.id, &answer, 1000).expect("approved");
    let rows = f.drain();
    // The snapshot of the lease's scope is taken after its checks, before its entries.
    assert_eq!(
        states(&rows),
        ["issued", "submitted", "snapshotted", "enforced"]
    );
    for r in &rows {
        match r {
            Record::Lifecycle(l) => {
                assert_eq!(l.lease_id.as_deref(), Some("l-answer"));
                assert_eq!(l.request_id.as_deref(), Some(r1.id.as_str()));
            }
            Record::Lease(l) => assert_eq!(l.request_id.as_deref(), Some(r1.id.as_str())),
            other => panic!("unexpected row {other:?}"),
        }
    }
}

#[test]
fn a_restart_drops_a_lease_whose_key_is_no_longer_trusted() {
    let mut f = fixture("dropped");
    let text = f.lease("l-drop", 600, None);
    f.auth.submit(&text, "d.lease", 0).expect("accepted");
    std::fs::remove_dir_all(f.dir.join("trusted")).expect("untrust");
    let (recorder, rows, _) = Recorder::channel(1024);
    let _again = LeaseManager::open(Setup {
        state_dir: f.dir.join("state"),
        trusted_dir: f.dir.join("trusted"),
        host: HOST.to_owned(),
        policy: Arc::clone(&f.policy),
        compiled: Arc::clone(&f.auth.compiled),
        enforcer: Arc::clone(&f.map) as Arc<Mutex<dyn LeaseMap>>,
        recorder,
    })
    .expect("reopen");
    let rows: Vec<Record> = rows.try_iter().collect();
    assert!(matches!(rows[0], Record::Policy(_)), "{rows:?}");
    assert_eq!(states(&rows), ["dropped"]);
    let l = rows
        .iter()
        .find_map(|r| match r {
            Record::Lifecycle(l) => Some(l),
            _ => None,
        })
        .expect("row");
    assert_eq!(l.lease_id.as_deref(), Some("l-drop"));
    assert!(l.detail.as_deref().unwrap_or("").contains("reason"));
}
