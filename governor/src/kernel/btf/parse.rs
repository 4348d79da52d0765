//! Reading raw BTF: the header, the type section (one `btf_type` record after another, each
//! with its kind's trailing data) and the string section, into [`Btf`]'s tables. Every read is
//! bounds-checked; malformed input is a [`BtfError`], never a panic.

use std::collections::HashMap;

use super::{malformed, Btf, BtfError};

pub(super) const BTF_MAGIC: u16 = 0xeb9f;
pub(super) const BTF_VERSION: u8 = 1;
/// Size of the original `struct btf_header`.
pub(super) const HEADER_LEN: usize = 24;
/// Size of the extended header that also describes a "layout" section.
pub(super) const HEADER_LEN_WITH_LAYOUT: usize = 32;
/// Size of the common `struct btf_type` record.
pub(super) const TYPE_RECORD_LEN: usize = 12;
/// Pointer size on the 64-bit targets we support.
pub(super) const POINTER_SIZE: u32 = 8;
/// Bound on typedef/modifier chains, anonymous-member nesting and array
/// nesting, so that cyclic (malformed) BTF cannot loop or overflow the stack.
pub(super) const MAX_DEPTH: usize = 64;

pub(super) const KIND_VOID: u8 = 0;
pub(super) const KIND_INT: u8 = 1;
pub(super) const KIND_PTR: u8 = 2;
pub(super) const KIND_ARRAY: u8 = 3;
pub(super) const KIND_STRUCT: u8 = 4;
pub(super) const KIND_UNION: u8 = 5;
pub(super) const KIND_ENUM: u8 = 6;
pub(super) const KIND_FWD: u8 = 7;
pub(super) const KIND_TYPEDEF: u8 = 8;
pub(super) const KIND_VOLATILE: u8 = 9;
pub(super) const KIND_CONST: u8 = 10;
pub(super) const KIND_RESTRICT: u8 = 11;
pub(super) const KIND_FUNC: u8 = 12;
pub(super) const KIND_FUNC_PROTO: u8 = 13;
pub(super) const KIND_VAR: u8 = 14;
pub(super) const KIND_DATASEC: u8 = 15;
pub(super) const KIND_FLOAT: u8 = 16;
pub(super) const KIND_DECL_TAG: u8 = 17;
pub(super) const KIND_TYPE_TAG: u8 = 18;
pub(super) const KIND_ENUM64: u8 = 19;

pub(super) fn kind_name(kind: u8) -> &'static str {
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
pub(super) struct Type {
    pub(super) name_off: u32,
    pub(super) info: u32,
    /// `size` for INT/ENUM/ENUM64/STRUCT/UNION/DATASEC/FLOAT, otherwise the
    /// referenced type id.
    pub(super) size_or_type: u32,
    /// INT: the encoding word. STRUCT/UNION: index of the first member in
    /// `Btf::members`. ARRAY: index into `Btf::arrays`. Otherwise 0.
    pub(super) extra: u32,
}

impl Type {
    pub(super) const VOID: Type = Type {
        name_off: 0,
        info: 0,
        size_or_type: 0,
        extra: 0,
    };

    pub(super) fn kind(&self) -> u8 {
        // Bits 24-28; the mask makes the narrowing lossless.
        ((self.info >> 24) & 0x1f) as u8
    }

    pub(super) fn vlen(&self) -> usize {
        (self.info & 0xffff) as usize
    }

    pub(super) fn kind_flag(&self) -> bool {
        self.info >> 31 != 0
    }

    pub(super) fn is_composite(&self) -> bool {
        matches!(self.kind(), KIND_STRUCT | KIND_UNION)
    }
}

/// One `btf_member` of a struct or union.
#[derive(Clone, Copy, Debug)]
pub(super) struct Member {
    pub(super) name_off: u32,
    pub(super) ty: u32,
    pub(super) offset: u32,
}

/// One `btf_array`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Array {
    pub(super) elem: u32,
    pub(super) nelems: u32,
}

impl Btf {
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
pub(super) fn str_at(strings: &[u8], off: u32) -> &[u8] {
    let rest = strings.get(off as usize..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    rest.get(..end).unwrap_or_default()
}
