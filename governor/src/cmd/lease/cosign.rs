//! `governor lease cosign FILE --key SECRET`: shows what the lease grants, checks the
//! signatures already on it against the trusted keys (a broken one is refused), adds the
//! approver's signature and rewrites the file atomically (or writes `--out`).

use std::process::ExitCode;

use crate::{
    cli::LeaseCosignArgs,
    signing::{
        keys::{SecretKey, TrustedKeys},
        lease::{self, Lease, LeaseError, SignatureStatus},
    },
    time,
};

pub fn run(args: LeaseCosignArgs) -> anyhow::Result<ExitCode> {
    let mut lease = Lease::read(&args.file)?;
    let key = SecretKey::load(&args.key)?;
    let (trusted, problems) = TrustedKeys::load(&args.trusted_dir);
    for p in &problems {
        eprintln!("governor: warning: trusted keys: {p}");
    }
    for sig in &lease.signatures {
        match lease::check_signature(sig, &lease.body, &trusted) {
            SignatureStatus::Valid(_) => {}
            SignatureStatus::Invalid(k) => {
                return Err(LeaseError::Tampered {
                    key_id: k.id.to_string(),
                    operator: k.operator.clone(),
                }
                .into())
            }
            SignatureStatus::Untrusted => eprintln!(
                "governor: warning: the {} signature by {} ({}) cannot be checked: its key is \
                 not in {}",
                sig.role,
                sig.key_id,
                sig.operator,
                args.trusted_dir.display()
            ),
        }
    }
    eprint!(
        "{}",
        super::show::body_text(&lease.body, lease::host_id().ok().as_deref(), time::now())
    );
    lease.cosign(&key, time::now())?;
    let out = args.out.as_ref().unwrap_or(&args.file);
    lease.write(out)?;
    eprintln!(
        "approved by {} ({}); {} signature(s) now; wrote {}",
        key.id(),
        key.operator(),
        lease.signatures.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
