//! From a struct name and a member path (`f_path.dentry`) to a byte offset and a size: finds
//! the struct, walks members (through anonymous structs and unions, typedefs and
//! const/volatile, never through pointers) and sizes the member's type.

use super::parse::{
    kind_name, str_at, Type, KIND_ARRAY, KIND_CONST, KIND_DATASEC, KIND_ENUM, KIND_ENUM64,
    KIND_FLOAT, KIND_INT, KIND_PTR, KIND_RESTRICT, KIND_STRUCT, KIND_TYPEDEF, KIND_TYPE_TAG,
    KIND_UNION, KIND_VOLATILE, MAX_DEPTH, POINTER_SIZE,
};
use super::{malformed, Btf, BtfError, Member};

/// A member found by [`Btf::find_member`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Found {
    /// Offset in bits from the start of the searched struct/union.
    pub(super) bit_offset: u64,
    pub(super) ty: u32,
    /// Bitfield width in bits, 0 if not a bitfield.
    pub(super) bitfield_bits: u32,
}

/// A fully resolved member path.
#[derive(Clone, Copy, Debug)]
pub(super) struct Resolved {
    pub(super) byte_offset: u32,
    pub(super) ty: u32,
    pub(super) bitfield_bits: u32,
}

impl Btf {
    pub(super) fn ty(&self, id: u32) -> Result<Type, BtfError> {
        self.types.get(id as usize).copied().ok_or_else(|| {
            malformed(format!(
                "reference to type #{id}, but there are only {} types",
                self.types.len()
            ))
        })
    }

    pub(super) fn members_of(&self, t: &Type) -> Result<&[Member], BtfError> {
        let start = t.extra as usize;
        start
            .checked_add(t.vlen())
            .and_then(|end| self.members.get(start..end))
            .ok_or_else(|| malformed("member index out of range"))
    }

    pub(super) fn name_eq(&self, name_off: u32, name: &[u8]) -> bool {
        let start = name_off as usize;
        let Some(end) = start.checked_add(name.len()) else {
            return false;
        };
        self.strings.get(start..end) == Some(name) && self.strings.get(end) == Some(&0)
    }

    /// Human-readable description of a struct/union for error messages.
    pub(super) fn describe(&self, id: u32) -> String {
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
    pub(super) fn find_struct(&self, name: &str) -> Result<u32, BtfError> {
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
    pub(super) fn strip_modifiers(&self, mut id: u32) -> Result<u32, BtfError> {
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
    pub(super) fn find_member(
        &self,
        id: u32,
        name: &[u8],
        depth: usize,
    ) -> Result<Option<Found>, BtfError> {
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

    pub(super) fn resolve(&self, struct_name: &str, path: &str) -> Result<Resolved, BtfError> {
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
    pub(super) fn type_size(&self, id: u32, path: &str) -> Result<u32, BtfError> {
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
