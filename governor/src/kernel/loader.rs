//! Loads governor's eBPF object, fills its maps from a compiled policy and attaches the
//! BPF-LSM programs. One [`Enforcer`] owns the `Ebpf` object; dropping it detaches everything.

use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::Lsm,
    Ebpf, EbpfLoader,
};
use governor_common::{
    maps::{self, Counter},
    net::NetOffsets,
    AgentInfo, InodeKey, KernelOffsets, ProtectedRule,
};

use crate::policy::Compiled;

/// The eBPF object built by build.rs from governor-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/governor"));

/// BPF-LSM programs; each program is named after the hook it attaches to.
pub const LSM_PROGRAMS: &[&str] = &[
    "path_unlink",
    "path_rmdir",
    "path_rename",
    "path_truncate",
    "file_truncate",
    "file_open",
    "file_permission",
    "path_chmod",
    "path_chown",
    "path_link",
    "inode_setxattr",
    "inode_removexattr",
    "inode_set_acl",
    "inode_remove_acl",
    "path_mknod",
    "path_mkdir",
    "path_symlink",
    "inode_create",
    "sb_mount",
    "move_mount",
    // governor-ebpf/src/task.rs: exec, setid, signal, ptrace
    "bprm_check_security",
    "mmap_file",
    "file_mprotect",
    "bprm_creds_from_file",
    "task_fix_setuid",
    "task_fix_setgid",
    "task_fix_setgroups",
    "task_kill",
    "file_fcntl",
    "file_ioctl",
    "file_ioctl_compat",
    "ptrace_access_check",
    // governor-ebpf/src/host.rs: bpf, kernel modules
    "bpf",
    "kernel_module_request",
    "kernel_read_file",
    "kernel_load_data",
    // governor-ebpf/src/ipc.rs: unix-connect
    "unix_stream_connect",
    "unix_may_send",
];

