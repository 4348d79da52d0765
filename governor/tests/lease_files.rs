//! The offline lease workflow through the built binary: two operators generate keys into
//! temporary directories, one issues a lease, the other cosigns it, `lease show` checks it;
//! then edited files (lease, public key, secret key mode) are refused. And `key generate` on
//! a host where a daemon answers: it warns, and asks the daemon to protect the secret key.
//!
//! Needs `/etc/machine-id` (the lease is bound to this host) and fails without it.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn governor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_governor"))
        .args(args)
        .env_remove("GOVERNOR_KEY_DIR")
        .output()
        .expect("run governor")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = governor(args);
    assert!(
        out.status.success(),
        "governor {args:?} failed: {}",
        text(&out)
    );
    text(&out)
}

fn fails(args: &[&str]) -> String {
    let out = governor(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "governor {args:?}: {}",
        text(&out)
    );
    text(&out)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Generates a key; returns (secret key path, public key path).
fn generate(dir: &Path, operator: &str) -> (PathBuf, PathBuf) {
    let out = ok(&[
        "key",
        "generate",
        "--operator",
        operator,
        "--secret-dir",
        dir.join("secret").to_str().expect("utf-8"),
        "--trusted-dir",
        dir.join("trusted").to_str().expect("utf-8"),
        // No daemon there: keys made off the hosts where agents run.
        "--socket",
        dir.join("no-daemon.sock").to_str().expect("utf-8"),
    ]);
    assert!(!out.contains("WARNING"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .expect("key id line")
        .trim()
        .to_owned();
    assert_eq!(id.len(), 32, "{out}");
    let secret = dir.join("secret").join(format!("{id}.key"));
    let public = dir.join("trusted").join(format!("{id}.pub"));
    assert!(out.contains(secret.to_str().expect("utf-8")), "{out}");
    assert!(out.contains(public.to_str().expect("utf-8")), "{out}");
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(mode(&public), 0o644);
    (secret, public)
}

#[test]
fn generate_issue_cosign_show_and_refuse_tampering() {
    assert!(
        Path::new("/etc/machine-id").exists(),
        "leases bind to /etc/machine-id; this host has none (run systemd-machine-id-setup)"
    );
    let dir = std::env::temp_dir().join(format!("governor-lease-files-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("mkdir");
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let (alice, _) = generate(&dir, "Alice Doe <alice@example.com>");
    let (bob, bob_pub) = generate(&dir, "bob@example.com");
    let trusted = s(&dir.join("trusted"));
    let out = ok(&["key", "list", "--trusted-dir", &trusted]);
    assert!(out.contains("Alice Doe <alice@example.com>") && out.contains("bob@example.com"));

    let target = dir.join("victim.db");
    fs::write(&target, "data").expect("write target");
    let lease = s(&dir.join("l.lease"));
    let scope = format!("unlink:{}", s(&target));
    ok(&[
        "lease",
        "issue",
        "--key",
        &s(&alice),
        "--agent",
        "coder",
        "--scope",
        &scope,
        "--scope",
        "connect:10.0.0.5:5432",
        "--pin",
        "--ttl",
        "15m",
        "--reason",
        "drop the stale db",
        "--ticket",
        "OPS-7",
        "--out",
        &lease,
    ]);
    let file = fs::read_to_string(&lease).expect("read lease");
    assert!(file.contains("pin = { dev = "), "{file}");
    assert!(file.contains("role = \"issuer\""), "{file}");

    let show = ["lease", "show", &lease, "--trusted-dir", &trusted];
    let two = [&show[..], &["--approvals", "2", "--max-ttl", "1h"]].concat();
    let out = fails(&two);
    assert!(
        out.contains("needs 2 distinct trusted signers, it has 1"),
        "{out}"
    );
    assert!(out.contains("(this host)"), "{out}");

    ok(&[
        "lease",
        "cosign",
        &lease,
        "--key",
        &s(&bob),
        "--trusted-dir",
        &trusted,
    ]);
    let out = fails(&[
        "lease",
        "cosign",
        &lease,
        "--key",
        &s(&bob),
        "--trusted-dir",
        &trusted,
    ]);
    assert!(out.contains("already signed this lease"), "{out}");
    let out = ok(&two);
    assert!(out.contains("check      ok on this host now"), "{out}");
    assert_eq!(out.matches("  valid (trusted: ").count(), 2, "{out}");
    assert!(out.contains("expires in 1"), "{out}");
    let out = governor(&[&two[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["check"]["ok"], true, "{json}");
    assert_eq!(json["signatures"][1]["role"], "approver", "{json}");
    assert_eq!(json["signatures"][1]["status"], "valid", "{json}");
    let out = fails(&[&show[..], &["--approvals", "2", "--max-ttl", "10m"]].concat());
    assert!(out.contains("at most 10m00s"), "{out}");

    // Reformatting keeps it valid: blank lines and comments dropped.
    let reformatted = s(&dir.join("reformatted.lease"));
    let squeezed: String = file_lines(&lease)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| format!("  {}\n", l.replace(" = ", "=")))
        .collect();
    fs::write(&reformatted, squeezed).expect("write");
    ok(&[
        "lease",
        "show",
        &reformatted,
        "--trusted-dir",
        &trusted,
        "--approvals",
        "2",
    ]);

    // A widened scope is refused by show and by cosign.
    let tampered = s(&dir.join("tampered.lease"));
    let widened = fs::read_to_string(&lease)
        .expect("read")
        .replace(&s(&target), &s(&dir));
    fs::write(&tampered, widened).expect("write");
    let out = fails(&["lease", "show", &tampered, "--trusted-dir", &trusted]);
    assert!(
        out.contains("INVALID: the lease was changed after this key signed it"),
        "{out}"
    );
    assert!(out.contains("REFUSED"), "{out}");
    let (carol, _) = generate(&dir, "carol@example.com");
    let out = fails(&[
        "lease",
        "cosign",
        &tampered,
        "--key",
        &s(&carol),
        "--trusted-dir",
        &trusted,
    ]);
    assert!(out.contains("was changed after"), "{out}");

    // An edited operator in a public key: the key is no longer trusted.
    let pub_text = fs::read_to_string(&bob_pub).expect("read pub");
    fs::write(
        &bob_pub,
        pub_text.replace("bob@example.com", "boss@example.com"),
    )
    .expect("write");
    let out = fails(&["key", "list", "--trusted-dir", &trusted]);
    assert!(out.contains("self-signature does not verify"), "{out}");
    let out = fails(&two);
    assert!(out.contains("untrusted key"), "{out}");

    // A secret key readable by others is refused.
    fs::set_permissions(&alice, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = fails(&[
        "lease",
        "issue",
        "--key",
        &s(&alice),
        "--agent",
        "coder",
        "--scope",
        &scope,
        "--ttl",
        "1m",
        "--reason",
        "r",
    ]);
    assert!(out.contains(&format!("chmod 600 {}", s(&alice))), "{out}");

    fs::remove_dir_all(&dir).expect("cleanup");
}

fn file_lines(path: &str) -> impl Iterator<Item = String> {
    fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
}

/// `key generate` where a daemon answers (a stand-in on a socket in a scratch directory):
/// the warning on stderr, and one `protect-secret` request naming the new secret key's
/// canonical path; `key protect` sends the same for an existing key.
#[test]
fn generate_on_a_host_with_a_daemon_warns_and_registers_the_secret_key() {
    use std::{
        io::{BufRead, BufReader, Write},
        os::unix::net::UnixListener,
    };
    let dir = std::env::temp_dir().join(format!("governor-key-here-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("mkdir");
    let socket = dir.join("governor.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    // The stand-in daemon: answers every request `ok`, and hands its lines to the test.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_ok() && !line.is_empty() {
                let _ = tx.send(line);
                let _ = conn.write_all(
                    b"{\"version\":1,\"ok\":true,\"result\":{\"path\":\"p\",\"new\":true}}\n",
                );
            }
        }
    });
    let sock = socket.to_str().expect("utf-8").to_owned();
    let out = governor(&[
        "key",
        "generate",
        "--operator",
        "carol@example.com",
        "--secret-dir",
        dir.join("secret").to_str().expect("utf-8"),
        "--trusted-dir",
        dir.join("trusted").to_str().expect("utf-8"),
        "--socket",
        &sock,
    ]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WARNING: a governor daemon runs on this host")
            && stderr.contains("Operator keys belong on a machine where no agent runs")
            && stderr.contains("the daemon protects"),
        "{all}"
    );
    let secret = fs::read_dir(dir.join("secret"))
        .expect("secret dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .expect("a secret key");
    let real = fs::canonicalize(&secret).expect("canonical");
    // The liveness probe connects without a request; the registration is the request.
    let request: serde_json::Value =
        serde_json::from_str(&rx.recv().expect("a request")).expect("json");
    assert_eq!(request["command"], "protect-secret", "{request}");
    assert_eq!(
        request["args"]["path"],
        real.to_str().expect("utf-8"),
        "{request}"
    );
    // `key protect` registers an existing key the same way.
    let out = ok(&[
        "key",
        "protect",
        secret.to_str().expect("utf-8"),
        "--socket",
        &sock,
    ]);
    assert!(out.contains("protected from agents"), "{out}");
    let request: serde_json::Value =
        serde_json::from_str(&rx.recv().expect("a request")).expect("json");
    assert_eq!(request["command"], "protect-secret", "{request}");
    // ...and refuses what is not a secret key, before asking the daemon.
    let e = fails(&["key", "protect", "/dev/zero", "--socket", &sock]);
    assert!(e.contains("must be a regular file"), "{e}");
    let _ = fs::remove_dir_all(&dir);
}
