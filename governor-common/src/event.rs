//! The decision event the kernel programs write into the ring buffer, and its checked decoder.

use crate::maps::InodeKey;
pub use crate::path::RecordedPath;

/// Bumped whenever [`Event`]'s layout changes; the decoder rejects other versions.
pub const EVENT_VERSION: u16 = 2;
/// Length of the `comm` field (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Length of the `name` field (final path component of the target).
pub const NAME_LEN: usize = 128;
/// Length of the `path` field (resolved path of the target, see [`Event::path`]).
pub const PATH_LEN: usize = 480;
/// Length of the `exe` field (resolved path of the acting task's executable).
pub const EXE_LEN: usize = 256;
/// Bit in [`Event::path_flags`] / [`Event::exe_flags`]: the walk did not reach the root (out
/// of room in the field, out of steps, or an unreadable name), so the components recorded are
/// only the lowest ones.
pub const PATH_TRUNCATED: u16 = 1;
/// Bit in [`Event::path_flags`] / [`Event::exe_flags`]: the walk ended at the root of a
/// filesystem without knowing where that filesystem is mounted (inode hooks get no mount, and
/// a disconnected dentry has no way up), so the components are relative to that filesystem's
/// root, not to `/`.
pub const PATH_UNROOTED: u16 = 2;
/// Bit in [`Event::path_flags`] / [`Event::exe_flags`]: the kernel recorded a path. Without
/// it the field is empty: the event has no file target, or the task has no executable (a
/// kernel thread). With it and no components, the path is `/` itself.
pub const PATH_PRESENT: u16 = 4;

/// What kind of record an [`Event`] is, i.e. how to read its `target`.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A decision on a file operation: `target.inode`, `name` and `path` are set.
    FileDecision = 1,
    /// A decision on a network operation: `target.addr`, `target.port`, `target.family`.
    NetDecision = 2,
    /// A decision on another task (signal, ptrace): `target.pid`.
    TaskDecision = 3,
    /// A decision on a host-wide operation (bpf, module load, mount): no target object.
    HostDecision = 4,
}

impl EventKind {
    pub const fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(Self::FileDecision),
            2 => Some(Self::NetDecision),
            3 => Some(Self::TaskDecision),
            4 => Some(Self::HostDecision),
            _ => None,
        }
    }
}

/// The object an operation was aimed at; which fields mean something depends on
/// [`EventKind`]. Unused fields are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// File: the inode acted on.
    pub inode: InodeKey,
    /// Network: IPv4 in the first 4 bytes, or IPv6 (network byte order).
    pub addr: [u8; 16],
    /// Network: port in host byte order.
    pub port: u16,
    /// Network: AF_INET or AF_INET6.
    pub family: u16,
    /// Task: the target task's tgid.
    pub pid: u32,
    /// Class-specific detail (signal number, open flags, ...).
    pub detail: u64,
}
const _: () = assert!(core::mem::size_of::<Target>() == 48);

/// The outcome the kernel applied.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The operation was refused with EPERM.
    Deny = 1,
    /// The operation would have been refused, but the agent is in observe mode.
    ObserveDeny = 2,
    /// The operation needs a lease and a matching, unexpired lease was in the kernel's lease
    /// map: allowed, with [`Event::lease_id`] naming the lease.
    LeaseAllow = 3,
    /// Allowed by the policy, and recorded because the agent records every operation of a
    /// file class (`record = "all"`, `maps::AGENT_FLAG_RECORD_ALL`).
    Allow = 4,
}

impl Decision {
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Deny),
            2 => Some(Self::ObserveDeny),
            3 => Some(Self::LeaseAllow),
            4 => Some(Self::Allow),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::ObserveDeny => "observe-deny",
            Self::LeaseAllow => "lease-allow",
            Self::Allow => "allow",
        }
    }
}

