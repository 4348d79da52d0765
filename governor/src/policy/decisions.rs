//! Decisions on a resource: which classes are denied, which need a lease, and each agent's
//! own decisions that replace those defaults.
//!
//! ```toml
//! [[protect]]
//! path = "/srv/prod"
//! deny = ["delete"]        # refused to every agent; no lease lifts it
//! lease = ["write"]        # allowed only under an unexpired lease
//!
//! [[protect.agent]]        # the deployer agent's own decisions on /srv/prod
//! name = "deployer"
//! allow = ["write"]        # needs no lease
//! lease = ["delete"]       # may delete under a lease
//! ```
//!
//! Classes an agent entry does not name keep the resource's defaults. A class not named
//! anywhere is allowed (it is not this resource's business).

use governor_common::{maps::Masks, Class};
use toml::Spanned;

use super::{
    raw::{RawAgentDecisions, RawClasses},
    Validator,
};

/// The decisions of one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    pub deny: Vec<Class>,
    pub lease: Vec<Class>,
    pub agents: Vec<AgentDecisions>,
}

/// One agent's own decisions on a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentDecisions {
    pub agent: String,
    pub allow: Vec<Class>,
    pub lease: Vec<Class>,
    pub deny: Vec<Class>,
}

fn mask(classes: &[Class]) -> u32 {
    classes.iter().fold(0, |m, c| m | c.bit())
}

impl Decisions {
    /// The defaults, as kernel masks.
    pub fn masks(&self) -> Masks {
        Masks {
            deny_mask: mask(&self.deny),
            lease_mask: mask(&self.lease) & !mask(&self.deny),
        }
    }

    /// Every class some decision here denies or leases, for anyone.
    pub fn guarded(&self) -> Vec<Class> {
        let m = self.guarded_mask();
        Class::ALL
            .into_iter()
            .filter(|c| m & c.bit() != 0)
            .collect()
    }

    /// [`Decisions::guarded`], as a mask of [`Class::bit`]s.
    pub fn guarded_mask(&self) -> u32 {
        self.agents
            .iter()
            .fold(mask(&self.deny) | mask(&self.lease), |m, a| {
                m | mask(&a.deny) | mask(&a.lease)
            })
    }
}

impl AgentDecisions {
    /// Every class this entry names, as a mask.
    pub fn named(&self) -> u32 {
        mask(&self.allow) | mask(&self.lease) | mask(&self.deny)
    }

    /// This agent's masks: `defaults` with the classes this entry names moved to its decision.
    pub fn masks(&self, defaults: Masks) -> Masks {
        let named = self.named();
        Masks {
            deny_mask: (defaults.deny_mask & !named) | mask(&self.deny),
            lease_mask: (defaults.lease_mask & !named) | mask(&self.lease),
        }
    }
}

/// Turns one class name into the classes it stands for, or says why it cannot.
pub(super) type Resolve<'r> = &'r dyn Fn(&str) -> Result<&'static [Class], String>;

