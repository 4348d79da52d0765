//! The process-lineage record the kernel writes for agent tasks (fork, exec, exit) into its
//! own ring buffer ([`crate::maps::PROCS`]), and its checked decoder. Decision events never
//! share a ring buffer with these, so a burst of process records cannot crowd them out.

use crate::event::{RecordedPath, COMM_LEN, EXE_LEN};

/// Bumped whenever [`ProcEvent`]'s layout changes; the decoder rejects other versions.
pub const PROC_EVENT_VERSION: u16 = 1;
/// Length of the `cwd` field.
pub const CWD_LEN: usize = 512;
/// Length of the `argv` field.
pub const ARGV_LEN: usize = 1024;
/// Bit in [`ProcEvent::argv_flags`]: the arguments did not fit into `argv` (or could not be
/// read whole); the last one recorded may be cut short.
pub const ARGV_TRUNCATED: u16 = 1;
/// Bit in [`ProcEvent::argv_flags`]: the kernel read the arguments (exec records only).
pub const ARGV_PRESENT: u16 = 2;

/// What happened to the process.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcKind {
    /// A new process (not a thread) was forked by an agent task: the record describes the
    /// child; `comm` is the parent's, which the child shares until it execs.
    Fork = 1,
    /// An agent process executed a program: `exe`, `cwd` and `argv` are set.
    Exec = 2,
    /// The last thread of an agent process exited: `exit_code` is set.
    Exit = 3,
}

impl ProcKind {
    pub const fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(Self::Fork),
            2 => Some(Self::Exec),
            3 => Some(Self::Exit),
            _ => None,
        }
    }
}

/// One process-lineage record. A process is named by `pid` (its tgid, as the initial pid
/// namespace sees it) together with `start_ns`, which tells a reused pid apart.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcEvent {
    /// [`ProcKind`] as u16.
    pub kind: u16,
    pub version: u16,
    /// `size_of::<ProcEvent>()` as the writer saw it.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()` when it happened.
    pub boot_ns: u64,
    /// The process's start time: its group leader's `task_struct::start_boottime`
    /// (`CLOCK_BOOTTIME` ns).
    pub start_ns: u64,
    /// The parent process's (`real_parent`'s group leader) start time.
    pub parent_start_ns: u64,
    /// The cgroup v2 id the process is in.
    pub cgroup_id: u64,
    /// The process id (tgid).
    pub pid: u32,
    /// `real_parent`'s tgid.
    pub ppid: u32,
    /// Real uid (after the exec, for exec records).
    pub uid: u32,
    /// The agent the process belongs to (the acting task's, see `governor-ebpf/src/agent.rs`).
    pub agent_id: u32,
    /// Exit records: the kernel's wait status (`task_struct::exit_code`: exit status in bits
    /// 8..16, or the killing signal in bits 0..7). Zero otherwise.
    pub exit_code: i32,
    /// Bytes of `argv` in use.
    pub argv_len: u16,
    /// `ARGV_*` bits.
    pub argv_flags: u16,
    /// Bytes of `exe` in use.
    pub exe_len: u16,
    /// `PATH_*` bits for `exe` (see [`crate::event`]).
    pub exe_flags: u16,
    /// Bytes of `cwd` in use.
    pub cwd_len: u16,
    /// `PATH_*` bits for `cwd`.
    pub cwd_flags: u16,
    pub comm: [u8; COMM_LEN],
    /// Exec records: the new executable (`mm->exe_file`), encoded like
    /// [`crate::Event::path`]: names from the file upwards, each NUL-terminated.
    pub exe: [u8; EXE_LEN],
    /// Exec records: the working directory (`fs->pwd`), encoded like `exe`.
    pub cwd: [u8; CWD_LEN],
    /// Exec records: the arguments as the new program sees them (`mm->arg_start..arg_end`),
    /// each NUL-terminated, in the first `argv_len` bytes.
    pub argv: [u8; ARGV_LEN],
}
const _: () = assert!(core::mem::size_of::<ProcEvent>() == 1880);
const _: () = assert!(core::mem::size_of::<ProcEvent>().is_multiple_of(8));

/// Why a process ring-buffer record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcDecodeError {
    /// The record is shorter than a [`ProcEvent`].
    Short { got: usize, want: usize },
    /// The record's version is not [`PROC_EVENT_VERSION`].
    Version(u16),
    /// The record's `size` field disagrees with [`ProcEvent`]'s size.
    Size(u32),
    /// Unknown `kind`.
    Kind(u16),
}

