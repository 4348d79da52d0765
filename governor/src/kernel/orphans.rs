//! Orphaned generations: governor programs still attached in the kernel that no pin this
//! daemon can see holds. That happens when the bpf filesystem holding a generation's pins was
//! unmounted (lazily: `umount -l`) while something kept it alive, an open descriptor or a
//! working directory in it, or a mount namespace that still has it: the pins vanish from
//! view, the links stay attached as long as that holder lives. A daemon starting on a fresh
//! pin directory would then enforce alongside a generation nobody reads or can retire.
//!
//! A starting daemon therefore looks for them once its own generation is attached
//! ([`find`]): every BPF link whose program carries one of governor's program names and uses
//! a map named `GOV_AGENTS` is governor's; it is an orphan unless a bpf filesystem mounted
//! here pins it or a live process holds it open (a daemon between attaching and pinning).
//! Links are grouped into generations by their `GOV_AGENTS` map; each generation's rings and
//! counters are found among its programs' maps, so the daemon drains them like a pinned
//! generation's (`kernel::inherit`). Then [`retire`] removes them:
//! 1. `BPF_LINK_DETACH` on each (network links; the kernel does not detach BPF-LSM and
//!    tracepoint links that way);
//! 2. for the others, the pins are reached through whatever holds the unmounted filesystem
//!    (`/proc/<pid>/fd/<n>`, `/proc/<pid>/cwd`, a bpf mount of another mount namespace under
//!    `/proc/<pid>/root`) and the orphan generation's directory is removed, which detaches
//!    its links when their last pin goes;
//! 3. whatever is still attached after that is neutralized: its agent map is emptied, so its
//!    programs see no agent and decide nothing (the new generation enforces), and it is
//!    reported by link id.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::{fs::MetadataExt, io::AsRawFd},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{
    maps::{HashMap, Map, MapData, MapInfo},
    programs::ProgramInfo,
};
use governor_common::{maps, programs::LSM_HOOKS, AgentInfo};

use super::{
    loader::{CGROUP_TRACEPOINTS, PROC_TRACEPOINTS},
    net::NET_PROGRAMS,
    pin,
};

/// How long removed links may take to leave the kernel.
const DETACH_WAIT: Duration = Duration::from_secs(10);
/// The kernel keeps this many bytes of a program's or map's name.
const NAME_LEN: usize = 15;

/// One orphaned generation.
#[derive(Debug, Clone, Default)]
pub struct Orphan {
    /// Its `GOV_AGENTS` map (what groups its links).
    pub agents: u32,
    /// Its `GOV_EVENTS`, `GOV_COUNTERS` and `GOV_PROCS` maps, if its programs use them.
    pub events: Option<u32>,
    pub counters: Option<u32>,
    pub procs: Option<u32>,
    /// Its links, with their programs' names.
    pub links: BTreeMap<u32, String>,
}

/// What [`retire`] did.
#[derive(Debug, Default)]
pub struct Retired {
    /// Links detached with `BPF_LINK_DETACH`.
    pub detached: Vec<u32>,
    /// Pin directories removed through a holder of their unmounted filesystem.
    pub unpinned: Vec<PathBuf>,
    /// Links still attached afterwards (their generations' agent maps emptied).
    pub remaining: Vec<u32>,
    /// Who holds the unmounted filesystems, in words.
    pub holders: Vec<String>,
}

fn short(name: &str) -> &str {
    &name[..name.len().min(NAME_LEN)]
}

fn governor_program(name: &str) -> bool {
    LSM_HOOKS
        .iter()
        .chain(CGROUP_TRACEPOINTS)
        .chain(PROC_TRACEPOINTS)
        .chain(NET_PROGRAMS)
        .any(|p| short(p) == name)
}