impl Validator<'_> {
    /// Validates the `deny` / `lease` lists and `[[…agent]]` entries of the entry at `field`
    /// (e.g. `protect[3]`); `at` is the entry's key field (`path`, `cidr`) and its name, where
    /// a missing decision is reported.
    pub(super) fn decisions(
        &mut self,
        field: &str,
        (at_name, at): (&str, &Spanned<String>),
        deny: Option<RawClasses>,
        lease: Option<RawClasses>,
        agents: Vec<Spanned<RawAgentDecisions>>,
        resolve: Resolve,
    ) -> Decisions {
        if deny.is_none() && lease.is_none() && agents.is_empty() {
            self.problem(
                at,
                &format!("{field}.{at_name}"),
                format!(
                    "decides nothing: give `deny = [...]`, `lease = [...]` or an agent entry \
                     ([[{}.agent]])",
                    field.split('[').next().unwrap_or(field)
                ),
            );
        }
        let deny = self.classes(deny.as_ref(), &format!("{field}.deny"), resolve);
        let lease_at = lease;
        let lease = self.classes(lease_at.as_ref(), &format!("{field}.lease"), resolve);
        let mut d = Decisions {
            deny,
            lease,
            agents: Vec::new(),
        };
        self.disjoint(
            &[(&d.deny, "deny")],
            &d.lease,
            lease_at.as_ref(),
            field,
            "lease",
        );
        for (j, a) in agents.into_iter().enumerate() {
            let a_field = format!("{field}.agent[{j}]");
            let entry = self.agent_decisions(&a_field, a.into_inner(), resolve);
            if d.agents.iter().any(|x| x.agent == entry.agent) {
                self.problem(
                    at,
                    &format!("{a_field}.name"),
                    format!("agent `{}` has two entries here; merge them", entry.agent),
                );
            }
            d.agents.push(entry);
        }
        d
    }

    fn agent_decisions(
        &mut self,
        field: &str,
        raw: RawAgentDecisions,
        resolve: Resolve,
    ) -> AgentDecisions {
        let agent = raw.name.get_ref().clone();
        if !self.agent_names.contains(&agent) {
            let known = if self.agent_names.is_empty() {
                "none are defined".to_owned()
            } else {
                format!("known agents: {}", self.agent_names.join(", "))
            };
            self.problem(
                &raw.name,
                &format!("{field}.name"),
                format!("`{agent}` is not an agent of this policy ({known})"),
            );
        }
        if raw.allow.is_none() && raw.lease.is_none() && raw.deny.is_none() {
            self.problem(
                &raw.name,
                &format!("{field}.name"),
                "decides nothing: give `allow`, `lease` or `deny`",
            );
        }
        let allow = self.classes(raw.allow.as_ref(), &format!("{field}.allow"), resolve);
        let lease = self.classes(raw.lease.as_ref(), &format!("{field}.lease"), resolve);
        let deny = self.classes(raw.deny.as_ref(), &format!("{field}.deny"), resolve);
        self.disjoint(
            &[(&allow, "allow")],
            &lease,
            raw.lease.as_ref(),
            field,
            "lease",
        );
        self.disjoint(
            &[(&allow, "allow"), (&lease, "lease")],
            &deny,
            raw.deny.as_ref(),
            field,
            "deny",
        );
        AgentDecisions {
            agent,
            allow,
            lease,
            deny,
        }
    }

    /// The classes of one list; an explicitly empty list is a problem.
    fn classes(&mut self, raw: Option<&RawClasses>, field: &str, resolve: Resolve) -> Vec<Class> {
        let Some(raw) = raw else {
            return Vec::new();
        };
        if raw.get_ref().is_empty() {
            self.problem(raw, field, "is empty; list classes or leave the field out");
        }
        let mut out: Vec<Class> = Vec::new();
        for name in raw.get_ref() {
            match resolve(name.get_ref()) {
                Ok(classes) => {
                    for c in classes {
                        if !out.contains(c) {
                            out.push(*c);
                        }
                    }
                }
                Err(why) => self.problem(name, field, why),
            }
        }
        out
    }

    /// Reports each class of `list` (field `field.name`, written at `at`) that an earlier
    /// list also decides.
    fn disjoint(
        &mut self,
        earlier: &[(&Vec<Class>, &str)],
        list: &[Class],
        at: Option<&RawClasses>,
        field: &str,
        name: &str,
    ) {
        let Some(at) = at else {
            return;
        };
        for (other, other_name) in earlier {
            let both: Vec<&str> = list
                .iter()
                .filter(|c| other.contains(c))
                .map(|c| c.name())
                .collect();
            if !both.is_empty() {
                self.problem(
                    at,
                    &format!("{field}.{name}"),
                    format!(
                        "{} also in `{other_name}`; each class gets one decision",
                        both.join(", ")
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_entries_move_only_the_classes_they_name() {
        let defaults = Decisions {
            deny: vec![Class::Unlink, Class::Rmdir],
            lease: vec![Class::Write],
            agents: Vec::new(),
        }
        .masks();
        let own = AgentDecisions {
            agent: "deployer".into(),
            allow: vec![Class::Write],
            lease: vec![Class::Unlink],
            deny: vec![Class::Chmod],
        };
        let m = own.masks(defaults);
        assert_eq!(m.deny_mask, Class::Rmdir.bit() | Class::Chmod.bit());
        assert_eq!(m.lease_mask, Class::Unlink.bit());
    }

    #[test]
    fn deny_wins_over_lease_in_defaults() {
        let m = Decisions {
            deny: vec![Class::Write],
            lease: vec![Class::Write, Class::Chmod],
            agents: Vec::new(),
        }
        .masks();
        assert_eq!(
            (m.deny_mask, m.lease_mask),
            (Class::Write.bit(), Class::Chmod.bit())
        );
    }
}
