//! `policy-reload` on the admin socket: replace the enforced policy, atomically. The socket
//! side only checks the request and hands it to the daemon's [`Reload`] (`crate::daemon::reload`),
//! which runs every check and builds the new kernel generation; a refusal comes back with
//! what failed (file:line:col and field for a policy error) and that nothing changed.

use std::{future::Future, path::PathBuf, pin::Pin};

use super::{Context, Peer};
use crate::api::{
    protocol::{ErrorCode, Response},
    reply::Reloaded,
};

/// Why a reload changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

/// What a reload returns: the reply's `result`, or the refusal.
pub type Outcome = Pin<Box<dyn Future<Output = Result<Reloaded, Refusal>> + Send>>;

/// Reloads the daemon's policy; `file` replaces the daemon's policy file when given.
pub trait Reload: Send + Sync {
    fn reload(&self, file: Option<PathBuf>, uid: u32) -> Outcome;
}

/// Checks the request, then reloads.
pub async fn reload(ctx: &Context, peer: &Peer, file: Option<String>) -> Response {
    let file = match file.map(|f| check_file(&f)).transpose() {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let Some(reloader) = &ctx.reload else {
        return Response::error(
            ErrorCode::Internal,
            "this daemon cannot reload its policy; restart it on the new policy",
        );
    };
    match reloader.reload(file, peer.uid).await {
        Ok(v) => Response::reply(&v),
        Err(r) => Response::error(r.code, r.message),
    }
}

/// The daemon reads `file` from its own working directory: only an absolute path means what
/// the operator meant (`governor policy reload` sends one).
fn check_file(file: &str) -> Result<PathBuf, Response> {
    if file.is_empty() {
        return Err(Response::error(
            ErrorCode::Malformed,
            "malformed request: `file` is empty; leave it out to reload the daemon's policy file",
        ));
    }
    let path = PathBuf::from(file);
    if !path.is_absolute() {
        return Err(Response::error(
            ErrorCode::Rejected,
            format!(
                "policy file `{file}` is not an absolute path; the daemon does not share your \
                 working directory (`governor policy reload --policy FILE` sends an absolute one)"
            ),
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_must_be_absolute_and_not_empty() {
        assert_eq!(
            check_file("/etc/governor/p.toml"),
            Ok(PathBuf::from("/etc/governor/p.toml"))
        );
        let e = check_file("p.toml")
            .expect_err("relative")
            .error
            .expect("error");
        assert_eq!(e.code, ErrorCode::Rejected);
        assert!(
            e.message.contains("`p.toml` is not an absolute path"),
            "{}",
            e.message
        );
        let e = check_file("").expect_err("empty").error.expect("error");
        assert_eq!(e.code, ErrorCode::Malformed);
    }
}
