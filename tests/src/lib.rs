//! Helpers for governor's kernel integration tests: start a daemon on a policy, run commands
//! as an agent or not, and read the decisions the daemon logged.
//!
//! These tests need a kernel with BPF-LSM. `cargo xtask test` runs them inside the QEMU VM
//! (`cargo xtask vm`); anywhere else [`require_bpf_lsm`] fails them — it never skips.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod lease;
pub mod net;
pub mod net_lease;
pub mod operator;
pub mod paths;

static GOVERNOR_BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes [`governor_bin`] return `path` (for tests that know their binary, like cargo's
/// `CARGO_BIN_EXE_governor` in the governor package's own integration tests).
pub fn set_governor_bin(path: impl Into<PathBuf>) {
    let _ = GOVERNOR_BIN.set(path.into());
}

/// The governor binary under test: the one given to [`set_governor_bin`], else
/// `$GOVERNOR_BIN`, else `governor` on PATH (the VM runner puts the freshly built one first).
pub fn governor_bin() -> PathBuf {
    if let Some(p) = GOVERNOR_BIN.get() {
        return p.clone();
    }
    std::env::var_os("GOVERNOR_BIN").map_or_else(|| PathBuf::from("governor"), PathBuf::from)
}

static PIN_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The daemon's default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/governor";

/// The daemon's default pin directory, which the kernel tests use.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/governor";

/// Makes every [`Daemon`] pin in `<prefix><name of its scratch directory>` instead of in
/// [`DEFAULT_PIN_DIR`] (for the host tier, whose tests run in parallel).
pub fn set_pin_prefix(prefix: &str) {
    let _ = PIN_PREFIX.set(prefix.to_owned());
}

/// The pin directory a daemon started for scratch directory `dir` uses.
pub fn pin_dir_for(dir: &Path) -> PathBuf {
    match (PIN_PREFIX.get(), dir.file_name()) {
        (Some(prefix), Some(name)) => PathBuf::from(format!("{prefix}{}", name.to_string_lossy())),
        _ => PathBuf::from(DEFAULT_PIN_DIR),
    }
}

/// `--runtime-dir` for daemons that run side by side (the host tests, which set a pin
/// prefix): each gets its own admin socket, named after its pin directory. Daemons in the VM
/// run one at a time and keep the default, `/run/governor`.
fn runtime_dir_args(pin_dir: &Path) -> Vec<String> {
    match (PIN_PREFIX.get(), pin_dir.file_name()) {
        (Some(_), Some(name)) => vec![
            "--runtime-dir".to_owned(),
            format!("/run/{}", name.to_string_lossy()),
            "--request-dir".to_owned(),
            format!("/run/{}-requests", name.to_string_lossy()),
        ],
        _ => Vec::new(),
    }
}

/// The state directory (lease store, halts, requests) of the daemons on `pin_dir`, emptied
/// when a test starts its first daemon and shared with its successors, so that leases outlive
/// a restart as they do in production, and no test sees another's. In the VM (one daemon at
/// a time, on the default pin directory) it is the default, `/var/lib/governor` (a tmpfs
/// there); host tests, side by side, get one each.
pub fn state_dir_for(pin_dir: &Path) -> PathBuf {
    if pin_dir == Path::new(DEFAULT_PIN_DIR) {
        return PathBuf::from(DEFAULT_STATE_DIR);
    }
    let name = pin_dir.file_name().map_or_else(
        || "governor".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    PathBuf::from(format!("/tmp/governor-test/state/{name}"))
}

/// Runs `governor unload --pin-dir DIR` and panics, with its output, unless it succeeded and
/// the directory is gone: a test must never leave enforcement behind for the next one.
pub fn unload(pin_dir: &Path) -> Output {
    try_unload(pin_dir).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `governor unload --pin-dir DIR` and returns its output, whatever it did.
pub fn try_unload_output(pin_dir: &Path) -> Output {
    Command::new(governor_bin())
        .args(["unload", "--pin-dir"])
        .arg(pin_dir)
        .output()
        .expect("spawning governor unload")
}

fn try_unload(pin_dir: &Path) -> Result<Output, String> {
    let out = Command::new(governor_bin())
        .args(["unload", "--pin-dir"])
        .arg(pin_dir)
        .output()
        .map_err(|e| format!("spawning governor unload: {e}"))?;
    if out.status.success() && !pin_dir.exists() {
        return Ok(out);
    }
    Err(format!(
        "governor unload --pin-dir {} failed ({}): stdout={:?} stderr={:?}",
        pin_dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Fails the test unless the running kernel has BPF-LSM active.
pub fn require_bpf_lsm() {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    assert!(
        lsm.split(',').any(|l| l.trim() == "bpf"),
        "this test needs a kernel with BPF-LSM active (found LSMs: {lsm:?}); \
         run it with `cargo xtask test`, which boots one in a VM"
    );
}

/// A fresh scratch directory under /tmp named after the test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/governor-test/{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes `text` to `path`, creating parent directories.
pub fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent");
    }
    std::fs::write(path, text).expect("write file");
}

/// governor's configuration directory for test daemons: the VM's `/etc` is read-only, so
/// the default `/etc/governor` cannot be created there. (The other own directories keep
/// their defaults: the VM has tmpfs on `/run` and `/var/lib/governor`, and bpffs.)
pub const TEST_CONFIG_DIR: &str = "/tmp/governor-test/etc-governor";

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

/// The module `rel` (e.g. `kernel/drivers/block/brd.ko`) of the running kernel, decompressed
/// into `dir` if need be. Modules come from `$GOVERNOR_TEST_MODULES_DIR` (set by
/// `cargo xtask test`), else from xtask's default kernel cache.
pub fn kernel_module(dir: &Path, rel: &str) -> PathBuf {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let release = release.trim();
    let modules = std::env::var_os("GOVERNOR_TEST_MODULES_DIR").map_or_else(
        || {
            PathBuf::from(format!(
                "/root/.cache/governor/kernels/linux-image-{release}-unsigned/lib/modules/{release}"
            ))
        },
        PathBuf::from,
    );
    let base = modules.join(rel);
    let out = dir.join(base.file_name().expect("a module file name"));
    if base.exists() {
        std::fs::copy(&base, &out).expect("copy module");
    } else {
        let xz = base.with_extension("ko.xz");
        let code = format!(
            "import lzma; open({:?}, 'wb').write(lzma.open({:?}).read())",
            out.display().to_string(),
            xz.display().to_string()
        );
        assert_ok(
            &as_host(&["python3", "-c", &code]),
            &format!("decompress {} (GOVERNOR_TEST_MODULES_DIR)", xz.display()),
        );
    }
    out
}

/// Loads the module file `module` with parameters `params` (finit_module(2)), as a
/// non-agent; a module that is already loaded is fine.
pub fn load_module(module: &Path, params: &str) {
    let code = "import ctypes, errno, os, sys\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         fd = os.open(sys.argv[1], os.O_RDONLY)\n\
         if libc.syscall(313, fd, sys.argv[2].encode(), 0) != 0:\n\
         \x20   e = ctypes.get_errno()\n\
         \x20   if e != errno.EEXIST: raise OSError(e, os.strerror(e))\n";
    let module = module.display().to_string();
    assert_ok(
        &as_host(&["python3", "-c", code, &module, params]),
        &format!("load {module}"),
    );
}

/// Runs `cmd` as a plain (non-agent) process.
pub fn as_host(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .expect("spawn command")
}

/// Starts `cmd` as `uid`:`gid` and only then moves it into the cgroup `rel` (relative to
/// the cgroup v2 mount): the identity change happens while it is still a plain host process.
/// The command runs once it is in the cgroup.
pub fn spawn_in_cgroup(rel: &str, uid: u32, gid: u32, cmd: &[&str]) -> Child {
    let mut child = Command::new("sh")
        .args(["-c", "read -r _ && exec \"$@\"", "sh"])
        .args(cmd)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let procs = format!("/sys/fs/cgroup/{rel}/cgroup.procs");
    std::fs::write(&procs, child.id().to_string())
        .unwrap_or_else(|e| panic!("moving {} into {procs}: {e}", child.id()));
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin.write_all(b"go\n").expect("release the command");
    child
}

/// [`spawn_in_cgroup`], waiting for the command's output.
pub fn run_in_cgroup(rel: &str, uid: u32, gid: u32, cmd: &[&str]) -> Output {
    spawn_in_cgroup(rel, uid, gid, cmd)
        .wait_with_output()
        .expect("wait for command")
}

/// Runs `cmd` as `uid`:`gid`, a plain host process.
pub fn as_host_user(uid: u32, gid: u32, cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .uid(uid)
        .gid(gid)
        .output()
        .expect("spawn command")
}

/// The running daemon's map named `name` (a `governor_common::maps` constant): the newest
/// map of that name loaded in the kernel, as a hash map.
pub fn daemon_map<K: aya::Pod, V: aya::Pod>(
    name: &str,
) -> aya::maps::HashMap<aya::maps::MapData, K, V> {
    use aya::maps::{loaded_maps, HashMap, Map, MapData};
    let id = loaded_maps()
        .filter_map(Result::ok)
        .filter(|m| m.name_as_str() == Some(name))
        .map(|m| m.id())
        .max()
        .unwrap_or_else(|| panic!("no {name} map loaded: is the daemon running?"));
    let data = MapData::from_id(id).unwrap_or_else(|e| panic!("open {name} by id: {e}"));
    let map = Map::from_map_data(data).unwrap_or_else(|e| panic!("{name}'s map type: {e}"));
    HashMap::try_from(map).unwrap_or_else(|e| panic!("{name} is not a hash map: {e}"))
}

/// Mounts a new tmpfs named `source` on `at`, as a non-agent.
pub fn mount_tmpfs(source: &str, at: &Path) {
    let at = at.display().to_string();
    assert_ok(
        &as_host(&["mount", "-t", "tmpfs", source, &at]),
        &format!("mount a tmpfs on {at}"),
    );
}

/// Moves the mount on `from` to `to` (`mount --move`), as a non-agent.
pub fn move_mount(from: &Path, to: &Path) {
    let (from, to) = (from.display().to_string(), to.display().to_string());
    assert_ok(
        &as_host(&["mount", "--move", &from, &to]),
        &format!("move the mount on {from} to {to}"),
    );
}

/// Unmounts `at`, as a non-agent.
pub fn unmount(at: &Path) {
    let at = at.display().to_string();
    assert_ok(&as_host(&["umount", &at]), &format!("unmount {at}"));
}

/// Waits (up to 60 s) for `child` to create `ready`, the file it makes once it has done
/// what a test needs done before it goes on; fails if `child` exits first or never does.
pub fn wait_for_ready(child: &mut Child, ready: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            panic!("{what}: the process exited with {status} before it was ready: {stderr}");
        }
        assert!(Instant::now() < deadline, "{what}: not ready within 60 s");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that `out` failed with EPERM ("Operation not permitted"; mount(8) words it
/// "permission denied").
pub fn assert_eperm(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let eperm = stderr.contains("Operation not permitted")
        || (stderr.starts_with("mount:") && stderr.contains("permission denied"));
    assert!(
        !out.status.success() && eperm,
        "{what}: expected EPERM, got {} stdout={:?} stderr={stderr:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Asserts that `out` succeeded.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: expected success, got {} stderr={:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A policy with one agent (in cgroup `governor-test/<agent>`) and one protected path whose
/// `delete` class is denied.
pub fn policy(agent: &str, mode: &str, protected: &Path) -> String {
    policy_denying(agent, mode, protected, "delete")
}

/// Like [`policy`], denying the comma-separated quoted `classes` (e.g. `"modify"`), and
/// explicitly allowing every other class the built-in class table would deny by default
/// (README "Policies"), so the policy decides exactly the classes the test names.
pub fn policy_denying(agent: &str, mode: &str, protected: &Path, classes: &str) -> String {
    let denied: Vec<&str> = classes.split(',').map(str::trim).collect();
    let mut text = format!(
        r#"
[policy]
name = "test-{agent}"
owner = "kernel-tests@example.com"

[[agents]]
name = "{agent}"
cgroup = "governor-test/{agent}"
mode = "{mode}"

[[protect]]
path = "{}"
deny = [{}]
"#,
        protected.display(),
        denied
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let allow = allow_the_rest(&denied);
    if !allow.is_empty() {
        text.push_str(&format!("allow = [{allow}]\n"));
    }
    text
}

/// The classes of a `[[protect]]` entry that the built-in class table denies when the entry
/// does not name them (high-risk: irreversible or high blast radius).
pub const DENIED_BY_DEFAULT: &[&str] = &[
    "unlink",
    "rmdir",
    "rename",
    "truncate",
    "chattr",
    "utimes",
    "unix-connect",
];

/// `DENIED_BY_DEFAULT` minus the classes `denied` covers, quoted and comma-separated: the
/// `allow` list that keeps a test policy from denying more than it names.
pub fn allow_the_rest(denied: &[&str]) -> String {
    let covers = |name: &str, class: &str| match name {
        "delete" => matches!(class, "unlink" | "rmdir"),
        "modify" => class != "unix-connect",
        other => other == class,
    };
    DENIED_BY_DEFAULT
        .iter()
        .filter(|c| !denied.iter().any(|d| covers(d, c)))
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The network classes, as the daemon lists them (enforced by the cgroup sock_addr programs).
pub const NET_CLASS_NAMES: &str = "connect, bind, send";

/// Every other class, in class order, as the daemon lists them: what the BPF-LSM programs
/// enforce, and what a daemon without BPF-LSM says it does not.
pub fn lsm_class_names() -> String {
    use governor_common::Class;
    let names: Vec<&str> = Class::ALL
        .iter()
        .filter(|c| !matches!(c, Class::Connect | Class::Bind | Class::Send))
        .map(|c| c.name())
        .collect();
    names.join(", ")
}

/// Every class in class order, as a daemon in full mode lists what it enforces.
pub fn all_class_names() -> String {
    let names: Vec<&str> = governor_common::Class::ALL
        .iter()
        .map(|c| c.name())
        .collect();
    names.join(", ")
}
