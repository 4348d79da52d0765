//! `governor lease reject REQ --reason TEXT`: turn an agent's request down.

use std::process::ExitCode;

use crate::{admin::client, api::protocol::Request, cli::LeaseRejectArgs};

pub fn run(args: LeaseRejectArgs) -> anyhow::Result<ExitCode> {
    let result = client::call(
        &args.conn.socket,
        &Request::RequestReject {
            id: args.id.clone(),
            reason: args.reason.clone(),
        },
    )?;
    if args.conn.json {
        println!("{result}");
    } else {
        println!("request {} rejected", args.id);
    }
    Ok(ExitCode::SUCCESS)
}