/// Every governor generation attached in the kernel that is neither pinned in a bpf
/// filesystem mounted here nor held open by a live process.
pub fn find() -> Vec<Orphan> {
    // Links first, then who holds them: a link attached after the snapshot is not looked at,
    // and one in it is, when looked for, either still held by its daemon's descriptor or
    // already pinned (a daemon pins before it closes its descriptors).
    let links: Vec<_> = aya::programs::loaded_links()
        .filter_map(Result::ok)
        .collect();
    let visible = visible_links();
    let programs: BTreeMap<u32, ProgramInfo> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| (p.id(), p))
        .collect();
    let mut by_agents: BTreeMap<u32, Orphan> = BTreeMap::new();
    let mut map_names: BTreeMap<u32, String> = BTreeMap::new();
    let mut name_of = |id: u32| -> String {
        map_names
            .entry(id)
            .or_insert_with(|| {
                MapInfo::from_id(id)
                    .ok()
                    .and_then(|m| m.name_as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .clone()
    };
    for link in links {
        if visible.contains(&link.id()) {
            continue;
        }
        let Some(prog) = programs.get(&link.program_id()) else {
            continue;
        };
        let Some(name) = prog.name_as_str().filter(|n| governor_program(n)) else {
            continue;
        };
        let ids = prog.map_ids().ok().flatten().unwrap_or_default();
        let named: Vec<(u32, String)> = ids.iter().map(|&id| (id, name_of(id))).collect();
        let find = |want: &str| named.iter().find(|(_, n)| n == want).map(|(id, _)| *id);
        let Some(agents) = find(maps::AGENTS) else {
            continue;
        };
        let o = by_agents.entry(agents).or_insert_with(|| Orphan {
            agents,
            ..Orphan::default()
        });
        o.events = o.events.or(find(maps::EVENTS));
        o.counters = o.counters.or(find(maps::COUNTERS));
        o.procs = o.procs.or(find(maps::PROCS));
        o.links.insert(link.id(), name.to_owned());
    }
    by_agents.into_values().collect()
}

/// Links pinned in the bpf filesystems mounted in this mount namespace, and links live
/// processes hold open.
fn visible_links() -> BTreeSet<u32> {
    let mut links = BTreeSet::new();
    for_each_fd(|_, fd_path, fdinfo| {
        if std::fs::read_link(fd_path).is_ok_and(|t| t.as_os_str() == "anon_inode:bpf-link") {
            if let Some(id) = std::fs::read_to_string(fdinfo)
                .ok()
                .and_then(|t| field(&t, "link_id:"))
            {
                links.insert(id);
            }
        }
    });
    for mount in bpf_mounts(Path::new("/proc/self/mountinfo")) {
        links.extend(pin::pinned_links(&mount));
    }
    links
}

/// The value after `key` in `/proc/<pid>/fdinfo` text.
fn field(text: &str, key: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

/// Mount points of bpf filesystems in a `mountinfo` file.
fn bpf_mounts(mountinfo: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(mountinfo).unwrap_or_default();
    parse_bpf_mounts(&text)
}

/// Mount points of bpf filesystems in `mountinfo` text (`id parent dev root mountpoint
/// options ... - fstype source superoptions`; octal escapes in the mount point).
pub fn parse_bpf_mounts(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "bpf")
                .then(|| left.split_whitespace().nth(4).map(unescape))
                .flatten()
        })
        .collect()
}

fn unescape(s: &str) -> PathBuf {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out),
    ))
}

/// Calls `f(pid, /proc/<pid>/fd/<n>, /proc/<pid>/fdinfo/<n>)` for every open descriptor of
/// every process.
fn for_each_fd(mut f: impl FnMut(u32, &Path, &Path)) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let info = PathBuf::from(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ));
            f(pid, &fd.path(), &info);
        }
    }
}

