//! `governor request`: run inside an agent, asks the operators for a lease over the request
//! socket, and optionally waits for their decision. It grants nothing by itself: the reply
//! says what the operator has to do.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{admin::client, cli::RequestArgs, requests::AgentRequest};

pub fn run(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let filed = client::call_line(
        &args.socket,
        &AgentRequest::Request {
            class: args.class.clone(),
            target: args.target.clone(),
            reason: args.reason.clone(),
            ttl_secs: args.ttl,
        }
        .to_line(),
    )?;
    let id = filed["id"].as_str().unwrap_or("?").to_owned();
    if args.json {
        println!("{filed}");
    } else {
        println!(
            "request {id} filed for {}:{} ({} s); an operator must approve it \
             (`governor lease pending`, then `governor lease approve {id} --key KEY`)",
            args.class,
            args.target,
            filed["ttl_secs"].as_u64().unwrap_or(0)
        );
    }
    let Some(wait) = args.wait else {
        return Ok(ExitCode::SUCCESS);
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let now = client::call_line(
            &args.socket,
            &AgentRequest::RequestStatus { id: id.clone() }.to_line(),
        )?;
        match now["state"].as_str() {
            Some("approved") => {
                report(
                    &args,
                    &now,
                    &format!(
                        "request {id} approved: lease {} is enforced",
                        now["lease"].as_str().unwrap_or("?")
                    ),
                );
                return Ok(ExitCode::SUCCESS);
            }
            Some("rejected") => {
                report(
                    &args,
                    &now,
                    &format!(
                        "request {id} rejected: {}",
                        now["reason"].as_str().unwrap_or("")
                    ),
                );
                return Ok(ExitCode::from(3));
            }
            _ if Instant::now() >= deadline => {
                report(
                    &args,
                    &now,
                    &format!(
                        "request {id} is still {} after {} s",
                        now["state"].as_str().unwrap_or("pending"),
                        wait
                    ),
                );
                return Ok(ExitCode::from(4));
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn report(args: &RequestArgs, reply: &Value, text: &str) {
    if args.json {
        println!("{reply}");
    } else {
        println!("{text}");
    }
}
