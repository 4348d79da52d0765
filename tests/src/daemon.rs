//! A `governor daemon` under test: started on a policy in a scratch directory, run as an
//! agent or not through it, its logged decisions read back, and stopped (or handed on to a
//! successor) with its pinned enforcement removed.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    assert_eperm, governor_bin, pin_dir_for, runtime_dir_args, state_dir_for, try_unload, write,
    TEST_CONFIG_DIR,
};

/// How long a test waits for a daemon to enforce.
const DAEMON_START_LIMIT_SECS: u64 = 180;

/// How long an exited daemon's last stderr lines may take to reach [`Daemon::logged`].
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// A running `governor daemon`. On drop it is stopped (SIGTERM) and its pinned enforcement
/// removed with `governor unload` (the drop panics if that fails), unless it was handed on to
/// a [`Daemon::successor`].
pub struct Daemon {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    /// Says when the stderr reader has read the last line (the daemon's stderr closed).
    drained: Option<mpsc::Receiver<()>>,
    pub policy: PathBuf,
    /// Where it pins (`--pin-dir`).
    pub pin_dir: PathBuf,
    /// False once a successor took the pin directory over.
    unload_on_drop: bool,
}

impl Daemon {
    /// Starts the daemon on `policy_text` (written next to `dir`) and waits until it enforces.
    pub fn start(dir: &Path, policy_text: &str) -> Daemon {
        Self::start_with(dir, policy_text, &[])
    }

    /// Like [`Daemon::start`], with extra `governor daemon` arguments (`--require-full`).
    /// Fails if the pin directory exists: an earlier test left enforcement behind.
    pub fn start_with(dir: &Path, policy_text: &str, extra: &[&str]) -> Daemon {
        let pin_dir = pin_dir_for(dir);
        // An empty directory is harmless (the daemon creates it among its own directories
        // before it pins anything); pins in it mean enforcement leaked.
        let leaked = std::fs::read_dir(&pin_dir).is_ok_and(|mut d| d.next().is_some());
        assert!(
            !leaked,
            "{} holds pins before the daemon starts: enforcement leaked from an earlier run",
            pin_dir.display()
        );
        // A fresh state: no leases, halts or requests from an earlier test.
        let _ = std::fs::remove_dir_all(state_dir_for(&pin_dir));
        Self::spawn(dir, "policy.toml", policy_text, extra, pin_dir)
    }

    /// Starts a new daemon on this one's pin directory, with `policy_text` (written to
    /// `dir/<policy_file>`), and waits until it enforces; this daemon must have stopped or
    /// been killed. The new daemon adopts the pins, and unloads them when dropped.
    pub fn successor(
        mut self,
        dir: &Path,
        policy_file: &str,
        policy_text: &str,
        extra: &[&str],
    ) -> Daemon {
        assert!(
            !self.alive(),
            "stop or kill the daemon before starting its successor"
        );
        self.unload_on_drop = false;
        let pin_dir = self.pin_dir.clone();
        Self::spawn(dir, policy_file, policy_text, extra, pin_dir)
    }