/// Removes `orphans` from the kernel (see the module doc).
pub fn retire(orphans: &[Orphan]) -> Retired {
    let mut done = Retired::default();
    let mut left: BTreeSet<u32> = BTreeSet::new();
    let all: BTreeSet<u32> = orphans
        .iter()
        .flat_map(|o| o.links.keys().copied())
        .collect();
    for &id in &all {
        match link_detach(id) {
            Ok(()) => done.detached.push(id),
            Err(_) => {
                left.insert(id);
            }
        }
    }
    // Detached or not, their pins keep the links, programs and maps in the kernel: remove
    // them wherever they can be reached.
    if !all.is_empty() {
        for (root, holder) in unmounted_bpffs() {
            done.holders.push(holder);
            done.unpinned.extend(unpin(&root, &all));
        }
    }
    let deadline = Instant::now() + DETACH_WAIT;
    loop {
        let attached: BTreeSet<u32> = aya::programs::loaded_links()
            .filter_map(Result::ok)
            .map(|l| l.id())
            .filter(|id| left.contains(id))
            .collect();
        if attached.is_empty() || Instant::now() > deadline {
            done.remaining = attached.into_iter().collect();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for o in orphans {
        if o.links.keys().any(|id| done.remaining.contains(id)) {
            if let Err(e) = empty_agents(o.agents) {
                tracing::error!(agents_map = o.agents, error = %e,
                    "an orphaned generation could not be neutralized: its agent map cannot be \
                     emptied");
            }
        }
    }
    done
}

/// `BPF_LINK_DETACH` of link `id` (through `BPF_LINK_GET_FD_BY_ID`).
fn link_detach(id: u32) -> std::io::Result<()> {
    const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
    const BPF_LINK_DETACH: libc::c_long = 34;
    #[repr(C)]
    struct GetFd {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let attr = GetFd {
        id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: bpf(BPF_LINK_GET_FD_BY_ID) reads `attr`, which outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_GET_FD_BY_ID,
            &attr as *const GetFd,
            std::mem::size_of::<GetFd>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; `OwnedFd` closes it.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    #[repr(C)]
    struct Detach {
        link_fd: u32,
    }
    let attr = Detach {
        link_fd: fd.as_raw_fd() as u32,
    };
    // SAFETY: bpf(BPF_LINK_DETACH) reads `attr`; the fd stays open until `fd` drops.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_DETACH,
            &attr as *const Detach,
            std::mem::size_of::<Detach>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The root of every bpf filesystem some process reaches (an open descriptor, its working
/// directory, or a bpf mount of another mount namespace) but which is not mounted in ours,
/// as a path through `/proc`, with who reaches it.
fn unmounted_bpffs() -> Vec<(PathBuf, String)> {
    let ours: BTreeSet<u64> = bpf_mounts(Path::new("/proc/self/mountinfo"))
        .iter()
        .filter_map(|m| std::fs::metadata(m).ok().map(|m| m.dev()))
        .collect();
    let mut found: BTreeMap<u64, (PathBuf, String)> = BTreeMap::new();
    let mut consider = |path: PathBuf, who: String| {
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        if !meta.is_dir() || ours.contains(&meta.dev()) || found.contains_key(&meta.dev()) {
            return;
        }
        if pin::fs_type(&path).ok() != Some(pin::BPF_FS_MAGIC) {
            return;
        }
        found.insert(meta.dev(), (climb(&path), who));
    };
    for_each_fd(|pid, fd, _| consider(fd.to_path_buf(), describe(pid, "an open descriptor")));
    let own_ns = std::fs::read_link("/proc/self/ns/mnt").ok();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            consider(
                PathBuf::from(format!("/proc/{pid}/cwd")),
                describe(pid, "its working directory"),
            );
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            if ns.is_some() && ns != own_ns {
                for m in bpf_mounts(&PathBuf::from(format!("/proc/{pid}/mountinfo"))) {
                    let rel = m.strip_prefix("/").unwrap_or(&m);
                    consider(
                        PathBuf::from(format!("/proc/{pid}/root")).join(rel),
                        describe(pid, "a mount in its mount namespace"),
                    );
                }
            }
        }
    }
    found.into_values().collect()
}

fn describe(pid: u32, how: &str) -> String {
    format!("{} ({how})", super::pin_lock::describe_pid(i64::from(pid)))
}

/// The root of the filesystem `dir` is on, as `dir/../..`: `..` stops at a mount's root.
fn climb(dir: &Path) -> PathBuf {
    let mut at = dir.to_path_buf();
    for _ in 0..64 {
        let up = at.join("..");
        let (Ok(here), Ok(there)) = (std::fs::metadata(&at), std::fs::metadata(&up)) else {
            break;
        };
        if here.dev() != there.dev() || here.ino() == there.ino() {
            break;
        }
        at = up;
    }
    at
}

/// Removes, below `root`, each generation directory whose every pinned link is one of
/// `orphans` (its programs and maps go with it), and any other pin of an orphan link.
/// Returns what it removed.
fn unpin(root: &Path, orphans: &BTreeSet<u32>) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let mut generations: BTreeMap<PathBuf, (usize, usize)> = BTreeMap::new();
    let mut pins: Vec<(PathBuf, u32)> = Vec::new();
    pin::walk_link_pins(root, 8, &mut |path, id| pins.push((path.to_path_buf(), id)));
    for (path, id) in &pins {
        // `<generation>/links/<name>`
        if let Some(generation) = path.parent().and_then(Path::parent) {
            let e = generations.entry(generation.to_path_buf()).or_default();
            e.0 += 1;
            e.1 += usize::from(orphans.contains(id));
        }
    }
    for (generation, (all, orphaned)) in &generations {
        if *orphaned > 0 && all == orphaned && std::fs::remove_dir_all(generation).is_ok() {
            removed.push(generation.clone());
        }
    }
    for (path, id) in pins {
        if orphans.contains(&id) && path.exists() && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Empties map `id` (a generation's `GOV_AGENTS`): its programs then see no agent.
fn empty_agents(id: u32) -> Result<usize, aya::maps::MapError> {
    let map = Map::HashMap(MapData::from_id(id)?);
    let mut agents: HashMap<MapData, u64, AgentInfo> = HashMap::try_from(map)?;
    let keys: Vec<u64> = agents.keys().filter_map(Result::ok).collect();
    for k in &keys {
        let _ = agents.remove(k);
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_mounts_are_read_from_mountinfo() {
        let text = "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n\
                    35 22 0:30 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:9 - bpf bpf rw,mode=700\n\
                    36 22 0:31 / /mnt/with\\040space rw - bpf none rw\n";
        assert_eq!(
            parse_bpf_mounts(text),
            [
                PathBuf::from("/sys/fs/bpf"),
                PathBuf::from("/mnt/with space")
            ]
        );
    }

    #[test]
    fn governor_programs_are_known_by_their_kernel_names() {
        // The kernel keeps 15 bytes of a name.
        assert!(governor_program("bprm_creds_from"));
        assert!(governor_program("path_unlink"));
        assert!(governor_program("connect4"));
        assert!(governor_program("sched_process_e"));
        assert!(!governor_program("something_else"));
    }

    #[test]
    fn fdinfo_fields_are_read() {
        let text = "pos:\t0\nflags:\t02000002\nlink_type:\ttracing\nlink_id:\t42\nprog_id:\t7\n";
        assert_eq!(field(text, "link_id:"), Some(42));
        assert_eq!(field(text, "map_id:"), None);
    }
}