/// Hooks that older kernels lack, and what covers the same operations there.
const OPTIONAL_HOOKS: &[(&str, &str)] = &[
    (
        "file_truncate",
        "ftruncate(2) goes through path_truncate before 6.2",
    ),
    (
        "inode_set_acl",
        "ACLs are set through inode_setxattr before 6.2",
    ),
    (
        "inode_remove_acl",
        "ACLs are removed through inode_removexattr before 6.2",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading kernel BTF for program load: {0}")]
    Btf(#[from] aya::BtfError),
    #[error("loading the eBPF object: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("eBPF object has no {what} `{name}` (build mismatch; rebuild governor)")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("the kernel refused BPF-LSM program `{program}`: {cause}{hint}")]
    Program {
        program: &'static str,
        cause: String,
        hint: &'static str,
    },
    #[error("kernel map `{map}`: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
}

const EPERM_HINT: &str = ". The kernel lists `bpf` among its LSMs but does not let this \
process load or attach LSM programs (a sandboxed or locked-down kernel, or missing \
CAP_BPF/CAP_MAC_ADMIN); governor cannot enforce the classes that need BPF-LSM here";

/// The loaded, attached kernel side.
pub struct Enforcer {
    ebpf: Ebpf,
    /// Programs loaded and verified on this kernel.
    loaded: Vec<&'static str>,
    /// Optional hooks this kernel lacks, with what covers them instead.
    pub absent: Vec<(&'static str, &'static str)>,
    btf: aya::Btf,
}

impl Enforcer {
    /// Loads the object and creates its maps, with `offsets` and `net` set as its read-only
    /// globals. No program is in the kernel yet: each hook family loads its own, so that one
    /// the kernel refuses (BPF-LSM) does not take the others (network) down with it.
    pub fn open(offsets: &KernelOffsets, net: &NetOffsets) -> Result<Enforcer, LoadError> {
        let btf = aya::Btf::from_sys_fs()?;
        let ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global(maps::OFFSETS_GLOBAL, offsets, true)
            .override_global(governor_common::net::NET_OFFSETS_GLOBAL, net, true)
            .load(OBJECT)?;
        Ok(Enforcer {
            ebpf,
            btf,
            loaded: Vec::new(),
            absent: Vec::new(),
        })
    }

    /// Loads (and so verifies) every BPF-LSM program whose hook this kernel has; none is
    /// attached yet. Optional hooks the kernel lacks are recorded in `absent`.
    pub fn load_lsm(&mut self) -> Result<(), LoadError> {
        for &name in LSM_PROGRAMS {
            let hook_exists = self
                .btf
                .id_by_type_name_kind(&format!("bpf_lsm_{name}"), aya_obj::btf::BtfKind::Func)
                .is_ok();
            if !hook_exists {
                if let Some(&(_, covered)) = OPTIONAL_HOOKS.iter().find(|(h, _)| *h == name) {
                    self.absent.push((name, covered));
                    continue;
                }
            }
            let prog: &mut Lsm = program(&mut self.ebpf, name)?;
            prog.load(name, &self.btf)
                .map_err(|source| program_error(name, source))?;
            self.loaded.push(name);
        }
        Ok(())
    }

    /// Attaches every LSM program; enforcement starts here.
    pub fn attach(&mut self) -> Result<(), LoadError> {
        for &name in &self.loaded {
            let prog: &mut Lsm = program(&mut self.ebpf, name)?;
            prog.attach()
                .map_err(|source| program_error(name, source))?;
        }
        Ok(())
    }

    /// The object, for the network hook family (`kernel::net`), which loads, fills and
    /// attaches its own programs and maps in it.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Writes the compiled policy into the kernel maps.
    pub fn install(&mut self, compiled: &Compiled) -> Result<(), LoadError> {
        {
            let mut agents: HashMap<_, u64, AgentInfo> = self.map(maps::AGENTS)?;
            for a in &compiled.agents {
                agents
                    .insert(a.cgroup_id, a.info, 0)
                    .map_err(|source| map_error(maps::AGENTS, source))?;
            }
        }
        {
            let mut protected: HashMap<_, InodeKey, ProtectedRule> = self.map(maps::PROTECTED)?;
            for p in &compiled.protected {
                protected
                    .insert(p.key, p.rule, 0)
                    .map_err(|source| map_error(maps::PROTECTED, source))?;
            }
        }
        {
            let mut ancestors: HashMap<_, InodeKey, u32> = self.map(maps::ANCESTORS)?;
            for (key, rule_id) in &compiled.ancestors {
                ancestors
                    .insert(key, rule_id, 0)
                    .map_err(|source| map_error(maps::ANCESTORS, source))?;
            }
        }
        let mut binaries: HashMap<_, InodeKey, ProtectedRule> = self.map(maps::BINARIES)?;
        for b in &compiled.binaries {
            binaries
                .insert(b.key, b.rule, 0)
                .map_err(|source| map_error(maps::BINARIES, source))?;
        }
        Ok(())
    }

    /// Takes the event ring buffer out, for the reader task to own.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self.ebpf.take_map(maps::EVENTS).ok_or(LoadError::Missing {
            what: "map",
            name: maps::EVENTS,
        })?;
        RingBuf::try_from(map).map_err(|source| map_error(maps::EVENTS, source))
    }

    /// Sum over CPUs of one kernel counter.
    pub fn counter(&mut self, counter: Counter) -> Result<u64, LoadError> {
        let counters: PerCpuArray<_, u64> = self.map(maps::COUNTERS)?;
        let values = counters
            .get(&(counter as u32), 0)
            .map_err(|source| map_error(maps::COUNTERS, source))?;
        Ok(values.iter().sum())
    }

    fn map<'a, M>(&'a mut self, name: &'static str) -> Result<M, LoadError>
    where
        M: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(LoadError::Missing { what: "map", name })?;
        M::try_from(map).map_err(|source| map_error(name, source))
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Lsm, LoadError> {
    let prog = ebpf.program_mut(name).ok_or(LoadError::Missing {
        what: "program",
        name,
    })?;
    prog.try_into()
        .map_err(|source| program_error(name, source))
}

/// Describes a program load/attach failure by its innermost cause (aya repeats the outer
/// message in the chain), with a hint for EPERM.
fn program_error(program: &'static str, err: aya::programs::ProgramError) -> LoadError {
    let (cause, eperm) = innermost_cause(&err);
    LoadError::Program {
        program,
        cause,
        hint: if eperm { EPERM_HINT } else { "" },
    }
}

/// The innermost cause of a program error (aya repeats the outer message in the chain), and
/// whether it is EPERM.
pub fn innermost_cause(err: &aya::programs::ProgramError) -> (String, bool) {
    let mut eperm = false;
    let mut cause = err.to_string();
    let mut next: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = next {
        if let Some(sys) = e.downcast_ref::<aya::sys::SyscallError>() {
            eperm = sys.io_error.raw_os_error() == Some(libc::EPERM);
            cause = format!("{}() failed: {}", sys.call, sys.io_error);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            eperm |= io.raw_os_error() == Some(libc::EPERM);
            let io = io.to_string();
            if !cause.contains(&io) {
                cause = format!("{cause}: {io}");
            }
        }
        next = e.source();
    }
    (cause, eperm)
}

fn map_error(map: &'static str, source: aya::maps::MapError) -> LoadError {
    LoadError::Map { map, source }
}
