//! What a starting daemon takes over from the kernel generations it finds (pinned by a daemon
//! that stopped or died, or orphaned): their decisions become lineage rows, attributed to the
//! policy they were decided under, and whatever of theirs the lineage lacks is counted.
//!
//! The daemon drains each generation's rings ([`Handover::drain`]) before it retires the
//! generation, and again once the generation's programs have left the kernel; then
//! [`Handover::finish`] reconciles, in one transaction with the new run: for each
//! generation, the kernel's EventsEmitted minus what the lineage committed from its ring minus
//! what earlier gaps already counted is the number of its decisions lost (taken out of the
//! ring by a daemon that died before committing them); its EventsDropped minus the drops
//! already counted is what its full ring could not take while nobody counted. Generations
//! known from `rings` whose rings are gone (retired by a reload of a daemon that died, or
//! lost with a reboot) are reconciled from their last recorded counts: exact if those were
//! final, a lower bound otherwise.
//!
//! Attribution: a decision carries the agent and rule ids of the policy its generation
//! enforced. The generation's manifest (or its `rings` row) names that policy's version; its
//! text is this daemon's own policy when the versions match, else the `policies` row of that
//! version, read back here. When neither is there, the decisions are recorded with what the
//! kernel itself recorded (process, class, decision, path, inode, time) and the version, and
//! without agent names or rule paths; the gap row of the hand-over says so.

use std::{collections::HashMap, path::Path, sync::Arc};

use governor_common::{process::ProcEvent, Event};
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    boot::BootClock,
    decision,
    processes::{Host, Tracker},
    reconcile::{self, Found, Tally},
    record::{self, GapRow, Record, RingRow},
    recorder::Recorder,
    runs::Carried,
    writer,
};
use crate::{
    host::dirs::OwnDir,
    kernel::inherit::{Inherited, Origin},
    policy::{self, Compiled, Policy},
};

/// How a generation's agent and rule ids are read.
#[derive(Clone)]
enum Naming {
    Known(Arc<Compiled>),
    /// The policy is not recoverable: ids stay numbers.
    Unknown {
        blank: Arc<Compiled>,
        why: String,
    },
}

impl Naming {
    fn compiled(&self) -> &Compiled {
        match self {
            Naming::Known(c) | Naming::Unknown { blank: c, .. } => c,
        }
    }
}

/// A starting daemon's hand-over, on the lineage database before its writer thread runs.
pub struct Handover<'a> {
    conn: &'a mut Connection,
    clock: &'a BootClock,
    current: Arc<Compiled>,
    own: Vec<OwnDir>,
    cgroup2: std::path::PathBuf,
    names: HashMap<Option<String>, Naming>,
    /// Lease ids by the id the kernel reports (`signing::lease::kernel_id`).
    leases: HashMap<u64, String>,
    tallies: HashMap<u32, Tally>,
}

