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

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_VERSION: u8 = 1;
/// Size of the original `struct btf_header`.
const HEADER_LEN: usize = 24;
/// Size of the extended header that also describes a "layout" section.
const HEADER_LEN_WITH_LAYOUT: usize = 32;
/// Size of the common `struct btf_type` record.
const TYPE_RECORD_LEN: usize = 12;
/// Pointer size on the 64-bit targets we support.
const POINTER_SIZE: u32 = 8;
/// Bound on typedef/modifier chains, anonymous-member nesting and array
/// nesting, so that cyclic (malformed) BTF cannot loop or overflow the stack.
const MAX_DEPTH: usize = 64;

const KIND_VOID: u8 = 0;
const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_VOID => "void",
        KIND_INT => "an integer",
        KIND_PTR => "a pointer",
        KIND_ARRAY => "an array",
        KIND_STRUCT => "a struct",
        KIND_UNION => "a union",
        KIND_ENUM => "an enum",
        KIND_FWD => "a forward declaration",
        KIND_TYPEDEF => "a typedef",
        KIND_VOLATILE => "a volatile modifier",
        KIND_CONST => "a const modifier",
        KIND_RESTRICT => "a restrict modifier",
        KIND_FUNC => "a function",
        KIND_FUNC_PROTO => "a function prototype",
        KIND_VAR => "a variable",
        KIND_DATASEC => "a data section",
        KIND_FLOAT => "a float",
        KIND_DECL_TAG => "a declaration tag",
        KIND_TYPE_TAG => "a type tag",
        KIND_ENUM64 => "a 64-bit enum",
        _ => "an unknown kind",
    }
}

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

/// Reads a little-endian `u32` at `off` within `buf`, whose first byte is at
/// `base` in the whole blob (used for error messages).
fn read_u32(
    buf: &[u8],
    off: usize,
    base: usize,
    total: usize,
    what: &str,
) -> Result<u32, BtfError> {
    off.checked_add(4)
        .and_then(|end| buf.get(off..end))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| BtfError::Truncated {
            what: what.to_string(),
            offset: base.saturating_add(off),
            need: 4,
            len: total,
        })
}

/// One `btf_type` record, in compact form.
#[derive(Clone, Copy, Debug)]
struct Type {
    name_off: u32,
    info: u32,
    /// `size` for INT/ENUM/ENUM64/STRUCT/UNION/DATASEC/FLOAT, otherwise the
    /// referenced type id.
    size_or_type: u32,
    /// INT: the encoding word. STRUCT/UNION: index of the first member in
    /// `Btf::members`. ARRAY: index into `Btf::arrays`. Otherwise 0.
    extra: u32,
}

impl Type {
    const VOID: Type = Type {
        name_off: 0,
        info: 0,
        size_or_type: 0,
        extra: 0,
    };

    fn kind(&self) -> u8 {
        // Bits 24-28; the mask makes the narrowing lossless.
        ((self.info >> 24) & 0x1f) as u8
    }

    fn vlen(&self) -> usize {
        (self.info & 0xffff) as usize
    }

    fn kind_flag(&self) -> bool {
        self.info >> 31 != 0
    }

    fn is_composite(&self) -> bool {
        matches!(self.kind(), KIND_STRUCT | KIND_UNION)
    }
}

/// One `btf_member` of a struct or union.
#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    ty: u32,
    offset: u32,
}

/// One `btf_array`.
#[derive(Clone, Copy, Debug)]
struct Array {
    elem: u32,
    nelems: u32,
}

/// A member found by [`Btf::find_member`].
#[derive(Clone, Copy, Debug)]
struct Found {
    /// Offset in bits from the start of the searched struct/union.
    bit_offset: u64,
    ty: u32,
    /// Bitfield width in bits, 0 if not a bitfield.
    bitfield_bits: u32,
}

/// A fully resolved member path.
#[derive(Clone, Copy, Debug)]
struct Resolved {
    byte_offset: u32,
    ty: u32,
    bitfield_bits: u32,
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