impl core::fmt::Display for ProcDecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Short { got, want } => {
                write!(f, "process record is {got} bytes, expected {want}")
            }
            Self::Version(v) => {
                write!(
                    f,
                    "process record version {v}, expected {PROC_EVENT_VERSION}"
                )
            }
            Self::Size(s) => write!(f, "process record size field {s} does not match layout"),
            Self::Kind(k) => write!(f, "unknown process record kind {k}"),
        }
    }
}

impl ProcEvent {
    pub const SIZE: usize = core::mem::size_of::<ProcEvent>();

    /// A record of `kind` at this version and size, every other field zero.
    pub const fn new(kind: ProcKind) -> ProcEvent {
        ProcEvent {
            kind: kind as u16,
            version: PROC_EVENT_VERSION,
            size: ProcEvent::SIZE as u32,
            boot_ns: 0,
            start_ns: 0,
            parent_start_ns: 0,
            cgroup_id: 0,
            pid: 0,
            ppid: 0,
            uid: 0,
            agent_id: 0,
            exit_code: 0,
            argv_len: 0,
            argv_flags: 0,
            exe_len: 0,
            exe_flags: 0,
            cwd_len: 0,
            cwd_flags: 0,
            comm: [0; COMM_LEN],
            exe: [0; EXE_LEN],
            cwd: [0; CWD_LEN],
            argv: [0; ARGV_LEN],
        }
    }

