//! `governor request`: run inside an agent, asks the operators for a lease over the request
//! socket, and optionally waits for their decision. It grants nothing by itself: the reply
//! says what the operator has to do.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    admin::client,
    api::{
        agent::AgentRequest,
        reply::{self, RequestState, RequestView},
    },
    cli::RequestArgs,
};

pub fn run(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let filed_reply = client::call_line(
        &args.socket,
        &AgentRequest::Request {
            class: args.class.clone(),
            target: args.target.clone(),
            reason: args.reason.clone(),
            ttl_secs: args.ttl,
        }
        .to_line(),
    )?;
    let filed: RequestView = reply::read("request", filed_reply.clone())?;
    let id = filed.id.clone();
    if args.json {
        println!("{filed_reply}");
    } else {
        println!(
            "request {id} filed for {}:{} ({} s); an operator must approve it \
             (`governor lease pending`, then `governor lease approve {id} --key KEY`)",
            args.class, args.target, filed.ttl_secs
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
        let request: RequestView = reply::read("request-status", now.clone())?;
        match request.state {
            RequestState::Approved => {
                report(
                    &args,
                    &now,
                    &format!(
                        "request {id} approved: lease {} is enforced",
                        request.lease.as_deref().unwrap_or_default()
                    ),
                );
                return Ok(ExitCode::SUCCESS);
            }
            RequestState::Rejected => {
                report(
                    &args,
                    &now,
                    &format!("request {id} rejected: {}", request.reason),
                );
                return Ok(ExitCode::from(3));
            }
            _ if Instant::now() >= deadline => {
                report(
                    &args,
                    &now,
                    &format!(
                        "request {id} is still {} after {} s",
                        request.state.name(),
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
