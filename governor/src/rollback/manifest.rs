//! What a snapshot records, and its JSON: the manifest (every entry of every target, as it
//! was when the lease was installed), the summary (`Taken`'s figures, read without the
//! manifest) and the sealed state (every path's identity when the lease ended, and the
//! retention deadline). Names and link targets need not be UTF-8 and xattr values are
//! bytes, so [`Bytes`] writes a UTF-8 string as is and anything else as `{"b64": …}`.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt};

use base64ct::{Base64, Encoding};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes (a name, a link target, an xattr value) in JSON: text when UTF-8, else base64.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum BytesRepr {
    Text(String),
    B64 { b64: String },
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => BytesRepr::Text(text.to_owned()),
            Err(_) => BytesRepr::B64 {
                b64: Base64::encode_string(&self.0),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match BytesRepr::deserialize(d)? {
            BytesRepr::Text(t) => Ok(Bytes(t.into_bytes())),
            BytesRepr::B64 { b64 } => Base64::decode_vec(&b64)
                .map(Bytes)
                .map_err(|_| serde::de::Error::custom("not valid base64")),
        }
    }
}

impl Bytes {
    pub fn os(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }
    pub fn from_os(s: &OsStr) -> Bytes {
        Bytes(s.as_bytes().to_vec())
    }
}

/// What an entry is. Sockets, FIFOs and device nodes are recreated with `mknod`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Socket,
    Char,
    Block,
}

impl Kind {
    /// The kind of a `st_mode`'s file type.
    pub fn of(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::Char,
            _ => Kind::Block,
        }
    }

    /// The `S_IF*` bits `mknod` takes for this kind.
    pub fn ifmt(self) -> u32 {
        match self {
            Kind::Dir => libc::S_IFDIR,
            Kind::File => libc::S_IFREG,
            Kind::Symlink => libc::S_IFLNK,
            Kind::Fifo => libc::S_IFIFO,
            Kind::Socket => libc::S_IFSOCK,
            Kind::Char => libc::S_IFCHR,
            Kind::Block => libc::S_IFBLK,
        }
    }
}

/// A timestamp as `[seconds, nanoseconds]`.
pub type Time = [i64; 2];

/// One entry of a target as it was snapshotted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the target, `/`-separated; empty for the target itself.
    pub rel: Bytes,
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Every extended attribute (all namespaces root can read; ACLs are
    /// `system.posix_acl_access` / `system.posix_acl_default`), name → value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(Bytes, Bytes)>,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Bytes>,
    /// A regular file's content: `blobs/<n>`, one per inode (hard links share it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<u64>,
    /// A directory on another filesystem than its target (a mount point): recorded so that
    /// the restore leaves it alone, never entered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mount: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One target of the lease: an absolute path, and its entries in walk order (parents first).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    pub path: Bytes,
    /// Whether the target existed when the snapshot was taken (if not, a restore removes
    /// what is there).
    pub present: bool,
    pub entries: Vec<Entry>,
}

/// `manifest.json`: written last, so that its presence marks a complete snapshot.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub lease: String,
    pub taken_ms: u64,
    pub targets: Vec<Target>,
}

/// One path's identity when the lease ended: a later change of any of these is a change
/// made after the lease (a conflict at restore).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub rel: Bytes,
    pub kind: Kind,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: Time,
    pub ctime: Time,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `state.json`, beside the manifest: written by `seal` (and only then).
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub sealed_ms: u64,
    pub retain_until_ms: u64,
    /// Per target (the manifest's order), the paths present when the lease ended; after a
    /// restore, as the restore left them (a path it left alone keeps its record).
    pub targets: Vec<Vec<Sealed>>,
    /// When the last restore ended: `targets` is then what it left, and a path found as
    /// recorded there needs nothing from a new restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_ms: Option<u64>,
}

pub const VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_text_when_utf8_and_base64_otherwise() {
        let text = serde_json::to_string(&Bytes(b"a/b".to_vec())).unwrap();
        assert_eq!(text, "\"a/b\"");
        let raw = Bytes(vec![0xff, 0, 1]);
        let json = serde_json::to_string(&raw).unwrap();
        assert!(json.contains("b64"), "{json}");
        assert_eq!(serde_json::from_str::<Bytes>(&json).unwrap(), raw);
        assert_eq!(serde_json::from_str::<Bytes>(&text).unwrap().0, b"a/b");
    }
}