    /// Parses raw (little-endian) BTF data.
    ///
    /// # Errors
    /// Bad magic, big-endian data, an unsupported version, truncated or
    /// malformed sections, or a type of unknown kind.
    pub fn parse(bytes: &[u8]) -> Result<Btf, BtfError> {
        let total = bytes.len();
        let truncated = |what: &str, offset: usize, need: usize| BtfError::Truncated {
            what: what.to_string(),
            offset,
            need,
            len: total,
        };

        // --- header ---
        let magic = match bytes.get(0..2) {
            Some(&[a, b]) => u16::from_le_bytes([a, b]),
            _ => return Err(truncated("BTF magic", 0, 2)),
        };
        if magic != BTF_MAGIC {
            return Err(if magic.swap_bytes() == BTF_MAGIC {
                BtfError::BigEndian
            } else {
                BtfError::BadMagic { found: magic }
            });
        }
        if total < HEADER_LEN {
            return Err(truncated("BTF header", 0, HEADER_LEN));
        }
        let version = bytes.get(2).copied().unwrap_or_default();
        if version != BTF_VERSION {
            return Err(BtfError::UnsupportedVersion(version));
        }
        // bytes[3] is `flags`; no flags are defined, so it is ignored.
        let hdr = |off: usize, what: &str| read_u32(bytes, off, 0, total, what);
        let hdr_len = hdr(4, "BTF header")? as usize;
        if hdr_len < HEADER_LEN {
            return Err(malformed(format!(
                "header length {hdr_len} is smaller than the minimum {HEADER_LEN}"
            )));
        }
        if hdr_len > total {
            return Err(truncated("BTF header", 0, hdr_len));
        }
        let type_off = hdr(8, "BTF header")? as usize;
        let type_len = hdr(12, "BTF header")? as usize;
        let str_off = hdr(16, "BTF header")? as usize;
        let str_len = hdr(20, "BTF header")? as usize;

        // Section offsets are relative to the end of the header.
        let section = |off: usize, len: usize, what: &str| -> Result<&[u8], BtfError> {
            let start = hdr_len
                .checked_add(off)
                .ok_or_else(|| truncated(what, usize::MAX, len))?;
            start
                .checked_add(len)
                .and_then(|end| bytes.get(start..end))
                .ok_or_else(|| truncated(what, start, len))
        };
        let type_sec = section(type_off, type_len, "type section")?;
        let str_sec = section(str_off, str_len, "string section")?;
        let type_base = hdr_len.saturating_add(type_off);

        // Newer kernels may extend the header with a "layout" section that
        // gives, per kind, the size of its trailing data. We only consult it
        // to skip kinds this reader does not know about.
        let layout: &[u8] = if hdr_len >= HEADER_LEN_WITH_LAYOUT {
            let layout_off = hdr(24, "BTF header")? as usize;
            let layout_len = hdr(28, "BTF header")? as usize;
            if layout_len == 0 {
                &[]
            } else {
                section(layout_off, layout_len, "layout section")?
            }
        } else {
            &[]
        };

        // --- strings ---
        match (str_sec.first(), str_sec.last()) {
            (Some(0), Some(0)) => {}
            (None, _) => return Err(malformed("string section is empty")),
            (Some(0), _) => return Err(malformed("string section is not NUL-terminated")),
            (Some(_), _) => {
                return Err(malformed(
                    "string section does not start with an empty string",
                ))
            }
        }
        let check_name = |name_off: u32, id: usize| -> Result<(), BtfError> {
            if (name_off as usize) < str_sec.len() {
                Ok(())
            } else {
                Err(malformed(format!(
                    "type #{id} refers to string offset {name_off}, beyond the {}-byte string section",
                    str_sec.len()
                )))
            }
        };

        // --- types ---
        let mut types = Vec::with_capacity(type_len / 16 + 1);
        types.push(Type::VOID);
        let mut members: Vec<Member> = Vec::new();
        let mut arrays: Vec<Array> = Vec::new();
        let mut off = 0usize;
        while off < type_sec.len() {
            let id = types.len();
            let type_id = u32::try_from(id).map_err(|_| malformed("too many types"))?;
            let record = off
                .checked_add(TYPE_RECORD_LEN)
                .and_then(|end| type_sec.get(off..end))
                .ok_or_else(|| BtfError::Truncated {
                    what: format!("type #{id} record"),
                    offset: type_base.saturating_add(off),
                    need: TYPE_RECORD_LEN,
                    len: total,
                })?;
            let name_off = le_u32(record, 0);
            let info = le_u32(record, 4);
            let size_or_type = le_u32(record, 8);
            check_name(name_off, id)?;
            let mut ty = Type {
                name_off,
                info,
                size_or_type,
                extra: 0,
            };
            off = off.saturating_add(TYPE_RECORD_LEN);
            let vlen = ty.vlen();
            let kind = ty.kind();

            // Size of the trailing data, and where it lives.
            let trailing = match kind {
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                _ => {
                    // Unknown kind: skip it if the layout section describes it.
                    let entry = usize::from(kind)
                        .checked_mul(4)
                        .and_then(|at| layout.get(at..at.checked_add(2)?));
                    match entry {
                        Some(&[info_sz, elem_sz]) => usize::from(info_sz)
                            .saturating_add(vlen.saturating_mul(usize::from(elem_sz))),
                        _ => return Err(BtfError::UnknownKind { type_id, kind }),
                    }
                }
            };
            let data = off
                .checked_add(trailing)
                .and_then(|end| type_sec.get(off..end))
                .ok_or_else(|| BtfError::Truncated {
                    what: format!("type #{id} ({}) trailing data", kind_name(kind)),
                    offset: type_base.saturating_add(off),
                    need: trailing,
                    len: total,
                })?;
            match kind {
                KIND_INT => ty.extra = le_u32(data, 0),
                KIND_ARRAY => {
                    ty.extra =
                        u32::try_from(arrays.len()).map_err(|_| malformed("too many arrays"))?;
                    // data[4..8] is the index type, which we do not need.
                    arrays.push(Array {
                        elem: le_u32(data, 0),
                        nelems: le_u32(data, 8),
                    });
                }
                KIND_STRUCT | KIND_UNION => {
                    ty.extra =
                        u32::try_from(members.len()).map_err(|_| malformed("too many members"))?;
                    members.reserve(vlen);
                    for chunk in data.chunks_exact(12) {
                        let m = Member {
                            name_off: le_u32(chunk, 0),
                            ty: le_u32(chunk, 4),
                            offset: le_u32(chunk, 8),
                        };
                        check_name(m.name_off, id)?;
                        members.push(m);
                    }
                }
                _ => {}
            }
            off = off.saturating_add(trailing);
            types.push(ty);
        }

        let strings = str_sec.to_vec();
        let mut composites_by_name: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        for (id, t) in types.iter().enumerate() {
            if t.name_off == 0 || !matches!(t.kind(), KIND_STRUCT | KIND_UNION | KIND_FWD) {
                continue;
            }
            let name = str_at(&strings, t.name_off);
            let id = u32::try_from(id).map_err(|_| malformed("too many types"))?;
            match composites_by_name.get_mut(name) {
                Some(ids) => ids.push(id),
                None => {
                    composites_by_name.insert(name.into(), vec![id]);
                }
            }
        }

        Ok(Btf {
            types,
            members,
            arrays,
            strings,
            composites_by_name,
        })
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

    fn ty(&self, id: u32) -> Result<Type, BtfError> {
        self.types.get(id as usize).copied().ok_or_else(|| {
            malformed(format!(
                "reference to type #{id}, but there are only {} types",
                self.types.len()
            ))
        })
    }

    fn members_of(&self, t: &Type) -> Result<&[Member], BtfError> {
        let start = t.extra as usize;
        start
            .checked_add(t.vlen())
            .and_then(|end| self.members.get(start..end))
            .ok_or_else(|| malformed("member index out of range"))
    }

    fn name_eq(&self, name_off: u32, name: &[u8]) -> bool {
        let start = name_off as usize;
        let Some(end) = start.checked_add(name.len()) else {
            return false;
        };
        self.strings.get(start..end) == Some(name) && self.strings.get(end) == Some(&0)
    }

    /// Human-readable description of a struct/union for error messages.
    fn describe(&self, id: u32) -> String {
        let Ok(t) = self.ty(id) else {
            return format!("type #{id}");
        };
        let what = if t.kind() == KIND_UNION {
            "union"
        } else {
            "struct"
        };
        if t.name_off == 0 {
            format!("anonymous {what}")
        } else {
            format!(
                "{what} `{}`",
                String::from_utf8_lossy(str_at(&self.strings, t.name_off))
            )
        }
    }

    /// Finds the struct (or, failing that, union) called `name`, preferring
    /// definitions with members over empty ones and over forward declarations.
    fn find_struct(&self, name: &str) -> Result<u32, BtfError> {
        let ids = self
            .composites_by_name
            .get(name.as_bytes())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let pick = |kind: u8, need_members: bool| {
            ids.iter().copied().find(|&id| {
                self.ty(id)
                    .is_ok_and(|t| t.kind() == kind && (!need_members || t.vlen() > 0))
            })
        };
        pick(KIND_STRUCT, true)
            .or_else(|| pick(KIND_UNION, true))
            .or_else(|| pick(KIND_STRUCT, false))
            .or_else(|| pick(KIND_UNION, false))
            .ok_or_else(|| {
                if ids.is_empty() {
                    BtfError::NoStruct(name.to_string())
                } else {
                    BtfError::OnlyForwardDecl(name.to_string())
                }
            })
    }

    /// Follows typedefs and const/volatile/restrict/type-tag modifiers.
    fn strip_modifiers(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_DEPTH {
            let t = self.ty(id)?;
            match t.kind() {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Ok(id),
            }
        }
        Err(malformed(format!(
            "typedef/modifier chain through type #{id} is too long (cycle?)"
        )))
    }

    /// Looks up member `name` in the struct/union `id`, descending into
    /// anonymous struct/union members.
    fn find_member(&self, id: u32, name: &[u8], depth: usize) -> Result<Option<Found>, BtfError> {
        if depth >= MAX_DEPTH {
            return Err(malformed(format!(
                "anonymous members nested too deeply at type #{id} (cycle?)"
            )));
        }
        let t = self.ty(id)?;
        let kind_flag = t.kind_flag();
        for m in self.members_of(&t)? {
            let (bit_offset, bitfield_bits) = if kind_flag {
                (m.offset & 0x00ff_ffff, m.offset >> 24)
            } else {
                (m.offset, 0)
            };
            if m.name_off == 0 {
                let inner = self.strip_modifiers(m.ty)?;
                if self.ty(inner)?.is_composite() {
                    if let Some(found) = self.find_member(inner, name, depth + 1)? {
                        return Ok(Some(Found {
                            bit_offset: found.bit_offset.saturating_add(u64::from(bit_offset)),
                            ..found
                        }));
                    }
                }
            } else if self.name_eq(m.name_off, name) {
                return Ok(Some(Found {
                    bit_offset: u64::from(bit_offset),
                    ty: m.ty,
                    bitfield_bits,
                }));
            }
        }
        Ok(None)
    }

    fn resolve(&self, struct_name: &str, path: &str) -> Result<Resolved, BtfError> {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(BtfError::InvalidPath(path.to_string()));
        }
        let full = format!("{struct_name}.{path}");
        let nested = path.contains('.');
        let mut container = self.find_struct(struct_name)?;
        let mut bit_offset: u64 = 0;
        let mut last: Option<Found> = None;
        let mut prefix_len = struct_name.len();

        for component in path.split('.') {
            if let Some(prev) = last {
                let inner = self.strip_modifiers(prev.ty)?;
                let t = self.ty(inner)?;
                if !t.is_composite() || prev.bitfield_bits != 0 {
                    return Err(BtfError::NotComposite {
                        prefix: full.get(..prefix_len).unwrap_or(&full).to_string(),
                        path: full,
                        kind: kind_name(t.kind()),
                    });
                }
                container = inner;
            }
            let found = self
                .find_member(container, component.as_bytes(), 0)?
                .ok_or_else(|| BtfError::NoMember {
                    container: self.describe(container),
                    member: component.to_string(),
                    context: if nested {
                        format!(" (resolving `{full}`)")
                    } else {
                        String::new()
                    },
                })?;
            bit_offset = bit_offset.saturating_add(found.bit_offset);
            prefix_len = prefix_len.saturating_add(1 + component.len());
            last = Some(found);
        }
        let found = last.ok_or_else(|| BtfError::InvalidPath(path.to_string()))?;

        // Without kind_flag, bitfields are encoded as INT types whose bit
        // width is narrower than their storage (plus a legacy bit offset).
        let ty = self.strip_modifiers(found.ty)?;
        let mut bitfield_bits = found.bitfield_bits;
        let t = self.ty(ty)?;
        if bitfield_bits == 0 && t.kind() == KIND_INT {
            let nr_bits = t.extra & 0xff;
            let int_offset = (t.extra >> 16) & 0xff;
            bit_offset = bit_offset.saturating_add(u64::from(int_offset));
            if u64::from(nr_bits) != u64::from(t.size_or_type).saturating_mul(8) || int_offset != 0
            {
                bitfield_bits = nr_bits;
            }
        }

        if !bit_offset.is_multiple_of(8) {
            if bitfield_bits != 0 {
                return Err(BtfError::UnalignedBitfield {
                    path: full,
                    bits: bitfield_bits,
                    bit_offset,
                });
            }
            return Err(malformed(format!(
                "`{full}` is at bit offset {bit_offset}, not on a byte boundary"
            )));
        }
        let byte_offset = u32::try_from(bit_offset / 8).map_err(|_| BtfError::OffsetOverflow {
            path: full,
            bit_offset,
        })?;
        Ok(Resolved {
            byte_offset,
            ty,
            bitfield_bits,
        })
    }

