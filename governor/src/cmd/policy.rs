//! `governor policy check FILE...`: validate policies, print every problem, and for a valid
//! policy a summary: agents, resources, the class table and the policy version.
//! `governor policy reload` is in `policy_reload`.

use std::{fmt::Write as _, process::ExitCode};

use crate::{
    cli::PolicyCommand,
    policy::{classes_for_name, ClassDecision, Policy},
    time::format_duration,
};

pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Check { files } => {
            let mut failed = false;
            for file in &files {
                match Policy::load(file) {
                    Ok(p) => print!("{}", summary(&p)),
                    Err(e) => {
                        failed = true;
                        eprintln!("{e}");
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        PolicyCommand::Reload(args) => super::policy_reload::run(args),
    }
}

/// What `policy check` prints for a valid policy.
pub fn summary(p: &Policy) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: ok: policy `{}`, owner {}, version {}",
        p.source.display(),
        p.name,
        p.owner,
        p.version
    );
    let _ = writeln!(
        out,
        "  {} protected paths, {} network rules, {} binaries",
        p.protected.len(),
        p.network.len(),
        p.binaries.len()
    );
    for a in &p.agents {
        let _ = writeln!(
            out,
            "  agent {}: {}, cgroup {}, leases up to {}{}",
            a.name,
            a.mode.name(),
            a.cgroup.display(),
            format_duration(a.max_lease_ttl.as_secs()),
            if a.allow_fileless_exec {
                ", fileless exec allowed"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "  {:<14} {:<13} {:<13} {:<9} approvals",
        "class", "reversibility", "blast radius", "decision"
    );
    let atomic = p
        .class_table
        .rules()
        .iter()
        .filter(|r| classes_for_name(&r.name).is_some_and(|c| c.len() == 1));
    for r in atomic {
        let approvals = match p.approvals_required(&r.name) {
            u32::MAX => "-".to_owned(),
            n if r.decision == ClassDecision::Lease => n.to_string(),
            n => format!("({n})"),
        };
        let from = classes_for_name(&r.name)
            .and_then(|c| c.first())
            .is_some_and(|c| p.class_table.written(*c));
        let _ = writeln!(
            out,
            "  {:<14} {:<13} {:<13} {:<9} {}{}",
            r.name,
            r.reversibility.name(),
            r.blast_radius.name(),
            r.decision.name(),
            approvals,
            if from { "  [classes]" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "  (decision: what a protected resource that does not decide the class itself does; \
         approvals in parentheses apply where a resource leases the class; - = always denied)"
    );
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn summary_shows_the_class_table_and_version() {
        let text = "[policy]\nname = \"s\"\nowner = \"o@example.com\"\n\n\
                    [[agents]]\nname = \"a\"\nmax_lease_ttl = \"15m\"\n\n\
                    [classes.write]\ndecision = \"lease\"\napprovals = 3\n\n\
                    [[protect]]\npath = \"/srv\"\n";
        let p = Policy::parse(Path::new("s.toml"), text).expect("valid");
        let s = summary(&p);
        assert!(
            s.starts_with(&format!(
                "s.toml: ok: policy `s`, owner o@example.com, version {}",
                p.version
            )),
            "{s}"
        );
        assert!(
            s.contains("agent a: enforce, cgroup governor/a, leases up to 15m"),
            "{s}"
        );
        let line = |name: &str| {
            s.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no {name} line: {s}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(line("write"), "write reversible medium lease 3 [classes]");
        assert_eq!(line("unlink"), "unlink irreversible high deny (2)");
        assert_eq!(line("bpf"), "bpf irreversible high deny -");
        assert_eq!(line("link"), "link reversible low allow (1)");
    }
}
