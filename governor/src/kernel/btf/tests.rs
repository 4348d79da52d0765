//! The reader against synthetic BTF blobs (every kind, truncations, corruption) and, when
//! present, the running kernel's own BTF.

mod builder;

use super::parse::*;
use super::*;
use builder::Builder;

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
        btf.member_offset("file", "f_path").unwrap() + btf.member_offset("path", "dentry").unwrap()
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
