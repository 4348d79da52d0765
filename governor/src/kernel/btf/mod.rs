//! Minimal reader for the kernel's BTF (BPF Type Format), used to resolve
//! kernel struct member offsets at load time.
//!
//! Our eBPF programs are written in Rust with `aya-ebpf`, which has no CO-RE
//! (compile-once, run-everywhere) field relocations. They therefore read
//! kernel struct fields "by hand", with `bpf_probe_read_kernel` at
//! `ptr + offset`. Those offsets differ between kernel versions and configs
//! (we run on at least Debian's 6.1 and 6.12 kernels), so they cannot be baked
//! into the eBPF object. Instead, userspace reads the running kernel's own
//! type information from `/sys/kernel/btf/vmlinux` (present when the kernel was
//! built with `CONFIG_DEBUG_INFO_BTF=y`), resolves the offsets it needs with
//! [`Btf::member_offset`] (and sanity-checks sizes with [`Btf::member_size`]),
//! and hands them to the eBPF program as a global before loading it.
//!
//! The reader follows the format described in the kernel's
//! `Documentation/bpf/btf.rst`: a fixed header, a type section (a sequence of
//! `btf_type` records, each followed by kind-specific trailing data; type ids
//! are assigned sequentially starting at 1, id 0 being `void`) and a string
//! section of NUL-terminated names. Only little-endian BTF is supported. The
//! parser is defensive: every read is bounds-checked and malformed input
//! yields a [`BtfError`], never a panic.
//!
//! The folder owns the whole reader: this file the public API ([`Btf`], [`BtfError`], the
//! member lookups the loader calls), `parse.rs` the header, type and string sections,
//! `resolve.rs` the walk from a struct name and a member path to an offset and a size.
//! May import: `crate::host::files` (the bounded read of the BTF file), nothing else of
//! governor's. Imported by the rest of `kernel/` (offsets, loader, net, tree sequences).

mod parse;
mod resolve;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use parse::{Array, Member, Type, KIND_FUNC, KIND_FUNC_PROTO};

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// Errors from reading BTF or resolving members in it.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}: {source} (is CONFIG_DEBUG_INFO_BTF enabled?)")]
    Read {
        path: String,
        #[source]
        source: crate::host::files::ReadError,
    },
    #[error("not BTF data: bad magic 0x{found:04x} (expected 0xeb9f)")]
    BadMagic { found: u16 },
    #[error("BTF data is big-endian; only little-endian BTF is supported")]
    BigEndian,
    #[error("unsupported BTF version {0} (only version 1 is supported)")]
    UnsupportedVersion(u8),
    #[error(
        "BTF truncated at offset {offset}: {what} needs {need} bytes, \
         but the data is only {len} bytes long"
    )]
    Truncated {
        what: String,
        offset: usize,
        need: usize,
        len: usize,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("malformed BTF: type #{type_id} has unknown kind {kind}")]
    UnknownKind { type_id: u32, kind: u8 },
    #[error("kernel BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("kernel BTF has no function `{0}`")]
    NoFunc(String),
    #[error("kernel BTF only has a forward declaration of struct `{0}`, not its layout")]
    OnlyForwardDecl(String),
    #[error("{container} has no member `{member}`{context}")]
    NoMember {
        /// e.g. "struct `dentry`" or "anonymous struct".
        container: String,
        member: String,
        /// Empty, or " (resolving `file.f_path.dentry`)" for nested paths.
        context: String,
    },
    #[error("cannot resolve `{path}`: `{prefix}` is {kind}, not a struct or union")]
    NotComposite {
        path: String,
        prefix: String,
        kind: &'static str,
    },
    #[error(
        "invalid member path `{0}`: expected dot-separated member names such as `f_path.dentry`"
    )]
    InvalidPath(String),
    #[error(
        "`{path}` is a {bits}-bit bitfield at bit offset {bit_offset}, not on a byte boundary"
    )]
    UnalignedBitfield {
        path: String,
        bits: u32,
        bit_offset: u64,
    },
    #[error("`{path}` is a {bits}-bit bitfield and has no size in whole bytes")]
    BitfieldSize { path: String, bits: u32 },
    #[error("`{path}` has {kind} type, which has no size")]
    NoSize { path: String, kind: &'static str },
    #[error("`{path}` is at bit offset {bit_offset}, which does not fit a 32-bit byte offset")]
    OffsetOverflow { path: String, bit_offset: u64 },
}

