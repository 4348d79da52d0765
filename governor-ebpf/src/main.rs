//! governor's kernel programs.
//!
//! One module per hook family; each holds its thin entry points (with the kernel prototype
//! quoted above them) and the logic they call: `file` (BPF-LSM file classes), `task`
//! (process classes), `host` (host-wide classes), `ipc` (unix socket connects), `net` (cgroup
//! sock_addr programs, independent of BPF-LSM), `cgroup` (agent cgroup subtrees: tracepoints
//! registering descendants, and the cgroup-escape/cgroup-control hook), `process` (the
//! fork/exec/exit tracepoints recording agent processes' lineage). Shared layouts and
//! map names live in `governor-common`.
#![no_std]
#![no_main]

mod agent;
mod attr;
mod cgroup;
mod dir_cache;
mod emit;
mod file;
mod host;
mod ioctl;
mod ipc;
mod kfs;
mod kread;
mod lease;
mod linked;
mod mapping;
mod maps;
mod mount;
mod net;
mod note;
mod outside;
mod path;
mod process;
mod stacked;
mod task;
mod vfs;
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