    /// Size in bytes of type `id`; `path` is only used for error messages.
    fn type_size(&self, id: u32, path: &str) -> Result<u32, BtfError> {
        let mut id = id;
        let mut multiplier: u32 = 1;
        for _ in 0..MAX_DEPTH {
            id = self.strip_modifiers(id)?;
            let t = self.ty(id)?;
            let size = match t.kind() {
                KIND_INT | KIND_ENUM | KIND_ENUM64 | KIND_STRUCT | KIND_UNION | KIND_FLOAT
                | KIND_DATASEC => t.size_or_type,
                KIND_PTR => POINTER_SIZE,
                KIND_ARRAY => {
                    let a = self
                        .arrays
                        .get(t.extra as usize)
                        .ok_or_else(|| malformed("array index out of range"))?;
                    multiplier = multiplier
                        .checked_mul(a.nelems)
                        .ok_or_else(|| malformed(format!("size of `{path}` overflows")))?;
                    id = a.elem;
                    continue;
                }
                kind => {
                    return Err(BtfError::NoSize {
                        path: path.to_string(),
                        kind: kind_name(kind),
                    })
                }
            };
            return size
                .checked_mul(multiplier)
                .ok_or_else(|| malformed(format!("size of `{path}` overflows")));
        }
        Err(malformed(format!(
            "array nesting too deep for `{path}` (cycle?)"
        )))
    }
}

