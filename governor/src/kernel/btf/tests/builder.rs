//! Emits synthetic BTF blobs for the reader's tests: a header, type records with their
//! trailing data, and a string section.

use super::super::parse::*;

/// Emits synthetic BTF blobs. Type ids are assigned sequentially from 1.
pub(super) struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    count: u32,
}

impl Builder {
    pub(super) fn new() -> Self {
        Builder {
            types: Vec::new(),
            strings: vec![0],
            count: 0,
        }
    }

    /// Id the next emitted type will get.
    pub(super) fn next_id(&self) -> u32 {
        self.count + 1
    }

    pub(super) fn s(&mut self, text: &str) -> u32 {
        if text.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(text.as_bytes());
        self.strings.push(0);
        off
    }

    pub(super) fn u32(&mut self, v: u32) {
        self.types.extend_from_slice(&v.to_le_bytes());
    }

    pub(super) fn record(
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

    pub(super) fn int(&mut self, name: &str, size: u32, bits: u32) -> u32 {
        let id = self.record(name, KIND_INT, false, 0, size);
        self.u32(bits);
        id
    }

    pub(super) fn refer(&mut self, kind: u8, name: &str, target: u32) -> u32 {
        self.record(name, kind, false, 0, target)
    }

    pub(super) fn array(&mut self, elem: u32, index: u32, nelems: u32) -> u32 {
        let id = self.record("", KIND_ARRAY, false, 0, 0);
        self.u32(elem);
        self.u32(index);
        self.u32(nelems);
        id
    }

    /// `members`: (name, type, raw offset word).
    pub(super) fn composite(
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

    pub(super) fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(KIND_STRUCT, name, size, false, members)
    }

    pub(super) fn fwd(&mut self, name: &str) -> u32 {
        self.record(name, KIND_FWD, false, 0, 0)
    }

    pub(super) fn enumeration(&mut self, name: &str, values: &[(&str, u32)]) -> u32 {
        let id = self.record(name, KIND_ENUM, false, values.len() as u32, 4);
        for &(n, v) in values {
            let n = self.s(n);
            self.u32(n);
            self.u32(v);
        }
        id
    }

    pub(super) fn enum64(&mut self, name: &str, values: &[(&str, u64)]) -> u32 {
        let id = self.record(name, KIND_ENUM64, false, values.len() as u32, 8);
        for &(n, v) in values {
            let n = self.s(n);
            self.u32(n);
            self.u32(v as u32);
            self.u32((v >> 32) as u32);
        }
        id
    }

    pub(super) fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let id = self.record("", KIND_FUNC_PROTO, false, params.len() as u32, ret);
        for &(n, t) in params {
            let n = self.s(n);
            self.u32(n);
            self.u32(t);
        }
        id
    }

    pub(super) fn var(&mut self, name: &str, ty: u32) -> u32 {
        let id = self.record(name, KIND_VAR, false, 0, ty);
        self.u32(1); // linkage: global
        id
    }

    pub(super) fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let id = self.record(name, KIND_DATASEC, false, vars.len() as u32, size);
        for &(t, off, sz) in vars {
            self.u32(t);
            self.u32(off);
            self.u32(sz);
        }
        id
    }

    pub(super) fn decl_tag(&mut self, name: &str, target: u32, component: u32) -> u32 {
        let id = self.record(name, KIND_DECL_TAG, false, 0, target);
        self.u32(component);
        id
    }

    pub(super) fn build(&self) -> Vec<u8> {
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
