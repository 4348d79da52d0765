//! Network classes (connect, bind, send) in the kernel: loads the cgroup sock_addr programs of
//! `governor-ebpf/src/net.rs`, fills their two LPM tries from the compiled policy and attaches
//! them to the agent cgroups.
//!
//! These programs are not BPF-LSM programs. They load on kernels that refuse BPF-LSM, which is
//! what lets the daemon enforce network classes in degraded mode (see `kernel::coverage`).
//!
//! Attachment: every program is attached with `BPF_F_ALLOW_MULTI` semantics (other tools'
//! cgroup programs keep running; see [`attach_mode`]) to each agent cgroup that has no agent
//! cgroup above it. The kernel
//! runs a cgroup's effective programs for sockets created in it or any cgroup below it, so
//! nested agent cgroups and unregistered sub-cgroups are covered by their top agent cgroup,
//! and every decision runs the program exactly once (attaching to nested agent cgroups too
//! would run it, and emit its event, once per level). Tasks outside agent subtrees never run
//! these programs. Each link is handed to the `Enforcer`, which pins it (`kernel::pin`) as
//! `net-<program>-cg<cgroup id>`; an unpinned link is detached when the `Enforcer` is dropped.

use std::{
    fs::File,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use aya::{
    maps::{lpm_trie::Key, LpmTrie},
    programs::{links::FdLink, CgroupAttachMode, CgroupSockAddr},
    util::KernelVersion,
    Ebpf,
};
use governor_common::net::{Ip4, Ip6, NetOffsets, NetRules, NET4, NET6};

use super::{btf::Btf, loader::Enforcer};
use crate::policy::net::CompiledNet;

/// The sock_addr programs; each is named after its attach point.
pub const NET_PROGRAMS: &[&str] = &[
    "connect4", "connect6", "sendmsg4", "sendmsg6", "bind4", "bind6",
];

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("eBPF object has no {what} `{name}` (build mismatch; rebuild governor)")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("the kernel refused cgroup sock_addr program `{program}`: {cause}")]
    Program {
        program: &'static str,
        cause: String,
    },
    #[error("attaching `{program}` to agent cgroup {cgroup}: {cause}")]
    Attach {
        program: &'static str,
        cgroup: PathBuf,
        cause: String,
    },
    #[error("opening agent cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel map `{map}`: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
}

/// Field offsets for the network programs from the running kernel's BTF. Never fails: without
/// them (`valid == 0`) the programs treat every stream connect as a possible TCP fast open.
pub fn offsets(btf: &Btf) -> NetOffsets {
    match super::offsets::field(btf, "tcp_sock", "fastopen_req", 8) {
        Ok(off) => NetOffsets {
            tcp_sock_fastopen_req: off,
            valid: 1,
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell TCP fast open from connect on this kernel; \
                rules that deny `send` will also stop TCP connects to their addresses");
            NetOffsets::default()
        }
    }
}

/// Loads (and so verifies) every network program; none is attached yet.
pub fn load(enforcer: &mut Enforcer) -> Result<(), NetError> {
    let ebpf = enforcer.ebpf_mut();
    for &name in NET_PROGRAMS {
        program(ebpf, name)?
            .load()
            .map_err(|source| NetError::Program {
                program: name,
                cause: super::loader::innermost_cause(&source).0,
            })?;
    }
    Ok(())
}

/// Writes the compiled network rules into the two tries.
pub fn install(enforcer: &mut Enforcer, net: &CompiledNet) -> Result<(), NetError> {
    let ebpf = enforcer.ebpf_mut();
    {
        let mut v4: LpmTrie<_, Ip4, NetRules> = trie(ebpf, NET4)?;
        for e in &net.v4 {
            v4.insert(&Key::new(e.prefix_len, e.addr), e.value, 0)
                .map_err(|source| NetError::Map { map: NET4, source })?;
        }
    }
    let mut v6: LpmTrie<_, Ip6, NetRules> = trie(ebpf, NET6)?;
    for e in &net.v6 {
        v6.insert(&Key::new(e.prefix_len, e.addr), e.value, 0)
            .map_err(|source| NetError::Map { map: NET6, source })?;
    }
    Ok(())
}