/// Reads a little-endian `u32` at `at` from a slice whose length the caller
/// has already checked (yields 0 rather than panicking if it is too short).
fn le_u32(buf: &[u8], at: usize) -> u32 {
    match at.checked_add(4).and_then(|end| buf.get(at..end)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// The NUL-terminated string at `off` (without the NUL); empty if out of range.
fn str_at(strings: &[u8], off: u32) -> &[u8] {
    let rest = strings.get(off as usize..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    rest.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Emits synthetic BTF blobs. Type ids are assigned sequentially from 1.
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        count: u32,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                types: Vec::new(),
                strings: vec![0],
                count: 0,
            }
        }

        /// Id the next emitted type will get.
        fn next_id(&self) -> u32 {
            self.count + 1
        }

        fn s(&mut self, text: &str) -> u32 {
            if text.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(text.as_bytes());
            self.strings.push(0);
            off
        }

        fn u32(&mut self, v: u32) {
            self.types.extend_from_slice(&v.to_le_bytes());
        }

        fn record(
            &mut self,
            name: &str,
            kind: u8,
            kind_flag: bool,
            vlen: u32,
            size_or_type: u32,
        ) -> u32 {
            let name_off = self.s(name);
            self.u32(name_off);
            self.u32((u32::from(kind_flag) << 31) | (u32::from(kind) << 24) | vlen);
            self.u32(size_or_type);
            self.count += 1;
            self.count
        }

        fn int(&mut self, name: &str, size: u32, bits: u32) -> u32 {
            let id = self.record(name, KIND_INT, false, 0, size);
            self.u32(bits);
            id
        }

        fn refer(&mut self, kind: u8, name: &str, target: u32) -> u32 {
            self.record(name, kind, false, 0, target)
        }

        fn array(&mut self, elem: u32, index: u32, nelems: u32) -> u32 {
            let id = self.record("", KIND_ARRAY, false, 0, 0);
            self.u32(elem);
            self.u32(index);
            self.u32(nelems);
            id
        }

        /// `members`: (name, type, raw offset word).
        fn composite(
            &mut self,
            kind: u8,
            name: &str,
            size: u32,
            kind_flag: bool,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let id = self.record(name, kind, kind_flag, members.len() as u32, size);
            for &(m_name, ty, offset) in members {
                let n = self.s(m_name);
                self.u32(n);
                self.u32(ty);
                self.u32(offset);
            }
            id
        }

        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(KIND_STRUCT, name, size, false, members)
        }

        fn fwd(&mut self, name: &str) -> u32 {
            self.record(name, KIND_FWD, false, 0, 0)
        }

        fn enumeration(&mut self, name: &str, values: &[(&str, u32)]) -> u32 {
            let id = self.record(name, KIND_ENUM, false, values.len() as u32, 4);
            for &(n, v) in values {
                let n = self.s(n);
                self.u32(n);
                self.u32(v);
            }
            id
        }

        fn enum64(&mut self, name: &str, values: &[(&str, u64)]) -> u32 {
            let id = self.record(name, KIND_ENUM64, false, values.len() as u32, 8);
            for &(n, v) in values {
                let n = self.s(n);
                self.u32(n);
                self.u32(v as u32);
                self.u32((v >> 32) as u32);
            }
            id
        }

        fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
            let id = self.record("", KIND_FUNC_PROTO, false, params.len() as u32, ret);
            for &(n, t) in params {
                let n = self.s(n);
                self.u32(n);
                self.u32(t);
            }
            id
        }

        fn var(&mut self, name: &str, ty: u32) -> u32 {
            let id = self.record(name, KIND_VAR, false, 0, ty);
            self.u32(1); // linkage: global
            id
        }

        fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
            let id = self.record(name, KIND_DATASEC, false, vars.len() as u32, size);
            for &(t, off, sz) in vars {
                self.u32(t);
                self.u32(off);
                self.u32(sz);
            }
            id
        }

        fn decl_tag(&mut self, name: &str, target: u32, component: u32) -> u32 {
            let id = self.record(name, KIND_DECL_TAG, false, 0, target);
            self.u32(component);
            id
        }

        fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            out.push(BTF_VERSION);
            out.push(0);
            for v in [
                HEADER_LEN as u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// Kind-flag member offset word.
    fn bf(bits: u32, bit_offset: u32) -> u32 {
        (bits << 24) | bit_offset
    }

    /// A blob exercising every kind, with the interesting structs after all of
    /// them so that skipping trailing data is verified too.
    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        let int = b.int("int", 4, (1 << 24) | 32);
        let long = b.int("long", 8, (1 << 24) | 64);
        let chr = b.int("char", 1, 8);
        let char_ptr = b.refer(KIND_PTR, "", chr);
        let int4 = b.array(int, int, 4);
        let _ = b.enumeration("color", &[("RED", 0), ("GREEN", 1)]);
        let _ = b.enum64("big", &[("HUGE", 1 << 40)]);
        let proto = b.func_proto(int, &[("a", int), ("b", char_ptr)]);
        let _ = b.refer(KIND_FUNC, "do_thing", proto);
        let var = b.var("global", int);
        let _ = b.datasec(".data", 4, &[(var, 0, 4)]);
        let _ = b.record("double", KIND_FLOAT, false, 0, 8);
        let user_ptr = b.refer(KIND_TYPE_TAG, "user", char_ptr);
        let vol_int = b.refer(KIND_VOLATILE, "", int);
        let _ = b.refer(KIND_RESTRICT, "", char_ptr);

        // FWD before the real definition.
        let _ = b.fwd("inner");
        let inner = b.strukt("inner", 16, &[("x", int, 0), ("y", long, 64)]);
        let _ = b.decl_tag("tag", inner, 0);
        let inner_t = b.refer(KIND_TYPEDEF, "inner_t", inner);
        let const_inner_t = b.refer(KIND_CONST, "", inner_t);
        let inner_ptr = b.refer(KIND_PTR, "", inner);

        // Nested anonymous members:
        // struct outer {
        //     int a;
        //     union { int b; struct { long c; volatile int d; }; };  // at 8
        //     const inner_t in;                                     // at 24
        //     struct inner *p;                                      // at 40
        //     int arr[4];                                           // at 48
        //     char __user *up;                                      // at 64
        // };
        let anon_s = b.strukt("", 16, &[("c", long, 0), ("d", vol_int, 64)]);
        let anon_u = b.composite(KIND_UNION, "", 16, false, &[("b", int, 0), ("", anon_s, 0)]);
        let _ = b.strukt(
            "outer",
            72,
            &[
                ("a", int, 0),
                ("", anon_u, 64),
                ("in", const_inner_t, 192),
                ("p", inner_ptr, 320),
                ("arr", int4, 384),
                ("up", user_ptr, 512),
            ],
        );

        // Kind-flag bitfields.
        let _ = b.composite(
            KIND_STRUCT,
            "with_bits",
            8,
            true,
            &[
                ("a", int, bf(3, 0)),
                ("b", int, bf(5, 3)),
                ("c", int, bf(0, 32)),
                ("d", int, bf(8, 40)),
            ],
        );
        // Legacy (no kind_flag) bitfields: narrow INT types.
        let u3 = b.int("unsigned int", 4, 3);
        let _ = b.strukt(
            "old_bits",
            8,
            &[("f1", u3, 0), ("f2", u3, 3), ("g", int, 32)],
        );

        // Several definitions sharing a name.
        let _ = b.strukt("dup", 0, &[]);
        let _ = b.strukt("dup", 8, &[("m", int, 0)]);
        let _ = b.strukt("dup", 8, &[("m", int, 32)]);
        let _ = b.fwd("lonely");
        let _ = b.composite(KIND_UNION, "only_union", 8, false, &[("u", long, 0)]);

        // Cycles must produce errors, not hangs or stack overflows.
        let selfish = b.next_id();
        let _ = b.strukt("selfish", 4, &[("", selfish, 0)]);
        let looped = b.next_id();
        let _ = b.refer(KIND_TYPEDEF, "loop_t", looped);
        let self_array = b.next_id();
        let _ = b.array(self_array, int, 2);
        let _ = b.strukt(
            "cyclic",
            16,
            &[
                ("l", looped, 0),
                ("arr", self_array, 32),
                ("dangling", 9999, 64),
            ],
        );
        b.build()
    }

    fn sample_btf() -> Btf {
        Btf::parse(&sample()).expect("sample BTF parses")
    }

    #[test]
    fn parses_all_kinds() {
        let btf = sample_btf();
        assert_eq!(btf.types.len(), 37); // 36 types + void
        let mut kinds: Vec<u8> = btf.types.iter().map(Type::kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds, (KIND_VOID..=KIND_ENUM64).collect::<Vec<_>>());
        assert_eq!(btf.member_offset("inner", "y").unwrap(), 8);
    }

    #[test]
    fn nested_anonymous_union() {
        let btf = sample_btf();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "b").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "c").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "d").unwrap(), 16);
        assert_eq!(btf.member_size("outer", "c").unwrap(), 8);
        assert_eq!(btf.member_size("outer", "d").unwrap(), 4);
    }

    #[test]
    fn typedef_and_const_member_path() {
        let btf = sample_btf();
        assert_eq!(btf.member_offset("outer", "in").unwrap(), 24);
        assert_eq!(btf.member_offset("outer", "in.x").unwrap(), 24);
        assert_eq!(btf.member_offset("outer", "in.y").unwrap(), 32);
        assert_eq!(btf.member_size("outer", "in").unwrap(), 16);
        assert_eq!(btf.member_size("outer", "in.y").unwrap(), 8);
    }

    #[test]
    fn sizes() {
        let btf = sample_btf();
        assert_eq!(btf.member_size("outer", "p").unwrap(), 8);
        assert_eq!(btf.member_size("outer", "arr").unwrap(), 16);
        assert_eq!(btf.member_size("outer", "up").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "up").unwrap(), 64);
    }

    #[test]
    fn pointers_are_not_followed() {
        let btf = sample_btf();
        let err = btf.member_offset("outer", "p.x").unwrap_err();
        assert!(matches!(err, BtfError::NotComposite { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "cannot resolve `outer.p.x`: `outer.p` is a pointer, not a struct or union"
        );
        assert!(matches!(
            btf.member_offset("outer", "a.x").unwrap_err(),
            BtfError::NotComposite {
                kind: "an integer",
                ..
            }
        ));
    }

    #[test]
    fn kind_flag_bitfields() {
        let btf = sample_btf();
        assert_eq!(btf.member_offset("with_bits", "a").unwrap(), 0);
        let err = btf.member_offset("with_bits", "b").unwrap_err();
        assert!(
            matches!(
                err,
                BtfError::UnalignedBitfield {
                    bits: 5,
                    bit_offset: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(btf.member_offset("with_bits", "c").unwrap(), 4);
        assert_eq!(btf.member_size("with_bits", "c").unwrap(), 4);
        assert_eq!(btf.member_offset("with_bits", "d").unwrap(), 5);
        assert!(matches!(
            btf.member_size("with_bits", "d").unwrap_err(),
            BtfError::BitfieldSize { bits: 8, .. }
        ));
    }

    #[test]
    fn legacy_bitfields() {
        let btf = sample_btf();
        assert_eq!(btf.member_offset("old_bits", "f1").unwrap(), 0);
        assert!(matches!(
            btf.member_offset("old_bits", "f2").unwrap_err(),
            BtfError::UnalignedBitfield {
                bits: 3,
                bit_offset: 3,
                ..
            }
        ));
        assert!(matches!(
            btf.member_size("old_bits", "f1").unwrap_err(),
            BtfError::BitfieldSize { bits: 3, .. }
        ));
        assert_eq!(btf.member_offset("old_bits", "g").unwrap(), 4);
    }

    #[test]
    fn struct_preferred_over_fwd_and_empty_duplicates() {
        let btf = sample_btf();
        // `inner` is a FWD first, then a STRUCT.
        assert_eq!(btf.member_offset("inner", "x").unwrap(), 0);
        // First `dup` has no members; the second one (m at 0) wins over the third.
        assert_eq!(btf.member_offset("dup", "m").unwrap(), 0);
        assert!(matches!(
            btf.member_offset("lonely", "x").unwrap_err(),
            BtfError::OnlyForwardDecl(_)
        ));
        assert_eq!(btf.member_offset("only_union", "u").unwrap(), 0);
    }

    #[test]
    fn lookup_errors() {
        let btf = sample_btf();
        assert_eq!(
            btf.member_offset("foo", "x").unwrap_err().to_string(),
            "kernel BTF has no struct `foo`"
        );
        assert_eq!(
            btf.member_offset("inner", "z").unwrap_err().to_string(),
            "struct `inner` has no member `z`"
        );
        assert_eq!(
            btf.member_offset("outer", "in.z").unwrap_err().to_string(),
            "struct `inner` has no member `z` (resolving `outer.in.z`)"
        );
        for bad in ["", ".", "in.", ".in", "in..x"] {
            assert!(
                matches!(
                    btf.member_offset("outer", bad).unwrap_err(),
                    BtfError::InvalidPath(_)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cycles_and_dangling_references_are_errors() {
        let btf = sample_btf();
        assert!(btf.member_offset("selfish", "x").is_err());
        assert!(btf.member_size("cyclic", "l").is_err());
        assert!(btf.member_offset("cyclic", "l.x").is_err());
        assert!(btf.member_size("cyclic", "arr").is_err());
        assert!(btf.member_offset("cyclic", "dangling").is_err());
        assert!(btf.member_size("cyclic", "dangling").is_err());
    }

    #[test]
    fn wrong_magic_version_and_endianness() {
        let mut blob = sample();
        blob[0] = 0x00;
        assert!(matches!(
            Btf::parse(&blob).unwrap_err(),
            BtfError::BadMagic { found: 0xeb00 }
        ));
        let mut blob = sample();
        blob.swap(0, 1);
        assert!(matches!(
            Btf::parse(&blob).unwrap_err(),
            BtfError::BigEndian
        ));
        let mut blob = sample();
        blob[2] = 2;
        assert!(matches!(
            Btf::parse(&blob).unwrap_err(),
            BtfError::UnsupportedVersion(2)
        ));
        assert!(matches!(
            Btf::parse(b"ELF\x7f").unwrap_err(),
            BtfError::BadMagic { .. }
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let blob = sample();
        for len in 0..blob.len() {
            assert!(
                Btf::parse(&blob[..len]).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
        let err = Btf::parse(&blob[..blob.len() - 1]).unwrap_err();
        assert!(err.to_string().starts_with("BTF truncated at"), "{err}");
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let mut b = Builder::new();
        let _ = b.int("int", 4, 32);
        let _ = b.record("weird", 25, false, 0, 0);
        assert!(matches!(
            Btf::parse(&b.build()).unwrap_err(),
            BtfError::UnknownKind {
                type_id: 2,
                kind: 25
            }
        ));
    }

    #[test]
    fn unknown_kind_skipped_via_layout_section() {
        let mut b = Builder::new();
        let int = b.int("int", 4, 32);
        let _ = b.record("weird", 25, false, 2, 0);
        b.u32(0xdead_beef); // info_sz = 4
        b.u32(1); // vlen 2 * elem_sz 2 = 4 bytes
        let _ = b.strukt("after", 4, &[("v", int, 0)]);
        let mut blob = b.build();
        // Rebuild the header as the 32-byte variant with a layout section
        // placed after the strings.
        let body = blob.split_off(HEADER_LEN);
        let types_len = u32::from_le_bytes(blob[12..16].try_into().unwrap());
        let str_len = u32::from_le_bytes(blob[20..24].try_into().unwrap());
        let mut layout = vec![0u8; 26 * 4];
        layout[25 * 4] = 4;
        layout[25 * 4 + 1] = 2;
        let mut out = blob[..4].to_vec();
        for v in [
            32,
            0,
            types_len,
            types_len,
            str_len,
            types_len + str_len,
            layout.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&body);
        out.extend_from_slice(&layout);
        let btf = Btf::parse(&out).unwrap();
        assert_eq!(btf.member_offset("after", "v").unwrap(), 0);
    }

    #[test]
    fn corrupted_input_never_panics() {
        let blob = sample();
        let probe = |bytes: &[u8]| {
            if let Ok(btf) = Btf::parse(bytes) {
                for (s, p) in [
                    ("outer", "d"),
                    ("outer", "in.y"),
                    ("outer", "arr"),
                    ("with_bits", "d"),
                    ("cyclic", "l"),
                    ("cyclic", "arr"),
                    ("selfish", "x"),
                ] {
                    let _ = btf.member_offset(s, p);
                    let _ = btf.member_size(s, p);
                }
            }
        };
        // Every byte replaced with a few interesting values.
        for i in 0..blob.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = blob.clone();
                b[i] = v;
                probe(&b);
            }
        }
        // Pseudo-random garbage behind a valid header.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut b = blob.clone();
            for byte in b.iter_mut().skip(HEADER_LEN) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if state.is_multiple_of(7) {
                    *byte = (state >> 32) as u8;
                }
            }
            probe(&b);
        }
    }

    /// Parses the running kernel's BTF (skipped if this host has none).
    #[test]
    fn real_vmlinux() {
        if !Path::new(VMLINUX_BTF_PATH).exists() {
            eprintln!("{VMLINUX_BTF_PATH} not present; skipping");
            return;
        }
        let start = std::time::Instant::now();
        let btf = Btf::from_sys_fs().unwrap();
        eprintln!("parsed {btf:?} in {:?}", start.elapsed());
        for (s, p) in [
            ("dentry", "d_parent"),
            ("dentry", "d_inode"),
            ("dentry", "d_name"),
            ("inode", "i_ino"),
            ("inode", "i_sb"),
            ("super_block", "s_dev"),
            ("path", "dentry"),
            ("path", "mnt"),
            ("mount", "mnt"),
            ("mount", "mnt_parent"),
            ("mount", "mnt_mountpoint"),
            ("vfsmount", "mnt_root"),
            ("file", "f_path"),
            ("file", "f_path.dentry"),
            ("file", "f_inode"),
            ("task_struct", "tgid"),
            ("task_struct", "real_parent"),
        ] {
            let off = btf
                .member_offset(s, p)
                .unwrap_or_else(|e| panic!("{s}.{p}: {e}"));
            let size = btf
                .member_size(s, p)
                .unwrap_or_else(|e| panic!("{s}.{p}: {e}"));
            eprintln!("{s}.{p}: offset {off}, size {size}");
        }
        for (s, p, size) in [
            ("dentry", "d_parent", 8),
            ("inode", "i_ino", 8),
            ("inode", "i_sb", 8),
            ("super_block", "s_dev", 4),
            ("path", "dentry", 8),
            ("mount", "mnt_parent", 8),
            ("task_struct", "tgid", 4),
        ] {
            assert_eq!(btf.member_size(s, p).unwrap(), size, "{s}.{p}");
        }
        // Nested paths agree with their parts.
        assert_eq!(
            btf.member_offset("file", "f_path.dentry").unwrap(),
            btf.member_offset("file", "f_path").unwrap()
                + btf.member_offset("path", "dentry").unwrap()
        );
        assert_eq!(
            btf.member_offset("mount", "mnt.mnt_root").unwrap(),
            btf.member_offset("mount", "mnt").unwrap()
                + btf.member_offset("vfsmount", "mnt_root").unwrap()
        );
        // `path` is { struct vfsmount *mnt; struct dentry *dentry; } everywhere.
        assert_eq!(btf.member_offset("path", "mnt").unwrap(), 0);
        assert_eq!(btf.member_offset("path", "dentry").unwrap(), 8);
        assert!(matches!(
            btf.member_offset("dentry", "d_parnet").unwrap_err(),
            BtfError::NoMember { .. }
        ));
    }
}
