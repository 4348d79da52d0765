//! Decisions on a resource: which classes it allows, denies or leases itself, what the class
//! table decides for the rest, and each agent's own decisions that replace those.
//!
//! ```toml
//! [[protect]]
//! path = "/srv/prod"
//! deny = ["delete"]        # refused to every agent; no lease lifts it
//! lease = ["write"]        # allowed only under an unexpired lease
//! allow = ["truncate"]     # allowed here, whatever the class table says
//!
//! [[protect.agent]]        # the deployer agent's own decisions on /srv/prod
//! name = "deployer"
//! allow = ["write"]        # needs no lease
//! lease = ["delete"]       # may delete under a lease
//! ```
//!
//! How they combine (deny by default):
//! 1. A class the entry's `allow`, `lease` or `deny` list names gets that decision.
//! 2. Any other class of the resource's kind (file classes and unix-connect for `[[protect]]`,
//!    exec for `[[binaries]]`, connect/bind/send for `[[network]]`) gets the policy's
//!    `[classes.X].decision`, else the built-in one: deny for high-risk classes, allow for
//!    the rest (see `classes`).
//! 3. An agent's `[[….agent]]` entry replaces steps 1-2 for the classes it names, for that
//!    agent only.
//!
//! Nested protected paths: the nearest protected path that *decides* a class decides it. Its
//! lists always decide; a class-table `deny` or `lease` decides; a class the class table
//! allows is left to an enclosing protected path (allowed if none decides it). So `allow` on
//! a path is what makes an exception below a path that denies or leases.

use governor_common::{maps::Masks, Class};
use toml::Spanned;

use super::{
    classes::ClassDecision,
    raw::{RawAgentDecisions, RawClasses},
    Validator,
};

/// An entry's three decision lists, as written.
pub(super) struct RawLists {
    pub allow: Option<RawClasses>,
    pub deny: Option<RawClasses>,
    pub lease: Option<RawClasses>,
}

/// The decisions of one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    /// Classes this entry explicitly allows.
    pub allow: Vec<Class>,
    pub deny: Vec<Class>,
    pub lease: Vec<Class>,
    pub agents: Vec<AgentDecisions>,
    /// What the class table decides for the classes of this kind that the lists above do not
    /// name (deny by default).
    pub from_classes: Masks,
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
    /// The defaults (the entry's lists, then the class table), as kernel masks.
    pub fn masks(&self) -> Masks {
        let deny = mask(&self.deny) | self.from_classes.deny_mask;
        Masks {
            deny_mask: deny,
            lease_mask: (mask(&self.lease) | self.from_classes.lease_mask) & !deny,
        }
    }

    /// Classes this entry explicitly allows, as a mask: the kernel's walk stops here for them
    /// (an enclosing protected path does not decide them).
    pub fn allow_mask(&self) -> u32 {
        mask(&self.allow) & !mask(&self.deny) & !mask(&self.lease)
    }

    /// Every class some list of this entry or of its agent entries leases, as a mask.
    pub fn leased_mask(&self) -> u32 {
        self.agents
            .iter()
            .fold(mask(&self.lease) | self.from_classes.lease_mask, |m, a| {
                m | mask(&a.lease)
            })
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
        let m = self.masks();
        self.agents.iter().fold(m.deny_mask | m.lease_mask, |m, a| {
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
    /// Validates the `allow` / `deny` / `lease` lists and `[[…agent]]` entries of the entry
    /// at `field` (e.g. `protect[3]`), whose kind covers the classes `kind`; `at` is the
    /// entry's path, where a missing decision is reported. Classes of `kind` the lists do not
    /// name take the class table's decision.
    pub(super) fn decisions(
        &mut self,
        field: &str,
        at: &Spanned<String>,
        lists: RawLists,
        agents: Vec<Spanned<RawAgentDecisions>>,
        resolve: Resolve,
        kind: &[Class],
    ) -> Decisions {
        let RawLists { allow, deny, lease } = lists;
        let allow_at = allow;
        let allow = self.classes(allow_at.as_ref(), &format!("{field}.allow"), resolve);
        let deny_at_given = deny.is_some();
        let deny = self.classes(deny.as_ref(), &format!("{field}.deny"), resolve);
        let lease_at = lease;
        let lease = self.classes(lease_at.as_ref(), &format!("{field}.lease"), resolve);
        let named = mask(&allow) | mask(&deny) | mask(&lease);
        let unnamed: Vec<Class> = kind
            .iter()
            .copied()
            .filter(|c| named & c.bit() == 0)
            .collect();
        let from_classes = Masks {
            deny_mask: self.table.mask(&unnamed, ClassDecision::Deny),
            lease_mask: self.table.mask(&unnamed, ClassDecision::Lease),
        };
        let mut d = Decisions {
            allow,
            deny,
            lease,
            agents: Vec::new(),
            from_classes,
        };
        self.disjoint(
            &[(&d.deny, "deny")],
            &d.lease,
            lease_at.as_ref(),
            field,
            "lease",
        );
        self.disjoint(
            &[(&d.deny, "deny"), (&d.lease, "lease")],
            &d.allow,
            allow_at.as_ref(),
            field,
            "allow",
        );
        let m = d.masks();
        // A list given but empty (or invalid) is reported on its own.
        let lists_given = allow_at.is_some() || deny_at_given || lease_at.is_some();
        if m.deny_mask == 0
            && m.lease_mask == 0
            && d.allow.is_empty()
            && agents.is_empty()
            && !lists_given
        {
            self.problem(
                at,
                &format!(
                    "{field}.{}",
                    if field.starts_with("network") {
                        "cidr"
                    } else {
                        "path"
                    }
                ),
                format!(
                    "decides nothing: the class table allows every class here; give \
                     `deny = [...]`, `lease = [...]`, `allow = [...]` or an agent entry \
                     ([[{}.agent]])",
                    field.split('[').next().unwrap_or(field)
                ),
            );
        }
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
        self.leased |= d.leased_mask();
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
            ..Decisions::default()
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
            ..Decisions::default()
        }
        .masks();
        assert_eq!(
            (m.deny_mask, m.lease_mask),
            (Class::Write.bit(), Class::Chmod.bit())
        );
    }
}
