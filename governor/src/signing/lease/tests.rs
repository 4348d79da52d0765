//! The lease file and its canonical encoding: golden bytes, unambiguous field boundaries,
//! independence from TOML formatting, and signatures that break on any single-byte change.

use ed25519_dalek::Signature as EdSignature;

use super::{canonical::signed_message, *};
use crate::signing::keys::{SecretKey, TrustedKey, TrustedKeys};

pub const NOW: u64 = 1_795_290_000;
pub const HOST: &str = "0123456789abcdef0123456789abcdef";

pub fn key(seed: u8, operator: &str) -> SecretKey {
    SecretKey::from_seed([seed; 32], operator, NOW)
}

pub fn trusted(keys: &[&SecretKey]) -> TrustedKeys {
    let mut t = TrustedKeys::default();
    for k in keys {
        t.insert(TrustedKey {
            id: k.id(),
            operator: k.operator().to_owned(),
            key: k.verifying_key(),
            file: format!("{}.pub", k.id()).into(),
        });
    }
    t
}

pub fn body() -> LeaseBody {
    LeaseBody {
        version: 1,
        id: "l-test".into(),
        agent: "coder".into(),
        host: HOST.into(),
        scopes: vec![
            Scope {
                class: "unlink".into(),
                target: "/srv/prod/a.db".into(),
                pin: Some(Pin {
                    dev: 2049,
                    ino: 131,
                }),
            },
            Scope {
                class: "connect".into(),
                target: "10.0.0.5:5432".into(),
                pin: None,
            },
        ],
        not_before: NOW,
        not_after: NOW + 900,
        reason: "rotate the \"old\" db".into(),
        ticket: Some("OPS-1".into()),
        request: None,
    }
}

#[test]
fn canonical_golden_bytes() {
    let b = LeaseBody {
        version: 1,
        id: "i".into(),
        agent: "a".into(),
        host: "h".into(),
        scopes: vec![Scope {
            class: "c".into(),
            target: "/t".into(),
            pin: Some(Pin { dev: 1, ino: 2 }),
        }],
        not_before: 3,
        not_after: 4,
        reason: "r".into(),
        ticket: Some("t".into()),
        request: None,
    };
    let mut want: Vec<u8> = b"governor-lease-v1\0".to_vec();
    #[rustfmt::skip]
    want.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 1,       // version
        0, 0, 0, 1, b'i',             // id
        0, 0, 0, 1, b'a',             // agent
        0, 0, 0, 1, b'h',             // host
        0, 0, 0, 0, 0, 0, 0, 3,       // not_before
        0, 0, 0, 0, 0, 0, 0, 4,       // not_after
        0, 0, 0, 1, b'r',             // reason
        1, 0, 0, 0, 1, b't',          // ticket: Some("t")
        0,                            // request: None
        0, 0, 0, 0, 0, 0, 0, 1,       // one scope
        0, 0, 0, 1, b'c',             // class
        0, 0, 0, 2, b'/', b't',       // target
        1,                            // pin: Some
        0, 0, 0, 0, 0, 0, 0, 1,       // dev
        0, 0, 0, 0, 0, 0, 0, 2,       // ino
    ]);
    assert_eq!(b.canonical(), want);
}

#[test]
fn canonical_field_boundaries_are_unambiguous() {
    let mut a = body();
    let mut b = body();
    (a.agent, a.host) = ("ab".into(), "c".into());
    (b.agent, b.host) = ("a".into(), "bc".into());
    assert_ne!(a.canonical(), b.canonical());
    // An absent ticket differs from an empty one, and a scope's target from the next class.
    let (mut c, mut d) = (body(), body());
    c.ticket = None;
    d.ticket = Some(String::new());
    assert_ne!(c.canonical(), d.canonical());
    let (mut e, mut f) = (body(), body());
    e.scopes[0].target = "/x".into();
    e.scopes[1].class = "yconnect".into();
    f.scopes[0].target = "/xy".into();
    f.scopes[1].class = "connect".into();
    assert_ne!(e.canonical(), f.canonical());
    // Moving the ticket into the request field changes the encoding.
    let (mut g, mut h) = (body(), body());
    (g.ticket, g.request) = (Some("x".into()), None);
    (h.ticket, h.request) = (None, Some("x".into()));
    assert_ne!(g.canonical(), h.canonical());
}

fn signed() -> (Lease, SecretKey, SecretKey) {
    let alice = key(1, "Alice <alice@example.com>");
    let bob = key(2, "bob@example.com");
    let mut lease = Lease::sign(body(), &alice, Role::Issuer, NOW - 10);
    lease.cosign(&bob, NOW - 5).expect("cosign");
    (lease, alice, bob)
}

#[test]
fn toml_round_trips() {
    let (lease, _, _) = signed();
    let text = lease.to_toml();
    assert_eq!(Lease::parse(&text, "t").expect("parse"), lease);
    assert!(text.contains("not_after = 2026-11-21T19:55:00Z"), "{text}");
    assert!(text.contains("pin = { dev = 2049, ino = 131 }"), "{text}");
}

