//! The daemon's sockets: the admin socket, a unix stream socket in governor's runtime
//! directory (`/run/governor/governor.sock`), and the agents' request socket ([`requests`]),
//! both speaking the line-delimited JSON protocol of [`crate::api`]. Every peer is checked on
//! accept ([`peer`]); each request has its handler file (`status`, `leases`, `halt`,
//! `reload`, `secret`). The CLI's side is [`client`]. What a policy reload replaces (who is
//! an agent, the agents' cgroups, the status's fixed part) is held in [`Shared`] values the
//! daemon swaps.
//!
//! The socket is mode 0666 because the daemon decides who may use it itself; the kernel
//! refuses agents' connects before that (the runtime directory is one of governor's own,
//! protected for unix-connect).
//!
//! Owns: socket serving (framing, admission, timeouts) and the handlers that turn a request
//! into a reply. May import `crate::api` (the protocol and reply types), the lease manager
//! (`crate::leases`), `crate::host` (freeze), `crate::kernel` (reader counters) and
//! `crate::lineage` (halt rows). Policy reload and secret protection reach it through the
//! [`reload::Reload`] and [`secret::Protect`] traits the daemon implements, so it never
//! imports `crate::daemon`.

pub mod client;
mod halt;
mod leases;
mod rollback;
pub mod secret;

pub use leases::error_reply;
pub mod peer;
pub mod reload;
pub mod requests;
pub mod status;

use std::{
    future::Future,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use crate::api::protocol::{self, ErrorCode, Request, Response};
use crate::leases::LeaseManager;

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

/// A value a policy reload replaces as a whole, read by the socket handlers.
pub type Shared<T> = Arc<RwLock<T>>;

/// A new shared value.
pub fn shared<T>(value: T) -> Shared<T> {
    Arc::new(RwLock::new(value))
}

/// A copy of the current value. A poisoned lock still holds a whole value: writers replace
/// it in one assignment.
pub fn current<T: Clone>(value: &Shared<T>) -> T {
    value.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// A connected client, as `SO_PEERCRED` and the service's admission check saw it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
    /// The agent whose cgroup the peer runs in (request socket peers only).
    pub agent: Option<String>,
}

/// A future a handler returns.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// What one socket serves: who may connect, and the answer to each request line. The line
/// framing (one JSON object per line, bounded, idle timeout) is shared.
pub trait Service: Send + Sync + 'static {
    /// "admin socket" or "request socket", for the log.
    fn name(&self) -> &'static str;
    /// Checks a peer on accept; the error is sent back as a `forbidden` reply.
    fn admit(&self, uid: u32, pid: Option<i32>) -> Result<Peer, String>;
    /// Answers one request line.
    fn handle<'a>(&'a self, peer: &'a Peer, line: &'a [u8]) -> Reply<'a>;
}

/// What the admin socket's handlers need.
pub struct Context {
    pub access: Shared<peer::Access>,
    pub status: status::Source,
    /// The lease manager (absent in tests of the status request alone).
    pub leases: Option<Arc<Mutex<LeaseManager>>>,
    /// Each agent's cgroup as an absolute path (for halts).
    pub agent_cgroups: Shared<Vec<(String, PathBuf)>>,
    /// Policy reloads (absent in tests that do not reload).
    pub reload: Option<Arc<dyn reload::Reload>>,
    /// Registered secret key files (absent in tests that do not register any).
    pub secrets: Option<Arc<dyn secret::Protect>>,
}

