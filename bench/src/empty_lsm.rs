//! Empty BPF-LSM programs, loaded with raw bpf(2) calls: the least any BPF-LSM program can
//! cost a task. Each is two instructions (`r0 = verdict; exit`), so a run is the kernel's
//! own entry and exit around it: the hook's static call, the BPF trampoline saving the
//! arguments, `__bpf_prog_enter`/`__bpf_prog_exit` (RCU read lock, migration, recursion
//! check) and, for `BPF_LSM_CGROUP`, the shim that finds the current task's cgroup and its
//! programs. `lsm_floor.rs` attaches them where governor attaches its own.
//!
//! Offsets are those of the kernel UAPI (`linux/bpf.h`), which only ever appends fields.

use std::{
    ffi::CString,
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use anyhow::{bail, Context, Result};
use aya_obj::btf::{Btf, BtfKind};

use crate::sys::{self, BPF_PROG_TYPE_LSM};

const BPF_PROG_LOAD: i64 = 5;
const BPF_LINK_CREATE: i64 = 28;
const BPF_LSM_MAC: u32 = 27;
const BPF_LSM_CGROUP: u32 = 43;

/// `union bpf_attr`, as bytes (the kernel accepts a shorter, zero-padded one).
type Attr = [u8; 128];

fn put_u32(attr: &mut Attr, at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(attr: &mut Attr, at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// A bpf(2) command that returns a new descriptor.
fn bpf_fd(cmd: i64, attr: &mut Attr) -> io::Result<OwnedFd> {
    let fd = sys::bpf(cmd, attr)?;
    // SAFETY: on success PROG_LOAD and LINK_CREATE return a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Where the programs attach.
#[derive(Debug, Clone, Copy)]
pub enum Attach<'a> {
    /// To the hook itself (`BPF_LSM_MAC`): every task runs the program.
    Global,
    /// To one cgroup (`BPF_LSM_CGROUP`, Linux 6.0+): only tasks in its subtree run the
    /// program, but every task runs the shim that finds out.
    Cgroup(&'a Path),
}

/// Attached empty programs; dropping this detaches them (the links' and programs' last
/// descriptors close, links first: fields drop in declaration order).
pub struct Attached {
    links: Vec<OwnedFd>,
    progs: Vec<OwnedFd>,
}

/// The kernel's BTF, read once for every attach.
pub struct Kernel {
    btf: Btf,
}

impl Kernel {
    pub fn load() -> Result<Kernel> {
        Ok(Kernel {
            btf: Btf::from_sys_fs().context("reading /sys/kernel/btf/vmlinux")?,
        })
    }

    /// Whether this kernel has BPF-LSM hook `hook`.
    pub fn has_hook(&self, hook: &str) -> bool {
        self.hook_id(hook).is_some()
    }

    fn hook_id(&self, hook: &str) -> Option<u32> {
        self.btf
            .id_by_type_name_kind(&format!("bpf_lsm_{hook}"), BtfKind::Func)
            .ok()
    }

    /// Loads and attaches one empty program per hook in `hooks`, each allowing what it sees.
    pub fn attach(&self, hooks: &[&str], how: Attach) -> Result<Attached> {
        let cgroup = match how {
            Attach::Global => None,
            Attach::Cgroup(dir) => {
                Some(File::open(dir).with_context(|| format!("opening cgroup {}", dir.display()))?)
            }
        };
        let mut out = Attached {
            links: Vec::new(),
            progs: Vec::new(),
        };
        for &hook in hooks {
            let Some(btf_id) = self.hook_id(hook) else {
                bail!("this kernel has no BPF-LSM hook {hook} (no bpf_lsm_{hook} in its BTF)");
            };
            let (attach_type, target_fd) = match &cgroup {
                None => (BPF_LSM_MAC, 0),
                Some(f) => (BPF_LSM_CGROUP, f.as_raw_fd() as u32),
            };
            let prog = load(hook, btf_id, attach_type)?;
            let mut attr: Attr = [0; 128];
            put_u32(&mut attr, 0, prog.as_raw_fd() as u32); // prog_fd
            put_u32(&mut attr, 4, target_fd); // target_fd
            put_u32(&mut attr, 8, attach_type); // attach_type
            let link = bpf_fd(BPF_LINK_CREATE, &mut attr)
                .with_context(|| format!("attaching an empty program to {hook} ({how:?})"))?;
            out.progs.push(prog);
            out.links.push(link);
        }
        Ok(out)
    }
}

/// `BPF_PROG_LOAD` of `r0 = verdict; exit` for `hook`: 0 (no objection) for `BPF_LSM_MAC`,
/// 1 (allow) for `BPF_LSM_CGROUP`, whose programs answer 0 or 1.
fn load(hook: &str, btf_id: u32, attach_type: u32) -> Result<OwnedFd> {
    let verdict: i32 = if attach_type == BPF_LSM_CGROUP { 1 } else { 0 };
    // struct bpf_insn: code, dst_reg:4|src_reg:4, off (i16), imm (i32).
    let mut insns = [0u8; 16];
    insns[0] = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K, dst r0
    insns[4..8].copy_from_slice(&verdict.to_ne_bytes());
    insns[8] = 0x95; // BPF_JMP | BPF_EXIT
    let license = CString::new("GPL").expect("no NUL in a literal");
    let mut name = [0u8; 16];
    let short = format!("empty_{hook}");
    let n = short.len().min(15);
    name[..n].copy_from_slice(&short.as_bytes()[..n]);
    let mut attr: Attr = [0; 128];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_LSM); // prog_type
    put_u32(&mut attr, 4, 2); // insn_cnt
    put_u64(&mut attr, 8, insns.as_ptr() as u64); // insns
    put_u64(&mut attr, 16, license.as_ptr() as u64); // license
    attr[48..64].copy_from_slice(&name); // prog_name
    put_u32(&mut attr, 68, attach_type); // expected_attach_type
    put_u32(&mut attr, 108, btf_id); // attach_btf_id (in vmlinux: attach_btf_obj_fd 0)
    bpf_fd(BPF_PROG_LOAD, &mut attr)
        .with_context(|| format!("loading an empty BPF-LSM program for {hook}"))
}