impl<'a> Handover<'a> {
    /// `current`: this daemon's compiled policy; `cgroup2`: the cgroup v2 mount (for the
    /// processes of drained process records).
    pub fn new(
        conn: &'a mut Connection,
        clock: &'a BootClock,
        current: Arc<Compiled>,
        cgroup2: &Path,
    ) -> rusqlite::Result<Handover<'a>> {
        let mut leases = HashMap::new();
        {
            let mut st = conn.prepare("SELECT id FROM leases")?;
            for id in st.query_map([], |r| r.get::<_, String>(0))? {
                let id = id?;
                leases.insert(crate::signing::lease::kernel_id(&id), id);
            }
        }
        Ok(Handover {
            own: current.own.clone(),
            conn,
            clock,
            current,
            cgroup2: cgroup2.to_path_buf(),
            names: HashMap::new(),
            leases,
            tallies: HashMap::new(),
        })
    }

    /// The policy version of `ring`'s generation: its manifest's, or what `rings` says.
    fn version_of(&self, ring: &Inherited) -> Option<String> {
        ring.policy.clone().or_else(|| {
            self.conn
                .query_row(
                    "SELECT policy_version FROM rings WHERE boot_id = ?1 AND ring_id = ?2",
                    params![self.clock.boot_id, ring.id],
                    |r| r.get::<_, Option<String>>(0),
                )
                .optional()
                .ok()
                .flatten()
                .flatten()
        })
    }

    fn naming(&mut self, version: Option<String>) -> Naming {
        if let Some(n) = self.names.get(&version) {
            return n.clone();
        }
        let naming = match &version {
            Some(v) if *v == self.current.policy_version => {
                Naming::Known(Arc::clone(&self.current))
            }
            Some(v) => match self.policy_text(v) {
                Ok(policy) => Naming::Known(Arc::new(names_only(&policy, &self.own))),
                Err(why) => Naming::Unknown {
                    blank: Arc::new(blank(v, &self.own)),
                    why,
                },
            },
            None => Naming::Unknown {
                blank: Arc::new(blank("unknown", &self.own)),
                why: "nothing names the policy it enforced (no manifest word, no rings row)"
                    .to_owned(),
            },
        };
        self.names.insert(version, naming.clone());
        naming
    }

    /// Policy `version`, parsed from its `policies` row.
    fn policy_text(&self, version: &str) -> Result<Policy, String> {
        let row = super::query::authority::policy_text(self.conn, version)
            .map_err(|e| format!("reading policy {version} from the lineage: {e}"))?;
        let (source, text) =
            row.ok_or_else(|| format!("policy {version} is not in the lineage's policies"))?;
        Policy::parse(Path::new(&source), &text)
            .map_err(|e| format!("policy {version} no longer parses: {e}"))
    }

    /// Takes every record now in `rings` into the lineage (decisions as `events` rows, process
    /// records as `processes` rows), committed before this returns.
    pub fn drain(&mut self, rings: &mut [Inherited]) -> rusqlite::Result<()> {
        for ring in rings.iter_mut() {
            let version = self.version_of(ring);
            let naming = self.naming(version);
            let mut records = Vec::new();
            let mut malformed = 0;
            let (clock, leases, id) = (self.clock, &self.leases, ring.id);
            let drained = ring.drain(|bytes| match Event::decode(bytes) {
                Ok(ev) => records.push(row(&ev, &naming, clock, leases, id)),
                Err(e) => {
                    malformed += 1;
                    tracing::warn!(error = %e, len = bytes.len(),
                        "malformed kernel event in a taken-over ring");
                }
            });
            let processes = self.processes(ring, naming.compiled(), &mut records);
            let refused = writer::write_now(self.conn, &records)?;
            let t = self.tallies.entry(ring.id).or_default();
            t.drained += drained - malformed;
            t.malformed += malformed;
            t.refused += refused.events;
            t.processes += processes;
            if let Naming::Unknown { why, .. } = &naming {
                t.unnamed = Some(why.clone());
            }
            for g in refused.gaps() {
                let tx = self.conn.transaction()?;
                record::insert(&tx, &Record::Gap(g))?;
                tx.commit()?;
            }
        }
        Ok(())
    }

    /// Turns the process records in `ring` into `processes` rows, appended to `records`.
    fn processes(
        &self,
        ring: &mut Inherited,
        compiled: &Compiled,
        records: &mut Vec<Record>,
    ) -> u64 {
        let mut events = Vec::new();
        let n = ring.drain_procs(|bytes| {
            if let Ok(ev) = ProcEvent::decode(bytes) {
                events.push(ev);
            }
        });
        if events.is_empty() {
            return n;
        }
        // A record becomes at most a start and an exec, and its launcher's.
        let (recorder, rx, _) = Recorder::channel(4 * events.len() + 16);
        let agents = compiled
            .agents
            .iter()
            .map(|a| (a.name.clone(), a.cgroup.clone()))
            .collect();
        let mut tracker = Tracker::new(
            recorder,
            self.clock.boot_id.clone(),
            Host::real(&self.cgroup2),
            agents,
        );
        for ev in &events {
            tracker.ingest(ev);
        }
        drop(tracker);
        records.extend(rx.try_iter());
        n
    }

    /// Reconciles every earlier generation (see the module doc), notes this daemon's run and
    /// registers `own`, its generation's ring, all in one transaction. `rings` have been
    /// drained to the end after their programs left the kernel. Returns the run's id, what
    /// was carried over, and the downtime gap if one was written.
    pub fn finish(
        self,
        rings: &[Inherited],
        pid: u32,
        own: RingRow,
    ) -> rusqlite::Result<(i64, Carried, Option<GapRow>)> {
        let found: Vec<Found> = rings
            .iter()
            .map(|r| Found {
                ring_id: r.id,
                generation: r.generation,
                policy: r.policy.clone(),
                orphan: r.origin == Origin::Orphan,
                counts: r.counts(),
                tally: self.tallies.get(&r.id).cloned().unwrap_or_default(),
            })
            .collect();
        reconcile::close(self.conn, self.clock, &found, pid, own)
    }
}