impl Service for Context {
    fn name(&self) -> &'static str {
        "admin socket"
    }

    fn admit(&self, uid: u32, pid: Option<i32>) -> Result<Peer, String> {
        current(&self.access)
            .check(uid, pid)
            .map_err(|e| e.to_string())?;
        Ok(Peer {
            uid,
            pid,
            agent: None,
        })
    }

    fn handle<'a>(&'a self, peer: &'a Peer, line: &'a [u8]) -> Reply<'a> {
        Box::pin(async move {
            match protocol::parse(line) {
                Ok(req) => handle(self, peer, req).await,
                Err(reply) => reply,
            }
        })
    }
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
pub async fn serve<S: Service>(listener: Listener, ctx: Arc<S>) -> std::io::Result<()> {
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
async fn connection<S: Service>(stream: UnixStream, ctx: Arc<S>) {
    let (uid, pid) = match stream.peer_cred() {
        Ok(c) => (c.uid(), c.pid()),
        Err(e) => {
            tracing::warn!(error = %e, "admin socket: cannot read the peer's credentials; refused");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    let peer = match ctx.admit(uid, pid) {
        Ok(peer) => peer,
        Err(refused) => {
            tracing::warn!(uid, pid, reason = %refused, "{}: peer refused", ctx.name());
            let reply = Response::error(ErrorCode::Forbidden, refused);
            let _ = write.write_all(reply.to_line().as_bytes()).await;
            return;
        }
    };
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
            ctx.handle(&peer, &line).await
        };
        if write.write_all(reply.to_line().as_bytes()).await.is_err() || too_long || !complete {
            return;
        }
    }
}

/// Runs one request.
async fn handle(ctx: &Context, peer: &Peer, req: Request) -> Response {
    match req {
        Request::Status => match ctx.status.handle() {
            Ok(status) => match serde_json::to_value(status) {
                Ok(v) => Response::ok(v),
                Err(e) => Response::error(ErrorCode::Internal, e.to_string()),
            },
            Err(e) => Response::error(ErrorCode::Internal, format!("reading counters: {e}")),
        },
        Request::Halt {
            agents,
            kill,
            reason,
            sent_boot_ns,
            rollback,
        } => {
            halt::halt(
                ctx,
                peer,
                &agents,
                halt::How {
                    kill,
                    reason,
                    sent_boot_ns,
                    rollback,
                },
            )
            .await
        }
        Request::Rollback { of, revoke, force } => {
            rollback::rollback(ctx, peer, of, revoke, force).await
        }
        Request::Resume { agents } => halt::resume(ctx, peer, &agents).await,
        Request::PolicyReload { file } => reload::reload(ctx, peer, file).await,
        Request::ProtectSecret { path } => secret::protect(ctx, peer, path).await,
        other => {
            let Some(auth) = &ctx.leases else {
                return Response::error(
                    ErrorCode::Internal,
                    "this daemon has no lease manager".to_owned(),
                );
            };
            leases::handle(auth, peer, other)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use super::*;
    use crate::{
        admin::client::{self, ClientError},
        api::status::{Counters, Status},
        kernel::events::ReaderStats,
    };

    /// A fixed status reply (for the admin tests here and in `secret`).
    pub(super) fn fixed() -> Status {
        serde_json::from_value(serde_json::json!({
            "daemon": {"pid": 1, "uptime_secs": 0, "version": "test"},
            "policy": {"name": "p", "owner": "o", "file": "f"},
            "agents": [],
            "kernel": {"release": "r", "mode": "full", "enforced": [], "not_enforced": []},
            "own_dirs": [],
            "counters": Counters::default(),
            "events": {"received": 0, "malformed": 0, "overflowed": 0},
        }))
        .expect("a Status")
    }

    /// A runtime, and the socket path in a fresh directory named after `name`.
    fn fresh(name: &str) -> (tokio::runtime::Runtime, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("governor-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        (rt, dir.join("governor.sock"))
    }

    /// The context of a server allowing this process's uid, with `agent_cgroups`.
    fn context(
        agent_cgroups: Vec<(String, PathBuf)>,
        counters: Box<status::CounterReader>,
    ) -> Context {
        // SAFETY: plain getuid(2).
        let uid = unsafe { libc::getuid() };
        Context {
            access: shared(peer::Access {
                admin_uids: vec![uid],
                agent_cgroups,
            }),
            status: status::Source {
                fixed: shared(fixed()),
                started: std::time::Instant::now(),
                counters,
                reader: Arc::new(ReaderStats::default()),
                leases: None,
                lineage_db: None,
            },
            leases: None,
            agent_cgroups: shared(Vec::new()),
            reload: None,
            secrets: None,
        }
    }

    /// A server on a socket in a fresh directory, allowing this process's uid, whose
    /// `denied` counter is 7.
    fn server(name: &str) -> (tokio::runtime::Runtime, PathBuf) {
        let (rt, path) = fresh(name);
        let ctx = context(
            Vec::new(),
            Box::new(|| {
                Ok(Counters {
                    denied: 7,
                    ..Counters::default()
                })
            }),
        );
        let listener = listen(&path).expect("listen");
        rt.spawn(serve(listener, Arc::new(ctx)));
        (rt, path)
    }

    #[test]
    fn serves_status_and_answers_bad_requests() {
        let (rt, path) = server("serve");
        let result = client::call(&path, &Request::Status).expect("status");
        assert_eq!(result["counters"]["denied"], 7, "{result}");
        assert_eq!(result["policy"]["name"], "p", "{result}");

        // Several requests on one connection; a bad one does not end it.
        let mut conn = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        conn.write_all(b"{\"version\":2,\"command\":\"status\"}\n{\"version\":1,\"command\":\"nope\"}\n{\"version\":1,\"command\":\"status\"}\n")
            .expect("write");
        let mut lines = BufReader::new(&conn).lines();
        let mut next = || -> Response {
            serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("a reply")
        };
        assert_eq!(
            next().error.map(|e| e.code),
            Some(ErrorCode::UnsupportedVersion)
        );
        assert_eq!(
            next().error.map(|e| e.code),
            Some(ErrorCode::UnknownCommand)
        );
        assert!(next().ok);

        // A line longer than the limit is refused and the connection closed.
        let mut conn = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        let long = vec![b'x'; protocol::MAX_LINE + 10];
        let _ = conn.write_all(&long);
        let mut reply = String::new();
        BufReader::new(&conn).read_line(&mut reply).expect("read");
        assert!(reply.contains("longer than 65536 bytes"), "{reply}");

        // A second daemon cannot take the socket over.
        assert!(matches!(listen(&path), Err(AdminError::InUse(_))));
        drop(rt);
        // The listener removed its socket file when the server stopped.
        assert!(matches!(
            client::call(&path, &Request::Status),
            Err(ClientError::NotRunning(_))
        ));
    }

    /// A reloader that refuses every file but `/good.toml`, counting its calls.
    struct FakeReload(Arc<std::sync::atomic::AtomicUsize>);

    impl reload::Reload for FakeReload {
        fn reload(&self, file: Option<PathBuf>, uid: u32) -> reload::Outcome {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                match file.as_deref().and_then(|f| f.to_str()) {
                    Some("/good.toml") => Ok(crate::api::reply::Reloaded {
                        file: format!("/good.toml by uid {uid}"),
                        old: crate::api::reply::PolicyRef {
                            name: "p".into(),
                            version: "1".into(),
                            generation: 1,
                        },
                        new: crate::api::reply::PolicyRef {
                            name: "p".into(),
                            version: "2".into(),
                            generation: 2,
                        },
                        prepare_ms: 0,
                        swap_us: 0,
                        retire_ms: 0,
                        total_ms: 0,
                        leases: crate::api::reply::CarriedLeases {
                            kept: Vec::new(),
                            dropped: Vec::new(),
                        },
                        retired: crate::api::reply::RetiredGeneration::Failed {
                            error: String::new(),
                        },
                    }),
                    other => Err(reload::Refusal {
                        code: ErrorCode::Rejected,
                        message: format!("policy reload refused, nothing changed: {other:?}"),
                    }),
                }
            })
        }
    }

    #[test]
    fn policy_reload_replies_with_the_reloaders_outcome() {
        let (rt, path) = fresh("reload");
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut ctx = context(Vec::new(), Box::new(|| Ok(Counters::default())));
        ctx.reload = Some(Arc::new(FakeReload(Arc::clone(&calls))));
        rt.spawn(serve(listen(&path).expect("listen"), Arc::new(ctx)));
        let req = |file: Option<&str>| Request::PolicyReload {
            file: file.map(str::to_owned),
        };
        let ok = client::call(&path, &req(Some("/good.toml"))).expect("a good reload");
        // SAFETY: plain getuid(2).
        assert_eq!(
            ok["file"],
            format!("/good.toml by uid {}", unsafe { libc::getuid() })
        );
        match client::call(&path, &req(Some("/bad.toml"))) {
            Err(ClientError::Refused { code, message }) => {
                assert_eq!(code, ErrorCode::Rejected);
                assert!(message.contains("nothing changed") && message.contains("/bad.toml"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // A relative path is refused before the reloader is asked.
        let before = calls.load(std::sync::atomic::Ordering::SeqCst);
        match client::call(&path, &req(Some("bad.toml"))) {
            Err(ClientError::Refused { code, message }) => {
                assert_eq!(code, ErrorCode::Rejected);
                assert!(message.contains("not an absolute path"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), before);
        drop(rt);

        // A daemon without a reloader says so.
        let (rt, path) = fresh("noreload");
        let ctx = context(Vec::new(), Box::new(|| Ok(Counters::default())));
        rt.spawn(serve(listen(&path).expect("listen"), Arc::new(ctx)));
        match client::call(&path, &req(None)) {
            Err(ClientError::Refused { code, .. }) => assert_eq!(code, ErrorCode::Internal),
            other => panic!("expected a refusal, got {other:?}"),
        }
        drop(rt);
        for p in [&path] {
            if let Some(dir) = p.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn stale_sockets_are_replaced_and_reported() {
        let dir = std::env::temp_dir().join(format!("governor-admin-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("governor.sock");
        // A socket file nobody listens on any more.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        assert!(path.exists());
        let err = client::call(&path, &Request::Status).unwrap_err();
        assert!(matches!(err, ClientError::Stale(_)), "{err}");
        assert!(err.to_string().contains("not running"), "{err}");
        let listener = listen(&path).expect("a stale socket is replaced");
        drop(listener);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refused_peers_get_a_forbidden_reply() {
        let (rt, path) = fresh("refuse");
        // This process's own cgroup is registered as an agent's.
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("own cgroup");
        let cgroup = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a cgroup v2 line")
            .trim_start_matches('/')
            .to_owned();
        let ctx = context(
            vec![("me".into(), PathBuf::from(cgroup))],
            Box::new(|| Err("unused".into())),
        );
        rt.spawn(serve(listen(&path).expect("listen"), Arc::new(ctx)));
        let err = client::call(&path, &Request::Status).unwrap_err();
        match err {
            ClientError::Refused { code, message } => {
                assert_eq!(code, ErrorCode::Forbidden);
                assert!(message.contains("agent `me`"), "{message}");
            }
            other => panic!("expected a forbidden reply, got {other}"),
        }
        drop(rt);
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
