//! Process and host-wide classes: exec of listed binaries (under any name, through the
//! loader, as memfd), setid transitions, signals and ptrace outside the agent (above all at
//! the daemon), bpf() and kernel modules. For each: the agent gets EPERM and the target is
//! unchanged, a plain host process is unaffected, and exactly one event is logged.
//!
//! This file holds the shared policy, helpers and the bpf() probe; one file a subject: `exec`,
//! `setid`, `signals` (signals and ptrace), `host_classes` (bpf(), kernel modules, and all
//! of these in observe mode).
//!
//! May import the test library (`governor_kernel_tests`); the kernel tests' folders import
//! nothing from each other.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Output},
    thread,
    time::{Duration, Instant},
};

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    as_host, as_host_user, assert_eperm, assert_ok, kernel_module, require_bpf_lsm, run_in_cgroup,
    scratch, spawn_in_cgroup, write, Daemon,
};
use serde_json::Value;

mod exec;
mod host_classes;
mod setid;
mod signals;

/// The unprivileged identity the setuid tests run as.
const NOBODY: u32 = 65534;
/// The dynamic loader, which can run a binary without exec'ing it.
const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";

/// One agent of a test policy: name, mode, allow_fileless_exec.
struct A<'a>(&'a str, &'a str, bool);

/// A policy with `agents` (each in cgroup `governor-test/<name>`) and `binaries` denied exec.
fn policy(name: &str, agents: &[A], binaries: &[&Path]) -> String {
    let mut s = format!("[policy]\nname = \"test-{name}\"\nowner = \"kernel-tests@example.com\"\n");
    for A(agent, mode, fileless) in agents {
        s += &format!(
            "\n[[agents]]\nname = \"{agent}\"\ncgroup = \"{}\"\nmode = \"{mode}\"\n\
             allow_fileless_exec = {fileless}\n",
            cgroup(agent)
        );
    }
    for b in binaries {
        s += &format!(
            "\n[[binaries]]\npath = \"{}\"\ndeny = [\"exec\"]\n",
            b.display()
        );
    }
    s
}

fn cgroup(agent: &str) -> String {
    format!("governor-test/{agent}")
}

fn python(code: &str) -> Vec<&str> {
    vec!["python3", "-c", code]
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A long-running `sleep` child, killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn host() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("300")
                .spawn()
                .expect("spawn sleep"),
        )
    }

    /// A `sleep` in the cgroup `rel`, returned once it runs `sleep` there.
    fn in_cgroup(rel: &str) -> Sleeper {
        let s = Sleeper(spawn_in_cgroup(rel, 0, 0, &["sleep", "300"]));
        let comm = format!("/proc/{}/comm", s.pid());
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep" {
            assert!(Instant::now() < deadline, "sleep did not start in {rel}");
            thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Waits up to 5 s for the process to end.
    fn ended(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asserts an event's common fields.
fn assert_event(ev: &Value, agent: &str, class: &str, decision: &str) {
    assert_eq!(ev["agent"], agent, "{ev}");
    assert_eq!(ev["class"], class, "{ev}");
    assert_eq!(ev["decision"], decision, "{ev}");
}

/// bpf(BPF_MAP_CREATE) of a one-slot array; prints the fd.
const BPF_MAP_CREATE: &str = "import ctypes, os, struct\n\
     libc = ctypes.CDLL(None, use_errno=True)\n\
     attr = ctypes.create_string_buffer(struct.pack('IIII', 2, 4, 4, 1), 128)\n\
     fd = libc.syscall(321, 0, attr, 128)\n\
     if fd < 0:\n\
     \x20   e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n\
     print(fd)\n";
