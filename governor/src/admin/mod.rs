//! The admin socket: a unix stream socket in governor's runtime directory
//! (`/run/governor/governor.sock`) speaking the line-delimited JSON protocol of [`protocol`].
//! Every peer is checked on accept ([`peer`]); each request has its handler file (`status`).
//! `governor status` is the client ([`client`]).
//!
//! The socket is mode 0666 because the daemon decides who may use it itself; the kernel
//! refuses agents' connects before that (the runtime directory is one of governor's own,
//! protected for unix-connect).

pub mod client;
pub mod peer;
pub mod protocol;
pub mod status;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use self::protocol::{ErrorCode, Request, Response};

/// A connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "another governor daemon is already listening on {0}; stop it first (two daemons \
         would fight over the same kernel and directories)"
    )]
    InUse(PathBuf),
    #[error("admin socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What request handlers need.
pub struct Context {
    pub access: peer::Access,
    pub status: status::Source,
}

/// The bound admin socket; the socket file is removed on drop. Bound before the daemon
/// touches the host (a second daemon stops there), served once the runtime runs.
pub struct Listener {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
}

impl Listener {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the admin socket at `path`. A socket file left by a daemon that is gone is
/// replaced; one a live daemon answers on is not.
pub fn listen(path: &Path) -> Result<Listener, AdminError> {
    let io = |source| AdminError::Io {
        path: path.to_owned(),
        source,
    };
    if path.symlink_metadata().is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(AdminError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(io)?;
    Ok(Listener {
        listener,
        path: path.to_owned(),
    })
}

/// Accepts connections until the task is dropped; each is served by its own task.
pub async fn serve(listener: Listener, ctx: Arc<Context>) -> std::io::Result<()> {
    let accepting = listener.listener.try_clone()?;
    accepting.set_nonblocking(true)?;
    let accepting = UnixListener::from_std(accepting)?;
    loop {
        match accepting.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, Arc::clone(&ctx)));
            }
            Err(e) => {
                tracing::warn!(error = %e, socket = %listener.path.display(), "admin socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: peer check, then request/reply lines until it closes, idles or misbehaves.
async fn connection(stream: UnixStream, ctx: Arc<Context>) {
    let (uid, pid) = match stream.peer_cred() {
        Ok(c) => (c.uid(), c.pid()),
        Err(e) => {
            tracing::warn!(error = %e, "admin socket: cannot read the peer's credentials; refused");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    if let Err(refused) = ctx.access.check(uid, pid) {
        tracing::warn!(uid, pid, reason = %refused, "admin socket: peer refused");
        let reply = Response::error(ErrorCode::Forbidden, refused.to_string());
        let _ = write.write_all(reply.to_line().as_bytes()).await;
        return;
    }
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = protocol::MAX_LINE as u64 + 1;
        let mut bounded = (&mut read).take(limit);
        let got = tokio::time::timeout(IDLE, bounded.read_until(b'\n', &mut line)).await;
        let n = match got {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        }
        let too_long = !complete && line.len() > protocol::MAX_LINE;
        let reply = if too_long {
            Response::error(
                ErrorCode::Malformed,
                format!(
                    "malformed request: longer than {} bytes",
                    protocol::MAX_LINE
                ),
            )
        } else {
            match protocol::parse(&line) {
                Ok(req) => handle(&ctx, &req),
                Err(reply) => reply,
            }
        };
        if write.write_all(reply.to_line().as_bytes()).await.is_err() || too_long || !complete {
            return;
        }
    }
}

/// Runs one request.
fn handle(ctx: &Context, req: &Request) -> Response {
    match req {
        Request::Status => match ctx.status.handle() {
            Ok(status) => match serde_json::to_value(status) {
                Ok(v) => Response::ok(v),
                Err(e) => Response::error(ErrorCode::Internal, e.to_string()),
            },
            Err(e) => Response::error(ErrorCode::Internal, format!("reading counters: {e}")),
        },
    }
}