    fn spawn(
        dir: &Path,
        policy_file: &str,
        policy_text: &str,
        extra: &[&str],
        pin_dir: PathBuf,
    ) -> Daemon {
        let policy = dir.join(policy_file);
        write(&policy, policy_text);
        let ready = dir.join("ready");
        let _ = std::fs::remove_file(&ready);
        let mut child = Command::new(governor_bin())
            .args([
                "daemon",
                "--log-format",
                "json",
                "--config-dir",
                TEST_CONFIG_DIR,
            ])
            .arg("--policy")
            .arg(&policy)
            .arg("--ready-file")
            .arg(&ready)
            .arg("--pin-dir")
            .arg(&pin_dir)
            .arg("--state-dir")
            .arg(state_dir_for(&pin_dir))
            .args(runtime_dir_args(&pin_dir))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn governor daemon");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&lines);
        let (eof, drained) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  daemon| {line}");
                sink.lock().expect("lock").push(line);
            }
            let _ = eof.send(());
        });
        // Generous: under QEMU TCG on a loaded 2-core host a daemon start (BTF parse and the
        // verification of ~45 programs) has taken over 40 s.
        let deadline = Instant::now() + Duration::from_secs(DAEMON_START_LIMIT_SECS);
        while !ready.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = drained.recv_timeout(DRAIN_LIMIT);
                panic!(
                    "daemon exited with {status} before enforcing:\n{}",
                    lines.lock().expect("lock").join("\n")
                );
            }
            if Instant::now() >= deadline {
                // Stop it: a daemon that becomes ready later would hold the admin socket and
                // make every later test's daemon refuse to start.
                let _ = child.kill();
                let _ = child.wait();
                panic!("daemon not ready within {DAEMON_START_LIMIT_SECS} s");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child: Some(child),
            lines,
            drained: Some(drained),
            policy,
            pin_dir,
            unload_on_drop: true,
        }
    }

    /// Runs `cmd` inside agent `agent`'s cgroup via `governor run`.
    pub fn as_agent(&self, agent: &str, cmd: &[&str]) -> Output {
        Command::new(governor_bin())
            .args(["run", "--policy"])
            .arg(&self.policy)
            .args(["--agent", agent, "--"])
            .args(cmd)
            .output()
            .expect("spawn governor run")
    }

    /// Runs `cmd` as agent `agent` after the shell commands `setup` ran in the plain host
    /// process that starts it: descriptors `setup` opens (`exec 3<>FILE`) are inherited by
    /// the agent, as from a cooperating non-agent.
    pub fn as_agent_after(&self, agent: &str, setup: &str, cmd: &[&str]) -> Output {
        let script = format!(
            "{setup}\npolicy=\"$1\"; agent=\"$2\"; shift 2\n\
             exec \"$0\" run --policy \"$policy\" --agent \"$agent\" -- \"$@\""
        );
        Command::new("sh")
            .args(["-c", &script])
            .arg(governor_bin())
            .arg(&self.policy)
            .arg(agent)
            .args(cmd)
            .output()
            .expect("spawn sh for governor run")
    }

    /// Runs `cmd` as `agent` (or, with `setup`, after `setup` ran in the host shell that
    /// starts it), asserts EPERM and exactly one deny event of `class` by `agent`, and
    /// returns the event.
    pub fn refused(&self, agent: &str, setup: &str, cmd: &[&str], class: &str) -> Value {
        let mark = self.mark();
        let out = if setup.is_empty() {
            self.as_agent(agent, cmd)
        } else {
            self.as_agent_after(agent, setup, cmd)
        };
        assert_eperm(&out, &format!("{class}: {cmd:?}"));
        let ev = self.one_since(mark, &format!("{class} for {cmd:?}"), |v| {
            v["class"] == class && v["decision"] == "deny"
        });
        assert_eq!(ev["agent"], agent, "{ev}");
        ev
    }

    /// Decision events logged so far (JSON objects with target `governor::decision`).
    pub fn decisions(&self) -> Vec<Value> {
        self.logged()
            .into_iter()
            .filter(|v| v["target"] == "governor::decision")
            .collect()
    }

    /// Every JSON log line so far.
    pub fn logged(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    /// Waits up to 5 s for a log line whose message starts with `message` (the reader thread
    /// may still be behind the ready file).
    pub fn wait_logged(&self, message: &str) -> Value {
        self.wait_logged_within(message, 5)
    }

    /// Waits up to `secs` for a log line whose message starts with `message` (a policy
    /// reload verifies every program again: tens of seconds under QEMU TCG).
    pub fn wait_logged_within(&self, message: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let found = self.logged().into_iter().find(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            });
            if let Some(v) = found {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no `{message}` line within {secs} s: {:#?}",
                self.logged()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to 5 s for a decision matching `pred`.
    pub fn wait_decision(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_decision_after(0, what, pred)
    }

    /// Waits up to 5 s for a decision matching `pred` among those after the first `skip`
    /// (take `skip` from `decisions().len()` before acting).
    pub fn wait_decision_after(
        &self,
        skip: usize,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(v) = self.decisions().into_iter().skip(skip).find(|v| pred(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no decision event {what} within 5 s; decisions seen: {:#?}",
                self.decisions()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// True while the daemon process has not exited.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// How many decision events were logged so far; a mark for [`Daemon::one_since`].
    pub fn mark(&self) -> usize {
        self.decisions().len()
    }

    /// Waits for a decision matching `pred` logged after `mark`, then checks that it is the
    /// only decision logged since `mark` (one operation, exactly one event).
    pub fn one_since(&self, mark: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        let ev = loop {
            let new: Vec<Value> = self.decisions().into_iter().skip(mark).collect();
            if let Some(v) = new.iter().find(|v| pred(v)) {
                break v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no decision event {what} within 5 s; decisions since the mark: {new:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        };
        thread::sleep(Duration::from_millis(300));
        let new: Vec<Value> = self.decisions().into_iter().skip(mark).collect();
        assert_eq!(
            new.len(),
            1,
            "{what}: expected exactly one event, got {new:#?}"
        );
        ev
    }

    /// Asserts that no decision was logged since `mark` (after giving the reader a moment).
    pub fn none_since(&self, mark: usize, what: &str) {
        thread::sleep(Duration::from_millis(300));
        let new: Vec<Value> = self.decisions().into_iter().skip(mark).collect();
        assert!(new.is_empty(), "{what}: expected no event, got {new:#?}");
    }

    /// Stops the daemon with SIGTERM, removes its pinned enforcement (`governor unload`) and
    /// returns its log lines.
    pub fn stop(mut self) -> Vec<String> {
        self.terminate(libc::SIGTERM);
        let lines = self.lines.lock().expect("lock").clone();
        drop(self); // unloads
        lines
    }

    /// Sends SIGTERM and waits for the daemon to exit, leaving its pins in place; returns its
    /// log lines. The pins are removed when this value is dropped.
    pub fn stop_keeping_pins(&mut self) -> Vec<String> {
        self.terminate(libc::SIGTERM);
        self.lines.lock().expect("lock").clone()
    }

    /// SIGKILLs the daemon and waits for it to be gone: it gets no chance to clean up.
    pub fn kill(&mut self) {
        self.terminate(libc::SIGKILL);
    }

    fn terminate(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, signal) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
            // The final lines are logged once the reader saw the end of stderr.
            if let Some(drained) = self.drained.take() {
                let _ = drained.recv_timeout(DRAIN_LIMIT);
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate(libc::SIGTERM);
        if !self.unload_on_drop {
            return;
        }
        match try_unload(&self.pin_dir) {
            Ok(_) => {}
            // The test already failed: report (a second panic would abort the run).
            Err(e) if thread::panicking() => eprintln!("cleanup after a failed test: {e}"),
            Err(e) => panic!("{e}"),
        }
    }
}
