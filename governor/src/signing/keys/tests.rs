//! Key files: creation modes, refusal of exposed secrets, detection of edited public keys.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use super::*;

const NOW: u64 = 1_795_290_000;

/// A fresh, empty directory for one test.
fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("governor-keys-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

fn alice() -> SecretKey {
    SecretKey::from_seed([7; 32], "Alice Doe <alice@example.com>", NOW)
}

#[test]
fn secret_file_is_0600_from_creation_and_never_overwritten() {
    let dir = tmp("create");
    let path = dir.join("keys/sub/alice.key");
    let key = SecretKey::generate("alice@example.com", NOW).expect("generate");
    key.create(&path).expect("create");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().expect("parent")), 0o700);
    let loaded = SecretKey::load(&path).expect("load");
    assert_eq!(loaded.id(), key.id());
    assert_eq!(loaded.operator(), "alice@example.com");
    assert_eq!(loaded.sign(b"m"), key.sign(b"m"));
    let before = fs::read(&path).expect("read");
    let other = SecretKey::generate("bob@example.com", NOW).expect("generate");
    assert!(matches!(other.create(&path), Err(KeyError::Exists { .. })));
    assert_eq!(fs::read(&path).expect("read"), before, "file unchanged");
    fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn secret_readable_by_others_is_refused_with_chmod_advice() {
    let dir = tmp("exposed");
    let path = dir.join("k.key");
    alice().create(&path).expect("create");
    for m in [0o644, 0o640, 0o604] {
        fs::set_permissions(&path, fs::Permissions::from_mode(m)).expect("chmod");
        let err = SecretKey::load(&path).err().expect("refused");
        assert!(matches!(err, KeyError::Exposed { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("chmod 600 {}", path.display())),
            "{text}"
        );
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
    SecretKey::load(&path).expect("0400 is private");
    fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn secret_with_wrong_key_id_is_refused() {
    let dir = tmp("secret-id");
    let path = dir.join("k.key");
    alice().create(&path).expect("create");
    let text = fs::read_to_string(&path).expect("read");
    let id = alice().id().to_string();
    fs::write(&path, text.replace(&id, &"0".repeat(32))).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(matches!(
        SecretKey::load(&path),
        Err(KeyError::Fingerprint { .. })
    ));
    fs::remove_dir_all(&dir).expect("cleanup");
}

/// Writes alice's public key file into `dir` under its proper name.
fn trust_alice(dir: &Path) -> PathBuf {
    let public = alice().public_file();
    let path = dir.join(public.file_name());
    public.create(&path).expect("create pub");
    path
}

#[test]
fn public_key_file_loads_and_is_trusted() {
    let dir = tmp("trusted");
    let path = trust_alice(&dir);
    assert_eq!(mode(&path), 0o644);
    fs::write(dir.join("README"), "not a key").expect("write");
    let (keys, errors) = TrustedKeys::load(&dir);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(keys.len(), 1);
    let k = keys.get(&alice().id()).expect("alice trusted");
    assert_eq!(k.operator, "Alice Doe <alice@example.com>");
    assert_eq!(k.key, alice().verifying_key());
    assert_eq!(k.file, path);
    fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn tampered_operator_in_public_key_is_detected() {
    let dir = tmp("tampered");
    let path = trust_alice(&dir);
    let text = fs::read_to_string(&path).expect("read");
    fs::write(&path, text.replace("Alice Doe", "Mallory Doe")).expect("write");
    let (keys, errors) = TrustedKeys::load(&dir);
    assert!(keys.is_empty(), "an edited key is never trusted");
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(&errors[0], KeyError::SelfSignature { path: p } if *p == path),
        "{errors:?}"
    );
    fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn fingerprint_mismatch_is_detected() {
    let dir = tmp("fingerprint");
    let path = trust_alice(&dir);
    let text = fs::read_to_string(&path).expect("read");
    // Another key's public half, under alice's id and file name.
    let bob = SecretKey::from_seed([9; 32], "Alice Doe <alice@example.com>", NOW).public_file();
    let forged = text.replace(
        &crate::signing::keys::encode(alice().verifying_key().as_bytes()),
        &crate::signing::keys::encode(bob.key.as_bytes()),
    );
    assert_ne!(forged, text);
    fs::write(&path, forged).expect("write");
    let (keys, errors) = TrustedKeys::load(&dir);
    assert!(keys.is_empty());
    let text = errors[0].to_string();
    assert!(matches!(errors[0], KeyError::Fingerprint { .. }), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn file_name_must_be_the_key_id_and_duplicates_are_refused() {
    let dir = tmp("names");
    let path = trust_alice(&dir);
    fs::copy(&path, dir.join("zz-copy.pub")).expect("copy");
    fs::copy(&path, dir.join("0-alice.pub")).expect("copy");
    let (keys, errors) = TrustedKeys::load(&dir);
    assert_eq!(keys.len(), 1);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        matches!(&errors[0], KeyError::FileName { .. }),
        "{errors:?}"
    );
    assert!(
        matches!(&errors[1], KeyError::Duplicate { .. }),
        "{errors:?}"
    );
    fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn unknown_fields_and_missing_dir_are_errors() {
    let dir = tmp("unknown");
    let path = trust_alice(&dir);
    let text = fs::read_to_string(&path).expect("read");
    fs::write(&path, format!("{text}extra = 1\n")).expect("write");
    let (keys, errors) = TrustedKeys::load(&dir);
    assert!(keys.is_empty());
    assert!(
        matches!(errors[0], KeyError::Syntax { line: 8, .. }),
        "{errors:?}"
    );
    let (keys, errors) = TrustedKeys::load(&dir.join("missing"));
    assert!(keys.is_empty());
    assert!(matches!(errors[..], [KeyError::Io { .. }]));
    fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn key_ids_print_parse_and_match_prefixes() {
    let id = alice().id();
    let text = id.to_string();
    assert_eq!(text.len(), 32);
    assert_eq!(text.parse::<KeyId>().expect("parse"), id);
    for bad in ["", "xyz", &text[..31], &text.to_uppercase()] {
        assert!(bad.parse::<KeyId>().is_err(), "{bad}");
    }
    let mut keys = TrustedKeys::default();
    keys.insert(TrustedKey {
        id,
        operator: "alice@example.com".into(),
        key: alice().verifying_key(),
        file: PathBuf::from("a.pub"),
    });
    assert_eq!(keys.find(&text[..8].to_uppercase()).expect("prefix").id, id);
    assert!(matches!(
        keys.find(&text[..7]),
        Err(KeyError::ShortPrefix(_))
    ));
    let other = if text.starts_with('0') {
        "11111111"
    } else {
        "00000000"
    };
    assert!(matches!(keys.find(other), Err(KeyError::NotFound(_))));
}

#[test]
fn operators() {
    for good in [
        "alice@example.com",
        "Alice Doe <alice@example.com>",
        "A <a@b>",
    ] {
        assert!(check_operator(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        " alice@example.com",
        "Alice",
        "Alice <alice>",
        "<alice@example.com>",
        "Alice<alice@example.com>",
        "Alice <alice@example.com",
        "Alice <a@b@c>",
        "alice @example.com",
        "Alice\n<alice@example.com>",
    ] {
        assert!(check_operator(bad).is_err(), "{bad:?}");
    }
}
