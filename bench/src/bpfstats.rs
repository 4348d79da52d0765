//! Where governor's cost goes: the kernel's own BPF statistics (`BPF_ENABLE_STATS`), which
//! time every program run. Read per program with `BPF_PROG_GET_NEXT_ID`,
//! `BPF_PROG_GET_FD_BY_ID` and `BPF_OBJ_GET_INFO_BY_FD`.
//!
//! Offsets are those of the kernel UAPI (`linux/bpf.h`), which only ever appends fields.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::sys::{bpf, BPF_PROG_TYPE_LSM};

const BPF_PROG_GET_NEXT_ID: i64 = 11;
const BPF_PROG_GET_FD_BY_ID: i64 = 13;
const BPF_OBJ_GET_INFO_BY_FD: i64 = 15;
const BPF_ENABLE_STATS: i64 = 32;
const BPF_STATS_RUN_TIME: u32 = 0;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;

/// `struct bpf_prog_info` up to `run_cnt` and a little beyond: 232 bytes on 6.x.
const INFO_LEN: usize = 232;
const INFO_TYPE: usize = 0;
const INFO_NAME: usize = 64;
const INFO_RUN_TIME_NS: usize = 192;
const INFO_RUN_CNT: usize = 200;

/// `union bpf_attr`, as 8-byte words (the kernel accepts a shorter, zero-padded one).
type Attr = [u64; 16];

/// Statistics stay on while this lives.
pub struct StatsOn(i32);

impl StatsOn {
    pub fn enable() -> Result<StatsOn> {
        let mut attr: Attr = [0; 16];
        attr[0] = u64::from(BPF_STATS_RUN_TIME);
        let fd = bpf(BPF_ENABLE_STATS, &mut attr).context("BPF_ENABLE_STATS")?;
        Ok(StatsOn(fd as i32))
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// One program's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub run_ns: u64,
    pub runs: u64,
}

/// Counters of every LSM and cgroup sock_addr program loaded (governor's, in the VM), by
/// program name; same-named programs are summed.
pub fn snapshot() -> Result<BTreeMap<String, Counters>> {
    let mut out: BTreeMap<String, Counters> = BTreeMap::new();
    let mut id: u32 = 0;
    loop {
        let mut attr: Attr = [0; 16];
        attr[0] = u64::from(id);
        match bpf(BPF_PROG_GET_NEXT_ID, &mut attr) {
            Ok(_) => {
                let next = (attr[0] >> 32) as u32;
                if next <= id {
                    bail!("BPF_PROG_GET_NEXT_ID after {id} gave {next}: not increasing");
                }
                id = next;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e).context("BPF_PROG_GET_NEXT_ID"),
        }
        let mut attr: Attr = [0; 16];
        attr[0] = u64::from(id);
        let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
            Ok(fd) => fd as i32,
            // Unloaded since we listed it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("BPF_PROG_GET_FD_BY_ID {id}")),
        };
        let mut info = [0u64; INFO_LEN / 8];
        let mut attr: Attr = [0; 16];
        attr[0] = fd as u32 as u64 | ((INFO_LEN as u64) << 32);
        attr[1] = info.as_mut_ptr() as u64;
        let res = bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr);
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(fd) };
        res.with_context(|| format!("BPF_OBJ_GET_INFO_BY_FD for program {id}"))?;
        // SAFETY: plain bytes of an initialised array of u64.
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(info.as_ptr().cast::<u8>(), INFO_LEN) };
        let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().unwrap_or([0; 8]));
        let kind = u32_at(INFO_TYPE);
        if kind != BPF_PROG_TYPE_LSM && kind != BPF_PROG_TYPE_CGROUP_SOCK_ADDR {
            continue;
        }
        let name = &bytes[INFO_NAME..INFO_NAME + 16];
        let name =
            String::from_utf8_lossy(&name[..name.iter().position(|b| *b == 0).unwrap_or(16)])
                .into_owned();
        let c = out.entry(name).or_default();
        c.run_ns += u64_at(INFO_RUN_TIME_NS);
        c.runs += u64_at(INFO_RUN_CNT);
    }
}

/// `after - before` per program, keeping programs that ran.
pub fn delta(
    before: &BTreeMap<String, Counters>,
    after: &BTreeMap<String, Counters>,
) -> BTreeMap<String, Counters> {
    after
        .iter()
        .filter_map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            let d = Counters {
                run_ns: a.run_ns.saturating_sub(b.run_ns),
                runs: a.runs.saturating_sub(b.runs),
            };
            (d.runs > 0).then(|| (name.clone(), d))
        })
        .collect()
}
