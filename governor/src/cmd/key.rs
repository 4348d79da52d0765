//! `governor key generate`, `governor key list` and `governor key protect`: create an
//! operator key pair, list the trusted keys with every problem in their directory, have a
//! running daemon protect a secret key file from agents.
//!
//! Keys belong on a machine where no agent runs: a root agent that reads a secret key can
//! sign its own leases. Run on a host with a live daemon, `key generate` says so (stderr)
//! and registers the new secret key with the daemon, which refuses agents every access to
//! it from then on, restarts included (`crate::secrets`).

use std::{fmt::Write as _, path::Path, process::ExitCode};

use anyhow::Context;

use crate::{
    admin::client,
    api::{
        protocol::Request,
        reply::{self, Protected},
    },
    cli::{KeyCommand, KeyGenerateArgs, KeyListArgs, KeyProtectArgs},
    signing::keys::{self, SecretKey, TrustedKey, TrustedKeys},
    time,
};

pub fn run(cmd: KeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::Generate(args) => generate(args),
        KeyCommand::List(args) => list(args),
        KeyCommand::Protect(args) => protect(args),
    }
}

/// Whether a daemon answers on `socket`: agents run on this host.
fn daemon_here(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// Asks the daemon on `socket` to protect the secret key at `secret`.
fn register(socket: &Path, secret: &Path) -> anyhow::Result<Protected> {
    let path = std::fs::canonicalize(secret)
        .with_context(|| format!("secret key file {}", secret.display()))?;
    Ok(reply::read(
        "protect-secret",
        client::call(
            socket,
            &Request::ProtectSecret {
                path: path.display().to_string(),
            },
        )?,
    )?)
}

/// Said on stderr by `key generate` on a host with a live daemon.
fn warn_on_agent_host(socket: &Path, secret: &Path) {
    eprintln!(
        "governor: WARNING: a governor daemon runs on this host (it answers on {}), so agents \
         run here too. Operator keys belong on a machine where no agent runs: an agent that \
         reads a secret key signs its own leases. Move {} to such a machine (and generate \
         keys there from now on).",
        socket.display(),
        secret.display()
    );
    match register(socket, secret) {
        Ok(_) => eprintln!(
            "governor: meanwhile the daemon protects {} from agents (every access, reads \
             included), also after restarts",
            secret.display()
        ),
        Err(e) => eprintln!(
            "governor: WARNING: the daemon could not protect {}: {e:#}; agents on this host \
             may read it: move it off this host, or run `governor key protect {}` as root",
            secret.display(),
            secret.display()
        ),
    }
}

fn protect(args: KeyProtectArgs) -> anyhow::Result<ExitCode> {
    // A secret key file is what the daemon protects: check it is one before asking.
    SecretKey::load(&args.file)?;
    let result = register(&args.socket, &args.file)?;
    println!(
        "{}: protected from agents (every access, reads included){}",
        result.path,
        if result.new { "" } else { " (it already was)" }
    );
    Ok(ExitCode::SUCCESS)
}

fn generate(args: KeyGenerateArgs) -> anyhow::Result<ExitCode> {
    let key = SecretKey::generate(&args.operator, time::now())?;
    let secret_dir = match args.secret_dir {
        Some(dir) => dir,
        None => keys::default_secret_dir()?,
    };
    let secret = secret_dir.join(format!("{}.key", key.id()));
    let public_file = key.public_file();
    let public = args.trusted_dir.join(public_file.file_name());
    key.create(&secret)?;
    if let Err(e) = public_file.create(&public) {
        // The pair is only useful whole: take back the secret this run just created.
        let _ = std::fs::remove_file(&secret);
        return Err(anyhow::Error::new(e).context(format!(
            "cannot write the public key (no key was kept); run as a user who may write to \
             {}, or choose another directory with --trusted-dir",
            args.trusted_dir.display()
        )));
    }
    println!("key id:     {}", key.id());
    println!("operator:   {}", key.operator());
    println!(
        "secret key: {} (mode 0600: keep it private, it signs leases as you)",
        secret.display()
    );
    println!(
        "public key: {} (copy it into the trusted-keys directory of every host that should \
         accept your signature)",
        public.display()
    );
    if daemon_here(&args.socket) {
        warn_on_agent_host(&args.socket, &secret);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct KeyRow {
    id: String,
    operator: String,
    file: String,
}

fn list(args: KeyListArgs) -> anyhow::Result<ExitCode> {
    let (trusted, problems) = TrustedKeys::load(&args.trusted_dir);
    let chosen: Vec<&TrustedKey> = match &args.id {
        Some(prefix) => vec![trusted.find(prefix)?],
        None => trusted.iter().collect(),
    };
    let rows: Vec<KeyRow> = chosen
        .into_iter()
        .map(|k| KeyRow {
            id: k.id.to_string(),
            operator: k.operator.clone(),
            file: k.file.display().to_string(),
        })
        .collect();
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    if args.json {
        let out = serde_json::json!({
            "trusted_dir": args.trusted_dir.display().to_string(),
            "keys": rows,
            "problems": problems,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("encode the list")?
        );
    } else {
        print!("{}", table(&rows, &problems));
        if trusted.is_empty() {
            println!(
                "no trusted keys: create one with `governor key generate --operator \"Name \
                 <email>\"` (its .pub goes into {})",
                args.trusted_dir.display()
            );
        } else if args.id.is_none() {
            println!(
                "{} trusted key(s) in {}",
                trusted.len(),
                args.trusted_dir.display()
            );
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn table(rows: &[KeyRow], problems: &[String]) -> String {
    let mut out = String::new();
    let op_w = rows
        .iter()
        .map(|r| r.operator.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let _ = writeln!(out, "{:<32}  {:<op_w$}  FILE", "KEY ID", "OPERATOR");
    if rows.is_empty() {
        let _ = writeln!(out, "(no trusted keys)");
    }
    for r in rows {
        let _ = writeln!(out, "{:<32}  {:<op_w$}  {}", r.id, r.operator, r.file);
    }
    if !problems.is_empty() {
        let _ = writeln!(out, "\nproblems (these files are not trusted):");
        for p in problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}
