//! `verify` with a fixed clock: expiry, approval counting, host binding, TTL, version,
//! issuer rules and tampering, each its own error.

use super::tests::{body, key, trusted, HOST, NOW};
use super::*;
use crate::signing::keys::{SecretKey, TrustedKeys};

const TTL: u64 = 900;

fn ctx(t: &TrustedKeys, now: u64, approvals: u32) -> VerifyContext<'_> {
    VerifyContext {
        trusted: t,
        host: HOST,
        now,
        max_ttl_secs: 3600,
        required_approvals: approvals,
    }
}

fn keys() -> (SecretKey, SecretKey, SecretKey) {
    (
        key(1, "Alice <alice@example.com>"),
        key(2, "bob@example.com"),
        key(3, "carol@example.com"),
    )
}

fn issued(by: &SecretKey) -> Lease {
    Lease::sign(body(), by, Role::Issuer, NOW)
}

#[test]
fn expiry_with_a_fixed_clock() {
    let (alice, _, _) = keys();
    let t = trusted(&[&alice]);
    let lease = issued(&alice);
    let end = NOW + TTL;
    let ok = verify(&lease, &ctx(&t, end - 1, 1)).expect("one second before the end");
    assert_eq!(ok.starts_at, None);
    for now in [end, end + 1, end + 86_400] {
        match verify(&lease, &ctx(&t, now, 1)) {
            Err(LeaseError::Expired { not_after, now: n }) => {
                assert_eq!((not_after, n), (end, now))
            }
            other => panic!("at {now}: {other:?}"),
        }
    }
    let msg = verify(&lease, &ctx(&t, end + 61, 1))
        .expect_err("expired")
        .to_string();
    assert!(msg.contains("2026-11-21T19:55:00Z (1m01s ago)"), "{msg}");
}

#[test]
fn a_lease_not_yet_in_force_verifies_and_says_when_it_starts() {
    let (alice, _, _) = keys();
    let t = trusted(&[&alice]);
    let lease = issued(&alice);
    let v = verify(&lease, &ctx(&t, NOW - 30, 1)).expect("future start is not an error");
    assert_eq!(v.starts_at, Some(NOW));
    assert_eq!(
        verify(&lease, &ctx(&t, NOW, 1))
            .expect("at start")
            .starts_at,
        None
    );
}

#[test]
fn approval_counting() {
    let (alice, bob, carol) = keys();
    let t = trusted(&[&alice, &bob]);
    let alone = issued(&alice);
    match verify(&alone, &ctx(&t, NOW, 2)) {
        Err(LeaseError::TooFewSigners {
            needed: 2,
            present: 1,
            ref untrusted,
        }) if untrusted.is_empty() => {}
        other => panic!("issuer alone: {other:?}"),
    }
    let msg = verify(&alone, &ctx(&t, NOW, 2))
        .expect_err("short")
        .to_string();
    assert!(msg.contains("governor lease cosign"), "{msg}");

    let mut two = alone.clone();
    two.cosign(&bob, NOW + 1).expect("cosign");
    let v = verify(&two, &ctx(&t, NOW, 2)).expect("issuer + approver");
    let ids: Vec<_> = v.signers.iter().map(|s| (s.key_id, s.role)).collect();
    assert_eq!(
        ids,
        vec![(alice.id(), Role::Issuer), (bob.id(), Role::Approver)]
    );
    assert_eq!(v.signers[0].operator, "Alice <alice@example.com>");

    // The issuer's key approving too (bypassing `cosign`'s refusal) counts once.
    let mut same = alone.clone();
    let mut by_alice = Lease::sign(body(), &alice, Role::Approver, NOW + 1);
    same.signatures.append(&mut by_alice.signatures);
    let dup = same.signatures[1].clone();
    same.signatures.push(dup);
    assert!(matches!(
        verify(&same, &ctx(&t, NOW, 2)),
        Err(LeaseError::TooFewSigners {
            needed: 2,
            present: 1,
            ..
        })
    ));

    // An approver whose key is not trusted here is not counted, and is named.
    let mut untrusted = alone.clone();
    untrusted.cosign(&carol, NOW + 1).expect("cosign");
    match verify(&untrusted, &ctx(&t, NOW, 2)) {
        Err(e @ LeaseError::TooFewSigners { present: 1, .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&carol.id().to_string()), "{msg}");
            assert!(msg.contains("carol@example.com"), "{msg}");
        }
        other => panic!("untrusted approver: {other:?}"),
    }
    // Zero required still needs the issuer; one required passes with the issuer alone.
    verify(&alone, &ctx(&t, NOW, 0)).expect("0 means the issuer suffices");
    verify(&alone, &ctx(&t, NOW, 1)).expect("issuer alone");
    // Three required, two trusted signers.
    assert!(matches!(
        verify(&two, &ctx(&t, NOW, 3)),
        Err(LeaseError::TooFewSigners {
            needed: 3,
            present: 2,
            ..
        })
    ));
}