fn malformed(msg: impl Into<String>) -> BtfError {
    BtfError::Malformed(msg.into())
}

/// Parsed BTF type information (typically the kernel's `vmlinux` BTF).
pub struct Btf {
    /// Index = type id; entry 0 is `void`.
    types: Vec<Type>,
    members: Vec<Member>,
    arrays: Vec<Array>,
    /// The string section; non-empty, starts and ends with NUL.
    strings: Vec<u8>,
    /// Name → ids of named STRUCT, UNION and FWD types, in id order.
    composites_by_name: HashMap<Box<[u8]>, Vec<u32>>,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len().saturating_sub(1))
            .field("members", &self.members.len())
            .field("string_bytes", &self.strings.len())
            .finish_non_exhaustive()
    }
}

impl Btf {
    /// Reads and parses the running kernel's BTF from `/sys/kernel/btf/vmlinux`.
    ///
    /// # Errors
    /// [`BtfError::Read`] if the file cannot be read (typically a kernel
    /// without `CONFIG_DEBUG_INFO_BTF`), or any [`Btf::parse`] error.
    pub fn from_sys_fs() -> Result<Btf, BtfError> {
        Btf::from_file(VMLINUX_BTF_PATH)
    }

    /// Reads and parses raw BTF from a file (e.g. a `.BTF` section dumped from
    /// a `vmlinux` image).
    ///
    /// # Errors
    /// As for [`Btf::from_sys_fs`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Btf, BtfError> {
        let path = path.as_ref();
        let bytes = crate::host::files::read(path, crate::host::files::BTF).map_err(|source| {
            BtfError::Read {
                path: path.display().to_string(),
                source,
            }
        })?;
        Btf::parse(&bytes)
    }

    /// Byte offset of `path` (a member name, or dot-separated member names
    /// such as `f_path.dentry`) from the start of `struct struct_name`.
    ///
    /// Members of anonymous structs/unions are found transparently, and each
    /// path component but the last must be an embedded struct/union (possibly
    /// behind typedefs or const/volatile). Pointers are not followed.
    ///
    /// # Errors
    /// The struct or a member does not exist, a non-final path component is
    /// not a struct/union, the member is a bitfield not on a byte boundary,
    /// or the BTF is inconsistent (dangling or cyclic type references).
    pub fn member_offset(&self, struct_name: &str, path: &str) -> Result<u32, BtfError> {
        Ok(self.resolve(struct_name, path)?.byte_offset)
    }

    /// Size in bytes of the (typedef/modifier-resolved) type of the member at
    /// `path` in `struct struct_name`; pointers are 8 bytes.
    ///
    /// # Errors
    /// As for [`Btf::member_offset`]; also if the member is a bitfield or its
    /// type has no size (e.g. `void`, a function prototype).
    pub fn member_size(&self, struct_name: &str, path: &str) -> Result<u32, BtfError> {
        let r = self.resolve(struct_name, path)?;
        let full = format!("{struct_name}.{path}");
        if r.bitfield_bits != 0 {
            return Err(BtfError::BitfieldSize {
                path: full,
                bits: r.bitfield_bits,
            });
        }
        self.type_size(r.ty, &full)
    }

    /// How many parameters the function `name` takes (a BPF-LSM hook's arity tells which
    /// prototype this kernel has, e.g. whether `inode_setattr` takes an idmap first).
    ///
    /// # Errors
    /// No function of that name, or its prototype is not a `FUNC_PROTO`.
    pub fn func_params(&self, name: &str) -> Result<usize, BtfError> {
        let func = self
            .types
            .iter()
            .find(|t| t.kind() == KIND_FUNC && self.name_eq(t.name_off, name.as_bytes()))
            .ok_or_else(|| BtfError::NoFunc(name.to_string()))?;
        let proto = self.ty(func.size_or_type)?;
        if proto.kind() != KIND_FUNC_PROTO {
            return Err(malformed(format!(
                "function `{name}` has type #{} of kind {}, not a prototype",
                func.size_or_type,
                proto.kind()
            )));
        }
        Ok(proto.vlen())
    }
}
