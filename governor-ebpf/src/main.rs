//! governor's kernel programs: this crate owns everything that runs in the kernel — every
//! BPF-LSM program, the cgroup `sock_addr` programs, the raw tracepoints, and the maps they
//! share with the daemon — and nothing else. It is built for the BPF target by
//! `governor/build.rs` and loaded by `governor/src/kernel/loader.rs`. Layouts, map names,
//! classes and the decision rule shared with userspace live in `governor-common`; the list of
//! programs the object must hold is `governor_common::programs`.
//!
//! Each hook family holds its thin entry points (with the kernel prototype quoted above them)
//! and the logic they call:
//! - files: `file` (BPF-LSM file classes), `names` (rename and link), `stacked` (inode
//!   hooks: stacked filesystems), `mapping` (executable and shared writable mappings), `attr`
//!   (inode flags), `kfs` (kernel filesystems: cgroup files, tunables, `/proc/PID`), `mount`
//!   (the mount tree);
//! - tasks: `exec_setid` (exec of listed binaries and nameless files, uid/gid/capability
//!   transitions), `outside` (signals, ptrace and task control aimed outside the agent);
//! - host and IPC: `host` (bpf, modules, kexec, clock, raw sockets, terminal input), `ioctl`
//!   (the one ioctl hook, dispatching to file owners, terminals and inode flags), `ipc` (unix
//!   sockets, descriptors passed, locks);
//! - network: `net` (cgroup sock_addr programs, independent of BPF-LSM);
//! - agents' cgroups and processes: `cgroup` (tracepoints registering an agent cgroup's
//!   descendants, and the cgroup-escape/control hook), `proc_events` (fork/exec/exit
//!   tracepoints recording agent processes for the lineage).
//!
//! What every family shares: `agent` (is the current task an agent; the one refusal builder,
//! `agent::settle`), `lease` (the policy's verdict and the one lease lift), `walk` (the walk
//! up the tree that decides a file class) with its caches `dir_cache`, `write_cache`, `note`
//! and `linked`, `emit` (the one event emission per program) and `path` (paths for events),
//! `read_task` and `read_vfs` (kernel reads at BTF-resolved offsets), and `maps`.
#![no_std]
#![no_main]

mod agent;
mod attr;
mod cgroup;
mod dir_cache;
mod emit;
mod exec_setid;
mod file;
mod host;
mod ioctl;
mod ipc;
mod kfs;
mod lease;
mod linked;
mod mapping;
mod maps;
mod mount;
mod names;
mod net;
mod note;
mod outside;
mod path;
mod proc_events;
mod read_task;
mod read_vfs;
mod stacked;
mod walk;
mod write_cache;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