#[test]
fn huge_pins_round_trip_as_strings() {
    let alice = key(1, "alice@example.com");
    let mut b = body();
    b.scopes[0].pin = Some(Pin {
        dev: u64::MAX,
        ino: 1 << 63,
    });
    let lease = Lease::sign(b, &alice, Role::Issuer, NOW);
    assert_eq!(Lease::parse(&lease.to_toml(), "t").expect("parse"), lease);
}

#[test]
fn reformatting_the_file_keeps_signatures_valid() {
    let (lease, alice, bob) = signed();
    let t = trusted(&[&alice, &bob]);
    // Keys reordered, whitespace and comments changed, a time in another offset, the pin
    // as a table, strings as literal strings where possible.
    let sig = |i: usize| crate::signing::keys::encode(&lease.signatures[i].signature);
    let text = format!(
        r#"
  reason   =   "rotate the \"old\" db"   # why
agent='coder'
  ticket = 'OPS-1'
version=1
id = "l-test"
not_after = 2026-11-21T20:55:00+01:00
not_before = 2026-11-21T19:40:00Z
host = "{HOST}"

[[scope]]
target = '/srv/prod/a.db'
class = "unlink"
[scope.pin]
ino = 131
dev = 2049

[[scope]]
target = "10.0.0.5:5432"
class = "connect"

[[signature]]
signature = "{}"
role = "issuer"
signed_at = 2026-11-21T19:39:50Z
operator = "Alice <alice@example.com>"
key_id = "{}"

[[signature]]
role = 'approver'
key_id = "{}"
operator = "bob@example.com"
signed_at = 2026-11-21T19:39:55Z
signature = "{}"
"#,
        sig(0),
        alice.id(),
        bob.id(),
        sig(1)
    );
    let parsed = Lease::parse(&text, "reformatted").expect("parse");
    assert_eq!(parsed.body.canonical(), lease.body.canonical());
    assert_eq!(parsed, lease);
    for s in &parsed.signatures {
        assert!(matches!(
            check_signature(s, &parsed.body, &t),
            SignatureStatus::Valid(_)
        ));
    }
}

#[test]
fn flipping_any_byte_of_the_signed_message_fails() {
    let (lease, alice, _) = signed();
    let s = &lease.signatures[0];
    let msg = signed_message(&lease.body, s.role, s.signed_at, &s.key_id, &s.operator);
    let body_len = lease.body.canonical().len();
    assert!(msg.len() > body_len);
    let sig = EdSignature::from_bytes(&s.signature);
    let vk = alice.verifying_key();
    vk.verify_strict(&msg, &sig)
        .expect("intact message verifies");
    for i in 0..msg.len() {
        for bit in [0x01, 0x80] {
            let mut m = msg.clone();
            m[i] ^= bit;
            assert!(
                vk.verify_strict(&m, &sig).is_err(),
                "byte {i} (bit {bit:#x}) flipped still verifies"
            );
        }
    }
}

#[test]
fn flipping_any_byte_of_a_signature_fails() {
    let (lease, alice, bob) = signed();
    let t = trusted(&[&alice, &bob]);
    for which in 0..2 {
        for i in 0..64 {
            let mut l = lease.clone();
            l.signatures[which].signature[i] ^= 0x01;
            assert!(
                matches!(
                    check_signature(&l.signatures[which], &l.body, &t),
                    SignatureStatus::Invalid(_)
                ),
                "signature {which} byte {i}"
            );
        }
    }
}

#[test]
fn changing_any_body_field_after_signing_is_detected() {
    let (lease, alice, bob) = signed();
    let t = trusted(&[&alice, &bob]);
    let edits: Vec<fn(&mut LeaseBody)> = vec![
        |b| b.id.push('x'),
        |b| b.agent = "other".into(),
        |b| b.host.push('0'),
        |b| b.not_before -= 1,
        |b| b.not_after += 1,
        |b| b.reason.push('!'),
        |b| b.ticket = None,
        |b| b.request = Some("r-1".into()),
        |b| b.scopes[0].class = "rmdir".into(),
        |b| b.scopes[0].target = "/srv/prod".into(),
        |b| b.scopes[0].pin = None,
        |b| b.scopes[1].pin = Some(Pin { dev: 1, ino: 1 }),
        |b| {
            if let Some(p) = &mut b.scopes[0].pin {
                p.ino += 1;
            }
        },
        |b| {
            b.scopes.pop();
        },
        |b| b.scopes.swap(0, 1),
        |b| b.version = 2,
    ];
    for (n, edit) in edits.iter().enumerate() {
        let mut l = lease.clone();
        edit(&mut l.body);
        assert_ne!(l.body, lease.body, "edit {n} changes something");
        for s in &l.signatures {
            assert!(
                matches!(check_signature(s, &l.body, &t), SignatureStatus::Invalid(_)),
                "edit {n} not detected"
            );
        }
    }
}

