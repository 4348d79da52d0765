//! The host around a test: commands run as a plain process or moved into an agent's cgroup,
//! kernel modules, mounts, the daemon's maps, ready signals from helper processes, and the
//! two outcomes every test asserts (EPERM, success).

use std::{
    io::Write,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

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