#[test]
fn wrong_host_says_both_hosts() {
    let (alice, _, _) = keys();
    let t = trusted(&[&alice]);
    let lease = issued(&alice);
    let mut c = ctx(&t, NOW, 1);
    let other = "ffffffffffffffffffffffffffffffff";
    c.host = other;
    let err = verify(&lease, &c).expect_err("other host");
    assert!(matches!(err, LeaseError::WrongHost { .. }));
    let msg = err.to_string();
    assert!(msg.contains(HOST) && msg.contains(other), "{msg}");
}

#[test]
fn ttl_over_the_maximum_says_both() {
    let (alice, _, _) = keys();
    let t = trusted(&[&alice]);
    let lease = issued(&alice);
    let mut c = ctx(&t, NOW, 1);
    c.max_ttl_secs = TTL;
    verify(&lease, &c).expect("exactly the maximum");
    c.max_ttl_secs = TTL - 1;
    let err = verify(&lease, &c).expect_err("too long");
    assert!(matches!(err, LeaseError::TtlTooLong { ttl: TTL, max } if max == TTL - 1));
    let msg = err.to_string();
    assert!(msg.contains("15m00s") && msg.contains("14m59s"), "{msg}");
}

#[test]
fn empty_window_and_version_are_refused() {
    let (alice, _, _) = keys();
    let t = trusted(&[&alice]);
    let mut b = body();
    b.not_after = b.not_before;
    let lease = Lease::sign(b, &alice, Role::Issuer, NOW);
    assert!(matches!(
        verify(&lease, &ctx(&t, NOW - 100, 1)),
        Err(LeaseError::EmptyWindow { .. })
    ));
    let mut b = body();
    b.version = 2;
    let lease = Lease::sign(b, &alice, Role::Issuer, NOW);
    assert!(matches!(
        verify(&lease, &ctx(&t, NOW, 1)),
        Err(LeaseError::UnsupportedVersion { version: 2 })
    ));
}

#[test]
fn exactly_one_trusted_issuer() {
    let (alice, bob, carol) = keys();
    let t = trusted(&[&alice, &bob]);
    let mut none = issued(&alice);
    none.signatures.clear();
    assert!(matches!(
        verify(&none, &ctx(&t, NOW, 1)),
        Err(LeaseError::IssuerCount { found: 0 })
    ));
    let only_approver = Lease::sign(body(), &alice, Role::Approver, NOW);
    assert!(matches!(
        verify(&only_approver, &ctx(&t, NOW, 1)),
        Err(LeaseError::IssuerCount { found: 0 })
    ));
    let mut two = issued(&alice);
    two.signatures
        .extend(Lease::sign(body(), &bob, Role::Issuer, NOW).signatures);
    assert!(matches!(
        verify(&two, &ctx(&t, NOW, 1)),
        Err(LeaseError::IssuerCount { found: 2 })
    ));
    let mut by_stranger = issued(&carol);
    by_stranger.cosign(&alice, NOW).expect("cosign");
    by_stranger.cosign(&bob, NOW).expect("cosign");
    assert!(matches!(
        verify(&by_stranger, &ctx(&t, NOW, 2)),
        Err(LeaseError::IssuerUntrusted { .. })
    ));
}

#[test]
fn a_trusted_signature_that_does_not_verify_fails_the_lease() {
    let (alice, bob, _) = keys();
    let t = trusted(&[&alice, &bob]);
    let mut lease = issued(&alice);
    lease.cosign(&bob, NOW).expect("cosign");
    // Widened after both signed.
    lease.body.scopes[0].target = "/srv".into();
    match verify(&lease, &ctx(&t, NOW, 1)) {
        Err(e @ LeaseError::Tampered { .. }) => {
            assert!(e.to_string().contains(&alice.id().to_string()), "{e}");
            assert!(e.to_string().contains("was changed after"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Only the approver's signature broken: still a failure, never skipped, even though the
    // issuer alone would meet the count.
    let mut lease = issued(&alice);
    lease.cosign(&bob, NOW).expect("cosign");
    lease.signatures[1].signature[0] ^= 1;
    assert!(matches!(
        verify(&lease, &ctx(&t, NOW, 1)),
        Err(LeaseError::Tampered { ref key_id, .. }) if *key_id == bob.id().to_string()
    ));
    // Every byte of the issuer's signature.
    let good = issued(&alice);
    for i in 0..64 {
        let mut l = good.clone();
        l.signatures[0].signature[i] ^= 0x80;
        assert!(
            matches!(
                verify(&l, &ctx(&t, NOW, 1)),
                Err(LeaseError::Tampered { .. })
            ),
            "byte {i}"
        );
    }
}

#[test]
fn a_lease_round_tripped_through_its_file_verifies() {
    let (alice, bob, _) = keys();
    let t = trusted(&[&alice, &bob]);
    let mut lease = issued(&alice);
    lease.cosign(&bob, NOW).expect("cosign");
    let parsed = Lease::parse(&lease.to_toml(), "file").expect("parse");
    assert_eq!(
        verify(&parsed, &ctx(&t, NOW, 2))
            .expect("verifies")
            .signers
            .len(),
        2
    );
}
