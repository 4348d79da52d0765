//! Who may use the admin socket: root or a uid given with `--admin-uid` (from `SO_PEERCRED`),
//! and never a task in an agent cgroup or below one, judged from `/proc/PID/cgroup`. Anything
//! that cannot be established (no pid, unreadable or unexpected cgroup file) refuses: fail
//! closed. The kernel refuses agents' connects before this (unix-connect on governor's
//! runtime directory); this check also covers agents in observe mode, which the kernel lets
//! through, and unprivileged users.

use std::path::{Path, PathBuf};

/// Why a peer was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("uid {uid} may not use the admin socket (root only, or uids given with --admin-uid)")]
    Uid { uid: u32 },
    #[error("the peer's pid is unknown, so its cgroup cannot be checked")]
    NoPid,
    #[error("cannot read /proc/{pid}/cgroup ({why}), so the peer's cgroup cannot be checked")]
    CgroupUnreadable { pid: i32, why: String },
    #[error(
        "/proc/{pid}/cgroup has no cgroup v2 (`0::`) line, so the peer's cgroup cannot be checked"
    )]
    NoCgroup2 { pid: i32 },
    #[error("pid {pid} runs in cgroup {cgroup}, which is agent `{agent}`'s: agents may never use the admin socket")]
    Agent {
        pid: i32,
        cgroup: String,
        agent: String,
    },
}

/// Who may connect.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// uids allowed besides root.
    pub admin_uids: Vec<u32>,
    /// Agent names and their cgroups, relative to the cgroup v2 root (as in the policy).
    pub agent_cgroups: Vec<(String, PathBuf)>,
}

/// `/proc/PID/cgroup`.
fn proc_cgroup(pid: i32) -> Result<String, Refused> {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/cgroup"));
    crate::host::files::read_text(&path, crate::host::files::KERNEL).map_err(|e| {
        Refused::CgroupUnreadable {
            pid,
            why: e.to_string(),
        }
    })
}

impl Access {
    /// Checks a peer from its `SO_PEERCRED` uid and pid.
    pub fn check(&self, uid: u32, pid: Option<i32>) -> Result<(), Refused> {
        self.check_uid(uid)?;
        let pid = pid.filter(|p| *p > 0).ok_or(Refused::NoPid)?;
        let text = proc_cgroup(pid)?;
        self.check_cgroup(pid, &text)
    }

    fn check_uid(&self, uid: u32) -> Result<(), Refused> {
        if uid == 0 || self.admin_uids.contains(&uid) {
            Ok(())
        } else {
            Err(Refused::Uid { uid })
        }
    }

    /// Checks the contents of `/proc/PID/cgroup`: the cgroup v2 path must not be an agent
    /// cgroup or lie below one.
    fn check_cgroup(&self, pid: i32, text: &str) -> Result<(), Refused> {
        match self.agent_in(pid, text)? {
            Some((agent, cgroup)) => Err(Refused::Agent { pid, cgroup, agent }),
            None => Ok(()),
        }
    }

    /// The agent whose cgroup (or a cgroup below it) `pid` runs in, if any, read from
    /// `/proc/PID/cgroup`; an unreadable or unexpected file is an error.
    pub fn agent_of(&self, pid: Option<i32>) -> Result<Option<String>, Refused> {
        let pid = pid.filter(|p| *p > 0).ok_or(Refused::NoPid)?;
        let text = proc_cgroup(pid)?;
        Ok(self.agent_in(pid, &text)?.map(|(agent, _)| agent))
    }

    /// The agent and cgroup path `text` (a `/proc/PID/cgroup`) puts its task in, if an
    /// agent's.
    fn agent_in(&self, pid: i32, text: &str) -> Result<Option<(String, String)>, Refused> {
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or(Refused::NoCgroup2 { pid })?;
        let rel = Path::new(path.trim_start_matches('/'));
        Ok(self
            .agent_cgroups
            .iter()
            .find(|(_, cgroup)| rel.starts_with(cgroup))
            .map(|(agent, _)| (agent.clone(), path.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access {
            admin_uids: vec![1000],
            agent_cgroups: vec![
                ("a".into(), PathBuf::from("governor/a")),
                ("b".into(), PathBuf::from("agents/b")),
            ],
        }
    }

    #[test]
    fn root_and_listed_uids_only() {
        let a = access();
        assert_eq!(a.check_uid(0), Ok(()));
        assert_eq!(a.check_uid(1000), Ok(()));
        assert_eq!(a.check_uid(1001), Err(Refused::Uid { uid: 1001 }));
        assert_eq!(
            Access::default().check_uid(1000),
            Err(Refused::Uid { uid: 1000 })
        );
    }

    #[test]
    fn agent_cgroups_and_below_are_refused() {
        let a = access();
        for path in [
            "/governor/a",
            "/governor/a/",
            "/governor/a/sub",
            "/agents/b/x/y",
        ] {
            let text = format!("0::{path}\n");
            assert!(
                matches!(a.check_cgroup(7, &text), Err(Refused::Agent { pid: 7, .. })),
                "{path}"
            );
        }
        let err = a.check_cgroup(7, "0::/governor/a/sub\n").unwrap_err();
        assert!(err.to_string().contains("agent `a`"), "{err}");
        // Siblings and prefixes that are not whole components are not agents.
        for path in [
            "/",
            "/governor",
            "/governor/ab",
            "/system.slice/ssh.service",
            "/agents",
        ] {
            let text = format!("0::{path}\n");
            assert_eq!(a.check_cgroup(7, &text), Ok(()), "{path}");
        }
        // cgroup v1 lines before the v2 line are skipped.
        let mixed = "12:pids:/governor/a\n1:name=systemd:/x\n0::/user.slice\n";
        assert_eq!(a.check_cgroup(7, mixed), Ok(()));
    }

    #[test]
    fn unknowable_peers_fail_closed() {
        let a = access();
        assert_eq!(a.check(0, None), Err(Refused::NoPid));
        assert_eq!(a.check(0, Some(0)), Err(Refused::NoPid));
        assert_eq!(
            a.check_cgroup(7, "12:pids:/\n1:name=systemd:/\n"),
            Err(Refused::NoCgroup2 { pid: 7 })
        );
        assert_eq!(a.check_cgroup(7, ""), Err(Refused::NoCgroup2 { pid: 7 }));
        // A pid that does not exist (pid_max is at most 2^22).
        assert!(matches!(
            a.check(0, Some(i32::MAX)),
            Err(Refused::CgroupUnreadable { .. })
        ));
        // A refused uid is refused before anything else is looked at.
        assert_eq!(a.check(4242, None), Err(Refused::Uid { uid: 4242 }));
    }

    #[test]
    fn this_process_passes_as_root_outside_agents() {
        let pid = std::process::id() as i32;
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("own cgroup");
        if text.lines().any(|l| l.starts_with("0::")) {
            assert_eq!(access().check(0, Some(pid)), Ok(()));
        } else {
            assert_eq!(
                access().check(0, Some(pid)),
                Err(Refused::NoCgroup2 { pid })
            );
        }
    }
}
