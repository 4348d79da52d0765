//! The client side of the admin socket: send one request, read its reply, and turn every way
//! this can fail into an error that says what to do.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use crate::api::protocol::{ErrorCode, Request, Response};

/// How long to wait for the daemon's reply.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the governor daemon is not running: there is no admin socket at {0} (start it with \
         `governor daemon`, or pass --socket if it uses another runtime directory)"
    )]
    NotRunning(PathBuf),
    #[error(
        "the governor daemon is not running: nothing listens on {0} (a socket left by a \
         daemon that stopped)"
    )]
    Stale(PathBuf),
    #[error(
        "permission denied connecting to {path} ({source}): run as root or as a uid the daemon \
         was given with --admin-uid; tasks in agent cgroups may never connect"
    )]
    Permission {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the daemon on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon refused the request ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
    #[error(
        "the daemon's reply is not understood ({0}); is `governor` the same version as the daemon?"
    )]
    BadReply(String),
}

/// Sends `req` to the daemon listening on `socket`; its `result` on success.
pub fn call(socket: &Path, req: &Request) -> Result<Value, ClientError> {
    call_line(socket, &req.to_line())
}

/// [`call`] for a request that may take long (a policy reload verifies every program):
/// waits up to `timeout` for the reply.
pub fn call_waiting(socket: &Path, req: &Request, timeout: Duration) -> Result<Value, ClientError> {
    call_line_waiting(socket, &req.to_line(), timeout)
}

/// Sends one request line (ending in a newline) to `socket`; the reply's `result`.
pub fn call_line(socket: &Path, request_line: &str) -> Result<Value, ClientError> {
    call_line_waiting(socket, request_line, TIMEOUT)
}

/// [`call`] for a request that carries the instant it is sent: `make` builds it once the
/// connection is made, right before it is written (the kill switch's `sent_boot_ns`).
pub fn call_stamped(socket: &Path, make: impl FnOnce() -> Request) -> Result<Value, ClientError> {
    let stream = connect(socket)?;
    exchange(stream, socket, &make().to_line(), TIMEOUT)
}

fn connect(socket: &Path) -> Result<UnixStream, ClientError> {
    UnixStream::connect(socket).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => ClientError::NotRunning(socket.to_owned()),
        Some(libc::ECONNREFUSED) => ClientError::Stale(socket.to_owned()),
        Some(libc::EACCES | libc::EPERM) => ClientError::Permission {
            path: socket.to_owned(),
            source: e,
        },
        _ => ClientError::Io {
            path: socket.to_owned(),
            source: e,
        },
    })
}

fn call_line_waiting(
    socket: &Path,
    request_line: &str,
    timeout: Duration,
) -> Result<Value, ClientError> {
    exchange(connect(socket)?, socket, request_line, timeout)
}

/// Writes `request_line` on `stream` and reads the reply.
fn exchange(
    mut stream: UnixStream,
    socket: &Path,
    request_line: &str,
    timeout: Duration,
) -> Result<Value, ClientError> {
    let io = |source: std::io::Error| ClientError::Io {
        path: socket.to_owned(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    // A refused peer gets its reply without the daemon reading the request, and the write
    // may then fail: read the reply whatever happened to the write.
    let written = stream.write_all(request_line.as_bytes());
    let mut line = String::new();
    let read = BufReader::new(&stream).read_line(&mut line);
    if line.is_empty() {
        written.map_err(io)?;
        read.map_err(io)?;
        return Err(ClientError::BadReply(
            "the daemon closed the connection without a reply".into(),
        ));
    }
    let reply: Response =
        serde_json::from_str(line.trim_end()).map_err(|e| ClientError::BadReply(e.to_string()))?;
    match (reply.ok, reply.result, reply.error) {
        (true, Some(result), _) => Ok(result),
        (false, _, Some(e)) => Err(ClientError::Refused {
            code: e.code,
            message: e.message,
        }),
        _ => Err(ClientError::BadReply(
            "neither a result nor an error".into(),
        )),
    }
}