/// One kernel decision. Written by the programs, read by the daemon via [`Event::decode`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub kind: u16,
    pub version: u16,
    /// `size_of::<Event>()` as the writer saw it.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()` at decision time.
    pub boot_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub agent_id: u32,
    /// [`crate::Class`] as u32.
    pub class: u32,
    /// [`Decision`] as u32.
    pub decision: u32,
    /// Index of the protected resource that matched, or [`crate::maps::RULE_UNRESOLVED`].
    pub rule_id: u32,
    /// The object acted on.
    pub target: Target,
    /// How many levels above the target the protected inode was found (0 = the target itself).
    pub depth: u32,
    pub _pad: u32,
    /// The lease that allowed the operation ([`Decision::LeaseAllow`]); 0 otherwise.
    pub lease_id: u64,
    pub comm: [u8; COMM_LEN],
    /// NUL-padded name of the target: final path component for files.
    pub name: [u8; NAME_LEN],
    /// Identity of the acting task's executable (`mm->exe_file`); zero if it has none.
    pub exe_inode: InodeKey,
    /// Bytes of `path` in use.
    pub path_len: u16,
    /// Bytes of `exe` in use.
    pub exe_len: u16,
    /// `PATH_*` bits for `path`.
    pub path_flags: u16,
    /// `PATH_*` bits for `exe`.
    pub exe_flags: u16,
    /// Resolved path of a file target, as the kernel walked it at decision time: the names
    /// of the dentries from the target upwards (target first), each followed by one NUL,
    /// in the first `path_len` bytes (the rest is zero). The walk crosses from the root of
    /// each mount to its mountpoint in the parent mount, so a target reached through a bind
    /// mount is named through that mount; mount roots add no component. It stops at the root
    /// of the mount tree (an absolute path), or sets [`PATH_TRUNCATED`] / [`PATH_UNROOTED`].
    /// [`PATH_PRESENT`] says a path was recorded at all: not for network, task and host
    /// events. [`Event::target_path`] decodes it.
    pub path: [u8; PATH_LEN],
    /// Resolved path of the acting task's executable (`mm->exe_file->f_path`), encoded like
    /// `path`; not present for kernel threads. [`Event::exe_path`] decodes it.
    pub exe: [u8; EXE_LEN],
}
const _: () = assert!(core::mem::size_of::<Event>() == 1024);

/// Why a ring-buffer record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The record is shorter than an [`Event`].
    Short { got: usize, want: usize },
    /// The record's version is not [`EVENT_VERSION`].
    Version(u16),
    /// The record's `size` field disagrees with [`Event`]'s size.
    Size(u32),
    /// Unknown `kind`.
    Kind(u16),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Short { got, want } => write!(f, "event record is {got} bytes, expected {want}"),
            Self::Version(v) => write!(f, "event version {v}, expected {EVENT_VERSION}"),
            Self::Size(s) => write!(f, "event size field {s} does not match layout"),
            Self::Kind(k) => write!(f, "unknown event kind {k}"),
        }
    }
}

impl Event {
    pub const SIZE: usize = core::mem::size_of::<Event>();

