//! `governor lineage events`: the latest decisions matching the filters, oldest first.

use std::{fmt::Write as _, process::ExitCode};

use super::{or_dash, print_json};
use crate::{
    cli::LineageEventsArgs,
    lineage::query::{self, events::Event},
};

pub fn run(args: LineageEventsArgs) -> anyhow::Result<ExitCode> {
    let conn = query::open(&args.out.db)?;
    let events = query::events::latest(&conn, &args.filter.filter(), args.limit)?;
    if args.out.json {
        return print_json(&events);
    }
    print!("{}", table(&events));
    Ok(ExitCode::SUCCESS)
}

pub(super) fn table(events: &[Event]) -> String {
    if events.is_empty() {
        return "no events match\n".to_owned();
    }
    let mut out = format!(
        "{:>8}  {:<24} {:<12} {:<12} {:<10} {:>7} {:<10} {:<30} {}\n",
        "ID", "TIME", "AGENT", "DECISION", "CLASS", "PID", "COMM", "TARGET", "RULE/LEASE"
    );
    for e in events {
        let why = e.lease_id.as_deref().or(e.rule.as_deref());
        let _ = writeln!(
            out,
            "{:>8}  {:<24} {:<12} {:<12} {:<10} {:>7} {:<10} {:<30} {}",
            e.id,
            e.time,
            or_dash(e.agent.as_deref()),
            e.decision,
            e.class,
            e.tgid,
            e.comm,
            e.path.as_deref().unwrap_or(&e.target),
            or_dash(why)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::query::{fixture, Filter};

    #[test]
    fn one_row_per_event_with_the_rule_or_lease() {
        let conn = fixture::db();
        let events = query::events::latest(&conn, &Filter::default(), 100).expect("events");
        let t = table(&events);
        assert_eq!(t.lines().count(), 1 + fixture::EVENTS, "{t}");
        let deny = t
            .lines()
            .find(|l| l.contains("/etc/passwd"))
            .expect("deny row");
        assert!(
            deny.contains("deny") && deny.contains("/etc") && deny.contains("rm"),
            "{deny}"
        );
        let leased = t
            .lines()
            .find(|l| l.contains("/srv/app/old.log"))
            .expect("row");
        assert!(leased.contains("L1"), "{leased}");
        assert_eq!(table(&[]), "no events match\n");
    }
}