/// The lineage row of a decision drained from a taken-over ring.
fn row(
    ev: &Event,
    naming: &Naming,
    clock: &BootClock,
    leases: &HashMap<u64, String>,
    ring: u32,
) -> Record {
    let compiled = naming.compiled();
    let d = decision::describe(ev, compiled);
    let lease = (ev.lease_id != 0)
        .then(|| leases.get(&ev.lease_id).cloned())
        .flatten();
    Record::Event(Box::new(decision::event_row(
        ev,
        &d,
        clock,
        lease,
        &compiled.policy_version,
        ring,
    )))
}

/// Policy `version` when its text is not recoverable: no agent, rule or path to name.
fn blank(version: &str, own: &[OwnDir]) -> Compiled {
    Compiled {
        agents: Vec::new(),
        protected: Vec::new(),
        ancestors: Vec::new(),
        network: Default::default(),
        network_rules: Vec::new(),
        net_rules: Vec::new(),
        binaries: Vec::new(),
        agent_rules: Vec::new(),
        own: own.to_vec(),
        linked: Default::default(),
        absent: Vec::new(),
        policy_version: version.to_owned(),
    }
}

/// What an earlier generation's ids stand for, from its policy's text alone: the names of
/// its agents and the paths of its rules, by the same positions `policy::compile` gives them
/// (agent ids and rule ids are indexes into the policy's lists). Nothing here touches the
/// host (no cgroup is made, no path is looked up): the kernel objects behind the names may
/// be gone. Inode keys and masks stay empty: they decide nothing here.
fn names_only(policy: &Policy, own: &[OwnDir]) -> Compiled {
    use governor_common::{AgentInfo, InodeKey, ProtectedRule};
    let rule = |i: usize| ProtectedRule {
        rule_id: i as u32,
        deny_mask: 0,
        lease_mask: 0,
        agent_mask: 0,
    };
    let entry = |i: usize, path: &Path| policy::CompiledProtect {
        path: path.to_path_buf(),
        key: InodeKey::default(),
        rule: rule(i),
    };
    Compiled {
        agents: policy
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| policy::CompiledAgent {
                name: a.name.clone(),
                cgroup: a.cgroup.clone(),
                cgroup_id: 0,
                info: AgentInfo {
                    agent_id: i as u32,
                    flags: 0,
                },
            })
            .collect(),
        protected: policy
            .protected
            .iter()
            .enumerate()
            .map(|(i, p)| entry(i, &p.path))
            .collect(),
        ancestors: Vec::new(),
        network: Default::default(),
        network_rules: policy.network.iter().map(ToString::to_string).collect(),
        net_rules: policy
            .network
            .iter()
            .enumerate()
            .map(|(i, n)| n.kernel_rule(i as u32))
            .collect(),
        binaries: policy
            .binaries
            .iter()
            .enumerate()
            .map(|(i, b)| entry(i, &b.path))
            .collect(),
        agent_rules: Vec::new(),
        own: own.to_vec(),
        linked: Default::default(),
        absent: Vec::new(),
        policy_version: policy.version.clone(),
    }
}

#[cfg(test)]
mod tests {
    use governor_common::{Decision, Event, EventKind};

    use super::*;

    /// An earlier generation's agent and rule ids are named from its policy's text alone,
    /// by position, even when the paths no longer exist on this host.
    #[test]
    fn ids_are_named_by_the_policy_they_were_decided_under() {
        let text = r#"
[policy]
name = "old"
owner = "team@example.com"

[[agents]]
name = "first"
cgroup = "t/first"

[[agents]]
name = "second"
cgroup = "t/second"

[[protect]]
path = "/nonexistent/a"
deny = ["delete"]

[[protect]]
path = "/nonexistent/b"
deny = ["delete"]
"#;
        let policy = Policy::parse(Path::new("old.toml"), text).expect("policy");
        let names = names_only(&policy, &[]);
        let mut ev: Event = unsafe { std::mem::zeroed() };
        ev.kind = EventKind::FileDecision as u16;
        ev.agent_id = 1;
        ev.rule_id = 1;
        ev.class = governor_common::Class::Unlink as u32;
        ev.decision = Decision::Deny as u32;
        let d = decision::describe(&ev, &names);
        assert_eq!(d.agent, "second");
        assert_eq!(d.rule, "/nonexistent/b");
        let blank = blank("abc", &[]);
        let d = decision::describe(&ev, &blank);
        assert_eq!((d.agent, d.rule.as_str()), ("?", "rule 1"));
        let row = decision::event_row(
            &ev,
            &d,
            &BootClock {
                boot_id: "b".into(),
                offset_ns: 0,
            },
            None,
            &blank.policy_version,
            3,
        );
        assert_eq!(
            (row.agent, row.policy_version.as_str(), row.ring),
            (None, "abc", 3)
        );
    }
}