    /// Decodes a ring-buffer record, checking its length, version, size and kind.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        if bytes.len() < Self::SIZE {
            return Err(DecodeError::Short {
                got: bytes.len(),
                want: Self::SIZE,
            });
        }
        // SAFETY: length checked above; `Event` is plain integers, valid for any bit pattern;
        // `read_unaligned` copes with any alignment of the record.
        let ev = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) };
        if ev.version != EVENT_VERSION {
            return Err(DecodeError::Version(ev.version));
        }
        if ev.size as usize != Self::SIZE {
            return Err(DecodeError::Size(ev.size));
        }
        if EventKind::from_u16(ev.kind).is_none() {
            return Err(DecodeError::Kind(ev.kind));
        }
        Ok(ev)
    }

    /// The target's resolved path ([`Event::path`]).
    pub fn target_path(&self) -> RecordedPath<'_> {
        RecordedPath::new(&self.path, self.path_len, self.path_flags)
    }

    /// The acting task's executable ([`Event::exe`]).
    pub fn exe_path(&self) -> RecordedPath<'_> {
        RecordedPath::new(&self.exe, self.exe_len, self.exe_flags)
    }

    /// The bytes of a NUL-padded field up to its first NUL.
    pub fn trim_nul(field: &[u8]) -> &[u8] {
        match field.iter().position(|&b| b == 0) {
            Some(n) => &field[..n],
            None => field,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    fn sample() -> Event {
        Event {
            kind: EventKind::FileDecision as u16,
            version: EVENT_VERSION,
            size: Event::SIZE as u32,
            boot_ns: 1,
            cgroup_id: 2,
            pid: 3,
            tgid: 4,
            uid: 5,
            gid: 6,
            agent_id: 0,
            class: 1,
            decision: Decision::Deny as u32,
            rule_id: 0,
            target: Target {
                inode: InodeKey::new(7, 8),
                ..Target::default()
            },
            depth: 0,
            _pad: 0,
            lease_id: 0,
            comm: *b"rm\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            name: [0; NAME_LEN],
            exe_inode: InodeKey::default(),
            path_len: 0,
            exe_len: 0,
            path_flags: 0,
            exe_flags: 0,
            path: [0; PATH_LEN],
            exe: [0; EXE_LEN],
        }
    }

    fn bytes(ev: &Event) -> std::vec::Vec<u8> {
        // SAFETY: `Event` is plain old data.
        unsafe { core::slice::from_raw_parts((ev as *const Event).cast::<u8>(), Event::SIZE) }
            .to_vec()
    }

    #[test]
    fn round_trip_even_unaligned() {
        let mut buf = std::vec![0u8];
        buf.extend(bytes(&sample()));
        let ev = Event::decode(&buf[1..]).expect("decodes");
        assert_eq!(
            (ev.pid, ev.tgid, ev.target.inode),
            (3, 4, InodeKey::new(7, 8))
        );
        assert_eq!(Event::trim_nul(&ev.comm), b"rm");
    }

    #[test]
    fn recorded_paths_decode_from_their_own_fields() {
        let mut ev = sample();
        assert_eq!(ev.target_path().to_string(), "");
        assert_eq!(ev.exe_path().to_string(), "");
        ev.path[..12].copy_from_slice(b"db\0prod\0srv\0");
        ev.path_len = 12;
        ev.path_flags = PATH_PRESENT;
        ev.exe[..9].copy_from_slice(b"rm\0bin\0\0\0");
        ev.exe_len = 7;
        ev.exe_flags = PATH_PRESENT;
        let ev = Event::decode(&bytes(&ev)).expect("decodes");
        assert_eq!(ev.target_path().to_string(), "/srv/prod/db");
        assert_eq!(ev.exe_path().to_string(), "/bin/rm");
    }

    #[test]
    fn every_short_length_is_rejected() {
        let b = bytes(&sample());
        for len in 0..Event::SIZE {
            assert_eq!(
                Event::decode(&b[..len]).unwrap_err(),
                DecodeError::Short {
                    got: len,
                    want: Event::SIZE
                }
            );
        }
    }

    #[test]
    fn wrong_version_size_kind_are_rejected() {
        let mut ev = sample();
        ev.version = 99;
        assert_eq!(
            Event::decode(&bytes(&ev)).unwrap_err(),
            DecodeError::Version(99)
        );
        let mut ev = sample();
        ev.size = 8;
        assert_eq!(
            Event::decode(&bytes(&ev)).unwrap_err(),
            DecodeError::Size(8)
        );
        let mut ev = sample();
        ev.kind = 42;
        assert_eq!(
            Event::decode(&bytes(&ev)).unwrap_err(),
            DecodeError::Kind(42)
        );
    }
}