#[test]
fn signer_fields_are_signed_too() {
    let (lease, alice, bob) = signed();
    let t = trusted(&[&alice, &bob]);
    let mut l = lease.clone();
    l.signatures[1].role = Role::Issuer;
    l.signatures[0].role = Role::Approver;
    assert!(matches!(
        check_signature(&l.signatures[0], &l.body, &t),
        SignatureStatus::Invalid(_)
    ));
    let mut l = lease.clone();
    l.signatures[1].signed_at += 1;
    assert!(matches!(
        check_signature(&l.signatures[1], &l.body, &t),
        SignatureStatus::Invalid(_)
    ));
    let mut l = lease.clone();
    l.signatures[1].operator = "Mallory <m@example.com>".into();
    assert!(matches!(
        check_signature(&l.signatures[1], &l.body, &t),
        SignatureStatus::Invalid(_)
    ));
}

#[test]
fn cosign_refuses_a_key_that_already_signed() {
    let (mut lease, alice, bob) = signed();
    for k in [&alice, &bob] {
        let err = lease.cosign(k, NOW).expect_err("second signature");
        assert!(matches!(err, LeaseError::AlreadySigned { .. }), "{err}");
    }
    assert_eq!(lease.signatures.len(), 2);
}

/// Parses `text` and returns the error's (line, field).
fn parse_error(text: &str) -> LeaseError {
    Lease::parse(text, "lease.toml").expect_err("must not parse")
}

#[test]
fn parse_errors_name_origin_line_and_field() {
    let (lease, _, _) = signed();
    let good = lease.to_toml();
    let line_of = |needle: &str| {
        good.lines()
            .position(|l| l.starts_with(needle))
            .expect("line present")
            + 1
    };
    let cases = [
        (
            "target = \"/srv/prod/a.db\"",
            "target = \"srv/prod\"",
            "scope[0].target",
        ),
        (
            "class = \"connect\"",
            "class = \"Connect\"",
            "scope[1].class",
        ),
        ("agent = \"coder\"", "agent = \"\"", "agent"),
        ("id = \"l-test\"", "id = \"l test\"", "id"),
        (
            "not_after = ",
            "not_after = 2026-11-21T19:55:00\n#",
            "not_after",
        ),
        (
            "operator = \"bob",
            "operator = \"bob\\u001b\"\n#",
            "signature[1].operator",
        ),
    ];
    for (needle, replacement, field) in cases {
        let line = line_of(needle);
        let text = good.replacen(needle, replacement, 1);
        match parse_error(&text) {
            LeaseError::Field {
                origin,
                line: l,
                field: f,
                ..
            } => assert_eq!(
                (origin.as_str(), l, f.as_str()),
                ("lease.toml", line, field)
            ),
            other => panic!("{field}: {other}"),
        }
    }
    let sig_line = line_of("signature = ");
    let text = good.replacen("signature = \"", "signature = \"AAAA", 1);
    assert!(matches!(
        parse_error(&text),
        LeaseError::Field { line, ref field, .. } if line == sig_line && field == "signature[0].signature"
    ));
}

#[test]
fn unknown_fields_and_syntax_errors_are_refused() {
    let (lease, _, _) = signed();
    let good = lease.to_toml();
    let text = good.replacen("agent = ", "granted = true\nagent = ", 1);
    let err = parse_error(&text);
    assert!(
        matches!(&err, LeaseError::Syntax { message, .. } if message.contains("granted")),
        "{err}"
    );
    let text = good.replacen("role = \"approver\"", "role = \"boss\"", 1);
    let err = parse_error(&text);
    assert!(matches!(err, LeaseError::Syntax { .. }), "{err}");
    let text = good.replacen(
        "[[scope]]\nclass = \"unlink\"",
        "[[scope]]\nsudo = 1\nclass = \"unlink\"",
        1,
    );
    assert!(matches!(parse_error(&text), LeaseError::Syntax { .. }));
    let err = parse_error("version = 1\nid = ");
    assert!(
        matches!(&err, LeaseError::Syntax { origin, line: 2, .. } if origin == "lease.toml"),
        "{err}"
    );
    assert!(err.to_string().contains("governor lease issue"), "{err}");
}

#[test]
fn a_lease_without_scopes_does_not_parse() {
    let (lease, _, _) = signed();
    let text = lease.to_toml();
    let cut = text.find("\n[[scope]]").expect("scope");
    let sigs = text.find("\n[[signature]]").expect("sig");
    let text = format!("{}{}", &text[..cut], &text[sigs..]);
    assert!(matches!(parse_error(&text), LeaseError::Field { ref field, .. } if field == "scope"));
}

#[test]
fn write_is_atomic_and_read_back() {
    let dir = std::env::temp_dir().join(format!("governor-lease-write-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("l.lease");
    std::fs::write(&path, "old").expect("write");
    let (lease, _, _) = signed();
    lease.write(&path).expect("write lease");
    assert_eq!(Lease::read(&path).expect("read"), lease);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("l.lease")],
        "no temp file left"
    );
    let err = Lease::read(&dir.join("missing")).expect_err("missing");
    assert!(matches!(err, LeaseError::Read(_)));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
