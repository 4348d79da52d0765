//! The processes that run the timed loops. The driver itself never leaves its own cgroup:
//! governor refuses an agent task's move out of its agent cgroup (cgroup-escape), and a
//! driver inside the agent cgroup could neither come back out nor stop the daemon (signal).
//! So each kind of caller is a child process, `governor-bench --worker`, which the driver
//! moves into its cgroup from the outside and which stays there for the whole run.
//!
//! The driver sends one JSON request per line on the worker's stdin and reads one JSON reply
//! per line from its stdout: `{"cmd":"hello"}` → `{"cgroup":"/governor-bench/agent"}`,
//! `{"cmd":"run","op":"open+read","iters":N}` → `{"ns":T}`, `{"cmd":"unlink","path":P}` →
//! `{"errno":E}` (0 on success), `{"cmd":"flood","count":N,"rate":R}` →
//! `{"attempts":N,"denied":D,"other":O,"ns":T}`. A failure becomes `{"error":"..."}`. Every reply is awaited
//! with a timeout: a worker that stalls is killed and the run fails with a message naming it.
//! The worker's stderr is the driver's, so its own error messages show in the output.

use std::{
    fs,
    io::{self, BufRead, Write},
    os::fd::AsRawFd,
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{ops::Fixture, ops::Op, sys::Cgroup};

/// The driver's first argument that makes it a worker.
pub const WORKER_FLAG: &str = "--worker";
/// How long a worker may take to start and answer `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker may take to exit once its stdin is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The worker's side: opens the fixture in `work` and serves requests until stdin closes.
pub fn serve(work: &Path) -> Result<()> {
    let fx = Fixture::open(work)?;
    let stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    for line in stdin.lines() {
        let line = line.context("reading a request from the driver")?;
        let reply = match answer(&fx, &line) {
            Ok(v) => v,
            Err(e) => json!({ "error": format!("{e:#}") }),
        };
        writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .context("writing a reply to the driver")?;
    }
    Ok(())
}

fn answer(fx: &Fixture, line: &str) -> Result<Value> {
    let req: Value =
        serde_json::from_str(line).with_context(|| format!("request {line:?} is not JSON"))?;
    match req["cmd"].as_str() {
        Some("hello") => Ok(json!({ "cgroup": format!("/{}", Cgroup::current()?.rel) })),
        Some("run") => {
            let op = req["op"]
                .as_str()
                .and_then(Op::from_name)
                .with_context(|| format!("request {line:?}: unknown op"))?;
            let iters = req["iters"]
                .as_u64()
                .with_context(|| format!("request {line:?}: no iters"))?;
            Ok(json!({ "ns": fx.run(op, iters)?.as_nanos() as u64 }))
        }
        Some("unlink") => {
            let path = req["path"]
                .as_str()
                .with_context(|| format!("request {line:?}: no path"))?;
            let errno = match fs::remove_file(path) {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(-1),
            };
            Ok(json!({ "errno": errno }))
        }
        Some("flood") => {
            let count = req["count"]
                .as_u64()
                .with_context(|| format!("request {line:?}: no count"))?;
            let rate = req["rate"]
                .as_u64()
                .filter(|r| *r > 0)
                .with_context(|| format!("request {line:?}: no rate"))?;
            let f = crate::ops::flood_send(count, rate)?;
            Ok(json!({
                "attempts": f.attempts,
                "denied": f.denied,
                "other": f.other,
                "ns": f.elapsed.as_nanos() as u64,
            }))
        }
        _ => bail!("request {line:?}: unknown cmd"),
    }
}

/// The driver's handle on one worker, running in one cgroup.
pub struct Worker {
    name: &'static str,
    cgroup: Cgroup,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: io::BufReader<ChildStdout>,
    /// Longest wait for the reply to a `run`.
    run_timeout: Duration,
}

impl Worker {
    /// Starts `governor-bench --worker WORK` (this same executable), moves it into `cgroup`
    /// and checks that it is there. `name` ("agent", "non-agent") is for messages.
    pub fn start(
        name: &'static str,
        cgroup: &Cgroup,
        work: &Path,
        run_timeout: Duration,
    ) -> Result<Worker> {
        let exe = std::env::current_exe().context("finding the driver's own executable")?;
        let mut child = Command::new(&exe)
            .arg(WORKER_FLAG)
            .arg(work)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the {name} worker {}", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .context("the worker's stdout is piped")?;
        let mut w = Worker {
            name,
            cgroup: cgroup.clone(),
            child,
            stdin,
            stdout: io::BufReader::new(stdout),
            run_timeout,
        };
        // The move is made from the outside, by the driver, which no governor rule restricts.
        cgroup
            .add(w.child.id())
            .with_context(|| format!("moving the {name} worker into its cgroup"))?;
        let reply = w.request(&json!({ "cmd": "hello" }), HELLO_TIMEOUT)?;
        let want = format!("/{}", cgroup.rel);
        if reply["cgroup"] != want.as_str() {
            bail!(
                "the {name} worker is in cgroup {}, not {want}",
                reply["cgroup"]
            );
        }
        Ok(w)
    }

    /// Runs `op` `iters` times in the worker; returns the elapsed time it measured.
    pub fn run(&mut self, op: Op, iters: u64) -> Result<Duration> {
        let reply = self.request(
            &json!({ "cmd": "run", "op": op.name(), "iters": iters }),
            self.run_timeout,
        )?;
        let ns = reply["ns"]
            .as_u64()
            .with_context(|| format!("the {} worker's reply {reply} has no ns", self.name))?;
        Ok(Duration::from_nanos(ns))
    }

    /// Unlinks `path` in the worker: `Ok(())` or the errno it got.
    pub fn unlink(&mut self, path: &Path) -> Result<std::result::Result<(), i32>> {
        let p = path
            .to_str()
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        let reply = self.request(&json!({ "cmd": "unlink", "path": p }), HELLO_TIMEOUT)?;
        match reply["errno"].as_i64() {
            Some(0) => Ok(Ok(())),
            Some(e) => Ok(Err(e as i32)),
            None => bail!("the {} worker's reply {reply} has no errno", self.name),
        }
    }

    /// Makes `count` denied sends in the worker ([`crate::ops::flood_send`]), at most `rate`
    /// per second; waits at most `timeout`.
    pub fn flood(&mut self, count: u64, rate: u64, timeout: Duration) -> Result<crate::ops::Flood> {
        let reply = self.request(
            &json!({ "cmd": "flood", "count": count, "rate": rate }),
            timeout,
        )?;
        let field = |k: &str| {
            reply[k]
                .as_u64()
                .with_context(|| format!("the {} worker's reply {reply} has no {k}", self.name))
        };
        Ok(crate::ops::Flood {
            attempts: field("attempts")?,
            denied: field("denied")?,
            other: field("other")?,
            elapsed: Duration::from_nanos(field("ns")?),
        })
    }

    /// Sends one request and waits at most `timeout` for its reply. A worker that does not
    /// answer in time is killed.
    fn request(&mut self, req: &Value, timeout: Duration) -> Result<Value> {
        let what = format!(
            "the {} worker (pid {}, cgroup /{})",
            self.name,
            self.child.id(),
            self.cgroup.rel
        );
        let stdin = self
            .stdin
            .as_mut()
            .with_context(|| format!("{what} was already told to exit"))?;
        if let Err(e) = writeln!(stdin, "{req}").and_then(|()| stdin.flush()) {
            let status = self.reap();
            return Err(e).with_context(|| format!("sending {req} to {what} ({status})"));
        }
        if !wait_readable(&self.stdout, timeout).with_context(|| format!("waiting for {what}"))? {
            self.kill();
            bail!(
                "{what} did not answer {req} within {}s: killed it",
                timeout.as_secs()
            );
        }
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .with_context(|| format!("reading the reply of {what}"))?;
        if n == 0 {
            let status = self.reap();
            bail!("{what} exited ({status}) instead of answering {req}; its errors are above");
        }
        let reply: Value = serde_json::from_str(&line)
            .with_context(|| format!("{what} answered {req} with {line:?}, not JSON"))?;
        if let Some(e) = reply["error"].as_str() {
            bail!("{what}: {req} failed: {e}");
        }
        Ok(reply)
    }

    /// The worker's exit status after it closed its stdout, waited for briefly.
    fn reap(&mut self) -> String {
        let started = Instant::now();
        while started.elapsed() < EXIT_TIMEOUT {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => return format!("cannot wait for it: {e}"),
            }
        }
        self.kill();
        "still running, killed".to_owned()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes the worker's stdin and waits for it to exit cleanly.
    pub fn finish(mut self) -> Result<()> {
        self.stdin = None;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the {} worker exited with {status}", self.name);
                }
                return Ok(());
            }
            if started.elapsed() > EXIT_TIMEOUT {
                self.kill();
                bail!(
                    "the {} worker did not exit within {}s of its stdin closing: killed it",
                    self.name,
                    EXIT_TIMEOUT.as_secs()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Still running only if `finish` was not reached: an error is on its way up.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Whether `r` has a line to read (or EOF) within `timeout`.
fn wait_readable(r: &io::BufReader<ChildStdout>, timeout: Duration) -> Result<bool> {
    if r.buffer().contains(&b'\n') {
        return Ok(true);
    }
    let mut pfd = libc::pollfd {
        fd: r.get_ref().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one pollfd we own, for the length we pass.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            return Ok(true);
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e).context("poll");
            }
        }
    }
}
