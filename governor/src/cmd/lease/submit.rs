//! `governor lease submit FILE`: hand a signed lease to the daemon, which verifies it and
//! installs it in the kernel; prints when it is enforced.

use std::process::ExitCode;

use super::view::print_lease;
use crate::{
    admin::client,
    api::{protocol::Request, reply},
    cli::LeaseSubmitArgs,
    host::files,
};

pub fn run(args: LeaseSubmitArgs) -> anyhow::Result<ExitCode> {
    let text = files::read_text(&args.file, files::LEASE)?;
    let result = client::call(
        &args.conn.socket,
        &Request::LeaseSubmit {
            lease: text,
            origin: args.file.display().to_string(),
        },
    )?;
    if args.conn.json {
        println!("{result}");
    } else {
        print_lease(&reply::read("lease-submit", result)?);
    }
    Ok(ExitCode::SUCCESS)
}
