//! `protect-secret` on the admin socket: an operator's secret key file, made on a host where
//! agents run, is registered with the daemon, which protects it from agents like its own
//! directories from then on (`crate::secrets`). The socket side hands the path to the
//! daemon's [`Protect`] on a blocking thread (it stats paths and writes kernel maps).

use std::sync::Arc;

use super::{Context, Peer};
use crate::api::{
    protocol::{ErrorCode, Response},
    reply::Protected,
};

/// Why a file was not protected: refused on its merits (`Rejected`: not absolute, missing,
/// not a regular file, too many) or the daemon could not do its part (`Internal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotProtected {
    pub code: ErrorCode,
    pub message: String,
}

/// Registers and protects secret key files.
pub trait Protect: Send + Sync {
    /// Registers `path` for `uid` and protects it now; the reply's `result`.
    fn protect(&self, path: &str, uid: u32) -> Result<Protected, NotProtected>;
}

pub async fn protect(ctx: &Context, peer: &Peer, path: String) -> Response {
    let Some(secrets) = &ctx.secrets else {
        return Response::error(
            ErrorCode::Internal,
            "this daemon does not protect secret key files",
        );
    };
    let secrets = Arc::clone(secrets);
    let uid = peer.uid;
    match tokio::task::spawn_blocking(move || secrets.protect(&path, uid)).await {
        Ok(Ok(v)) => Response::reply(&v),
        Ok(Err(e)) => Response::error(e.code, e.message),
        Err(e) => Response::error(
            ErrorCode::Internal,
            format!("protecting the file stopped ({e}); the daemon's log has the details"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        path::PathBuf,
        sync::{Arc, Mutex},
    };

    use super::*;
    use crate::{
        admin::{
            client::{self, ClientError},
            listen, serve, shared,
            status::Source,
        },
        api::protocol::Request,
        api::status::Counters,
        kernel::events::ReaderStats,
    };

    /// Remembers what it was asked to protect; refuses relative paths.
    struct Fake(Mutex<Vec<(String, u32)>>);

    impl Protect for Fake {
        fn protect(&self, path: &str, uid: u32) -> Result<Protected, NotProtected> {
            if !path.starts_with('/') {
                return Err(NotProtected {
                    code: ErrorCode::Rejected,
                    message: format!("`{path}` is not an absolute path"),
                });
            }
            self.0.lock().expect("lock").push((path.to_owned(), uid));
            Ok(Protected {
                path: path.to_owned(),
                inode: 1,
                new: true,
            })
        }
    }

    #[test]
    fn protect_secret_reaches_the_daemons_registry_with_the_peers_uid() {
        let dir =
            std::env::temp_dir().join(format!("governor-admin-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("governor.sock");
        // SAFETY: plain getuid(2).
        let uid = unsafe { libc::getuid() };
        let fake = Arc::new(Fake(Mutex::new(Vec::new())));
        let fixed = crate::admin::tests::fixed();
        let ctx = Context {
            access: shared(crate::admin::peer::Access {
                admin_uids: vec![uid],
                agent_cgroups: Vec::new(),
            }),
            status: Source {
                fixed: shared(fixed),
                started: std::time::Instant::now(),
                counters: Box::new(|| Ok(Counters::default())),
                reader: Arc::new(ReaderStats::default()),
                leases: None,
                lineage_db: None,
            },
            leases: None,
            agent_cgroups: shared(Vec::<(String, PathBuf)>::new()),
            reload: None,
            secrets: Some(Arc::clone(&fake) as Arc<dyn Protect>),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.spawn(serve(listen(&path).expect("listen"), Arc::new(ctx)));
        let ok = client::call(
            &path,
            &Request::ProtectSecret {
                path: "/keys/k.key".into(),
            },
        )
        .expect("protected");
        assert_eq!(ok["path"], "/keys/k.key");
        assert_eq!(
            *fake.0.lock().expect("lock"),
            [("/keys/k.key".to_owned(), uid)]
        );
        match client::call(
            &path,
            &Request::ProtectSecret {
                path: "k.key".into(),
            },
        ) {
            Err(ClientError::Refused { code, message }) => {
                assert_eq!(code, ErrorCode::Rejected);
                assert!(message.contains("not an absolute path"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        drop(rt);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