    /// Decodes a ring-buffer record, checking its length, version, size and kind.
    pub fn decode(bytes: &[u8]) -> Result<ProcEvent, ProcDecodeError> {
        if bytes.len() < Self::SIZE {
            return Err(ProcDecodeError::Short {
                got: bytes.len(),
                want: Self::SIZE,
            });
        }
        // SAFETY: length checked above; `ProcEvent` is plain integers, valid for any bit
        // pattern; `read_unaligned` copes with any alignment of the record.
        let ev = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<ProcEvent>()) };
        if ev.version != PROC_EVENT_VERSION {
            return Err(ProcDecodeError::Version(ev.version));
        }
        if ev.size as usize != Self::SIZE {
            return Err(ProcDecodeError::Size(ev.size));
        }
        if ProcKind::from_u16(ev.kind).is_none() {
            return Err(ProcDecodeError::Kind(ev.kind));
        }
        Ok(ev)
    }

    /// The record's kind (checked by [`ProcEvent::decode`]).
    pub fn proc_kind(&self) -> Option<ProcKind> {
        ProcKind::from_u16(self.kind)
    }

    /// The executable ([`ProcEvent::exe`]).
    pub fn exe_path(&self) -> RecordedPath<'_> {
        RecordedPath::new(&self.exe, self.exe_len, self.exe_flags)
    }

    /// The working directory ([`ProcEvent::cwd`]).
    pub fn cwd_path(&self) -> RecordedPath<'_> {
        RecordedPath::new(&self.cwd, self.cwd_len, self.cwd_flags)
    }

    /// The arguments, in order, and whether they are complete. A `argv_len` beyond the field
    /// is not trusted (cut to the field, truncated); bytes after the last NUL are the start
    /// of an argument cut short, returned as the last argument with `truncated` set.
    pub fn args(&self) -> (impl Iterator<Item = &[u8]> + '_, bool) {
        let len = usize::from(self.argv_len);
        let mut truncated = self.argv_flags & ARGV_TRUNCATED != 0 || len > ARGV_LEN;
        let used = &self.argv[..len.min(ARGV_LEN)];
        let body = match used.last() {
            Some(0) => &used[..used.len() - 1],
            Some(_) => {
                truncated = true;
                used
            }
            None => used,
        };
        let empty = used.is_empty();
        (body.split(|&b| b == 0).filter(move |_| !empty), truncated)
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, made only of integers, with no implicit padding.
unsafe impl aya::Pod for ProcEvent {}

#[cfg(test)]
mod tests {
    use std::{string::ToString, vec::Vec};

    use super::*;
    use crate::event::PATH_PRESENT;

    fn sample(kind: ProcKind) -> ProcEvent {
        ProcEvent {
            boot_ns: 10,
            start_ns: 5,
            parent_start_ns: 1,
            cgroup_id: 9,
            pid: 100,
            ppid: 99,
            uid: 1000,
            ..ProcEvent::new(kind)
        }
    }

    fn bytes(ev: &ProcEvent) -> Vec<u8> {
        // SAFETY: `ProcEvent` is plain old data without padding.
        unsafe {
            core::slice::from_raw_parts((ev as *const ProcEvent).cast::<u8>(), ProcEvent::SIZE)
        }
        .to_vec()
    }

    fn args(ev: &ProcEvent) -> (Vec<&[u8]>, bool) {
        let (it, truncated) = ev.args();
        (it.collect(), truncated)
    }

    #[test]
    fn exec_round_trips_unaligned() {
        let mut ev = sample(ProcKind::Exec);
        ev.exe[..7].copy_from_slice(b"rm\0bin\0");
        ev.exe_len = 7;
        ev.exe_flags = PATH_PRESENT;
        ev.cwd[..4].copy_from_slice(b"tmp\0");
        ev.cwd_len = 4;
        ev.cwd_flags = PATH_PRESENT;
        let argv = b"rm\0/protected/file\0";
        ev.argv[..argv.len()].copy_from_slice(argv);
        ev.argv_len = argv.len() as u16;
        ev.argv_flags = ARGV_PRESENT;
        let mut buf = std::vec![0u8; 3];
        buf.extend(bytes(&ev));
        let ev = ProcEvent::decode(&buf[3..]).expect("decodes");
        assert_eq!(ev.proc_kind(), Some(ProcKind::Exec));
        assert_eq!(ev.exe_path().to_string(), "/bin/rm");
        assert_eq!(ev.cwd_path().to_string(), "/tmp");
        let want: [&[u8]; 2] = [b"rm", b"/protected/file"];
        assert_eq!(args(&ev), (want.to_vec(), false));
    }

    #[test]
    fn argv_edges() {
        let mut ev = sample(ProcKind::Exec);
        assert_eq!(args(&ev), (Vec::new(), false));
        // An empty argument is kept.
        ev.argv[..3].copy_from_slice(b"a\0\0");
        ev.argv_len = 3;
        let want: [&[u8]; 2] = [b"a", b""];
        assert_eq!(args(&ev), (want.to_vec(), false));
        // Cut in the middle of an argument.
        ev.argv[..4].copy_from_slice(b"a\0bc");
        ev.argv_len = 4;
        let want: [&[u8]; 2] = [b"a", b"bc"];
        assert_eq!(args(&ev), (want.to_vec(), true));
        // Flagged by the kernel.
        ev.argv_len = 2;
        ev.argv_flags = ARGV_TRUNCATED;
        let want: [&[u8]; 1] = [b"a"];
        assert_eq!(args(&ev), (want.to_vec(), true));
        // A length beyond the field is cut to it.
        ev.argv = [b'x'; ARGV_LEN];
        ev.argv_len = u16::MAX;
        ev.argv_flags = 0;
        let (got, truncated) = args(&ev);
        assert_eq!((got.len(), got[0].len(), truncated), (1, ARGV_LEN, true));
    }

    #[test]
    fn every_short_length_is_rejected() {
        let b = bytes(&sample(ProcKind::Fork));
        for len in 0..ProcEvent::SIZE {
            assert_eq!(
                ProcEvent::decode(&b[..len]).unwrap_err(),
                ProcDecodeError::Short {
                    got: len,
                    want: ProcEvent::SIZE
                }
            );
        }
    }

    #[test]
    fn wrong_version_size_kind_are_rejected() {
        let mut ev = sample(ProcKind::Exit);
        ev.version = 7;
        assert_eq!(
            ProcEvent::decode(&bytes(&ev)).unwrap_err(),
            ProcDecodeError::Version(7)
        );
        let mut ev = sample(ProcKind::Exit);
        ev.size = 1024;
        assert_eq!(
            ProcEvent::decode(&bytes(&ev)).unwrap_err(),
            ProcDecodeError::Size(1024)
        );
        for kind in [0, 4, u16::MAX] {
            let mut ev = sample(ProcKind::Exit);
            ev.kind = kind;
            assert_eq!(
                ProcEvent::decode(&bytes(&ev)).unwrap_err(),
                ProcDecodeError::Kind(kind)
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every decodable record's accessors stay in bounds.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let mut b: Vec<u8> = (0..ProcEvent::SIZE).map(|_| next() as u8).collect();
            b[0..2].copy_from_slice(&((next() % 3 + 1) as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&PROC_EVENT_VERSION.to_ne_bytes());
            b[4..8].copy_from_slice(&(ProcEvent::SIZE as u32).to_ne_bytes());
            let ev = ProcEvent::decode(&b).expect("header is valid");
            let _ = ev.exe_path().to_string();
            let _ = ev.cwd_path().to_string();
            let (it, _) = ev.args();
            assert!(it.map(<[u8]>::len).sum::<usize>() <= ARGV_LEN);
        }
    }
}
