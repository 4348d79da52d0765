//! `governor key generate` and `governor key list`: create an operator key pair, list the
//! trusted keys with every problem in their directory.

use std::{fmt::Write as _, process::ExitCode};

use anyhow::Context;

use crate::{
    authority::{
        keys::{self, SecretKey, TrustedKey, TrustedKeys},
        time,
    },
    cli::{KeyCommand, KeyGenerateArgs, KeyListArgs},
};

pub fn run(cmd: KeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::Generate(args) => generate(args),
        KeyCommand::List(args) => list(args),
    }
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