/// Attaches every network program to each cgroup directory in `cgroups` (absolute paths,
/// from [`attach_points`]); enforcement of network classes starts here. The links go to the
/// `Enforcer`, to be pinned.
pub fn attach(enforcer: &mut Enforcer, cgroups: &[PathBuf]) -> Result<(), NetError> {
    for dir in cgroups {
        let cgroup_err = |source| NetError::Cgroup {
            path: dir.clone(),
            source,
        };
        let fd = File::open(dir).map_err(cgroup_err)?;
        // The cgroup v2 id is the inode number of its directory.
        let cgroup_id = fd.metadata().map_err(cgroup_err)?.ino();
        for &name in NET_PROGRAMS {
            let attach_err = |cause: String| NetError::Attach {
                program: name,
                cgroup: dir.clone(),
                cause,
            };
            let prog = program(enforcer.ebpf_mut(), name)?;
            let id = prog
                .attach(&fd, attach_mode())
                .map_err(|e| attach_err(super::loader::innermost_cause(&e).0))?;
            let link = prog
                .take_link(id)
                .map_err(|e| attach_err(super::loader::innermost_cause(&e).0))?;
            let link = FdLink::try_from(link).map_err(|e| {
                attach_err(format!(
                    "{e}: the kernel attached it without a BPF link, which cannot be pinned"
                ))
            })?;
            enforcer.keep_link(format!("net-{name}-cg{cgroup_id}"), link);
        }
    }
    Ok(())
}

/// The mode to pass to aya so that the attachment coexists with other programs on the same
/// cgroup. On kernels from 5.7 (all governor runs on: it needs BPF ring buffers, 5.8), aya
/// attaches through a BPF link; the kernel gives every cgroup link `BPF_F_ALLOW_MULTI`
/// semantics itself and rejects `BPF_LINK_CREATE` with that flag (EINVAL), so no flag must be
/// passed. Older kernels attach with `BPF_PROG_ATTACH`, which needs the flag.
fn attach_mode() -> CgroupAttachMode {
    let link = KernelVersion::current().map_or(true, |v| v >= KernelVersion::new(5, 7, 0));
    if link {
        CgroupAttachMode::Single
    } else {
        CgroupAttachMode::AllowMultiple
    }
}

/// The agent cgroups to attach to: those with no other agent cgroup above them (the kernel
/// runs their programs for everything below). Relative paths in, deduplicated, in order.
pub fn attach_points(agent_cgroups: &[&Path]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for (i, c) in agent_cgroups.iter().enumerate() {
        let covered = agent_cgroups
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && c.starts_with(other) && (c != other || j < i));
        if !covered {
            out.push(c.to_path_buf());
        }
    }
    out
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut CgroupSockAddr, NetError> {
    let prog = ebpf.program_mut(name).ok_or(NetError::Missing {
        what: "program",
        name,
    })?;
    prog.try_into().map_err(|source| NetError::Program {
        program: name,
        cause: super::loader::innermost_cause(&source).0,
    })
}

fn trie<'a, K: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<LpmTrie<&'a mut aya::maps::MapData, K, NetRules>, NetError> {
    let map = ebpf
        .map_mut(name)
        .ok_or(NetError::Missing { what: "map", name })?;
    LpmTrie::try_from(map).map_err(|source| NetError::Map { map: name, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_points_are_the_top_agent_cgroups() {
        let cgs = [
            Path::new("agents/a"),
            Path::new("agents/a/sub"),
            Path::new("agents/ab"),
            Path::new("other"),
            Path::new("agents/a"),
        ];
        assert_eq!(
            attach_points(&cgs),
            vec![
                PathBuf::from("agents/a"),
                PathBuf::from("agents/ab"),
                PathBuf::from("other")
            ]
        );
        let nested_first = [Path::new("x/y/z"), Path::new("x")];
        assert_eq!(attach_points(&nested_first), vec![PathBuf::from("x")]);
    }
}
