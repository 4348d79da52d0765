//! The control thread: the admin socket (and so the kill switch) and the lease tick run on a
//! thread and async runtime of their own, apart from the event pipeline. Under a flood of
//! refusals the pipeline's tasks (ring reader, decision sink) always have work; on a shared
//! runtime the admin socket waited behind them for seconds (`governor status` took 10 s and
//! once found its connect refused with EAGAIN, `governor halt` 6-8 s). Here an admin request
//! waits for nothing the pipeline does: it shares only short-held locks (the lease
//! lease manager, the kernel maps) with it, and its thread runs at nice -20, so that it is not
//! kept waiting for CPU behind the flood either. Long work it hands off (a policy reload
//! verifying every program) runs on blocking threads at the daemon's own priority.

use std::{
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use tokio::sync::{oneshot, watch};

use crate::{admin, leases::LeaseManager};

/// How often the lease manager ticks (expiry, scheduled starts, the wall-clock mark).
const TICK: Duration = Duration::from_millis(200);

/// The running control thread.
pub struct Control {
    stop: Option<oneshot::Sender<()>>,
    /// Set (with the reason) when the admin socket stops by itself.
    failed: watch::Receiver<Option<String>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the control thread: it serves `listener` with `ctx` and ticks `leases`.
pub fn start(
    listener: admin::Listener,
    ctx: admin::Context,
    leases: Arc<Mutex<LeaseManager>>,
) -> std::io::Result<Control> {
    // SAFETY: plain getpriority(2) on this thread; -1 is also a valid nice value, which is
    // all this reads.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Blocking threads start at the raised priority they inherit: put them back.
        .on_thread_start(move || {
            let _ = set_priority(nice);
        })
        .build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let (failed_tx, failed) = watch::channel(None);
    let thread = std::thread::Builder::new()
        .name("governor-control".into())
        .spawn(move || {
            raise_priority();
            runtime.block_on(async move {
                let ticker = tokio::spawn(async move {
                    let mut every = tokio::time::interval(TICK);
                    loop {
                        every.tick().await;
                        if let Ok(mut a) = leases.lock() {
                            a.tick();
                        }
                    }
                });
                tokio::select! {
                    res = admin::serve(listener, Arc::new(ctx)) => {
                        let why = match res {
                            Ok(()) => "it ended".to_owned(),
                            Err(e) => e.to_string(),
                        };
                        let _ = failed_tx.send(Some(why));
                    }
                    _ = stopped => {}
                }
                ticker.abort();
            });
        })?;
    Ok(Control {
        stop: Some(stop),
        failed,
        thread: Some(thread),
    })
}

/// Runs this thread ahead of the host's ordinary load (the agents' included): the kill
/// switch must not wait for CPU behind a flood. Nice -20, not a real-time policy: a stuck
/// handler cannot starve the host.
fn raise_priority() {
    if let Err(e) = set_priority(-20) {
        tracing::warn!(error = %e,
            "the control thread keeps its priority: under load the admin socket may answer late");
    }
}

/// Sets this thread's nice value.
fn set_priority(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid(2) and setpriority(2) on this thread, plain calls.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Control {
    /// Resolves when the admin socket stopped by itself: why.
    pub async fn failed(&mut self) -> String {
        loop {
            if let Some(why) = self.failed.borrow().clone() {
                return why;
            }
            if self.failed.changed().await.is_err() {
                return "the control thread is gone".to_owned();
            }
        }
    }

    /// Stops answering and ticking, and waits for the thread (the admin socket file goes
    /// with its listener).
    pub fn stop(mut self) {
        self.halt_thread();
    }

    fn halt_thread(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.halt_thread();
    }
}
