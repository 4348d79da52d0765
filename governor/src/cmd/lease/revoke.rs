//! `governor lease revoke ID`: take a lease out of the kernel at once.

use std::process::ExitCode;

use crate::{admin::client, api::protocol::Request, cli::LeaseRevokeArgs};

pub fn run(args: LeaseRevokeArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(
        &args.conn.socket,
        &Request::LeaseRevoke {
            id: args.id.clone(),
            reason: args.reason.clone(),
        },
    )?;
    if args.conn.json {
        println!("{result}");
    } else {
        println!(
            "lease {} revoked: its entries left the kernel; the agent is refused again",
            args.id
        );
    }
    Ok(ExitCode::SUCCESS)
}
