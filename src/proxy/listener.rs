//! The accept loop every listener shares (proxy, TLS, admin): a connection
//! cap, back-off on accept errors such as `EMFILE` (never a spin), and a
//! graceful drain bounded by `timeouts.drain` when shutdown is signalled.
//!
//! A connection's slot (its semaphore permit) is handed to the connection
//! itself ([`spawn_with`]), so whatever outlives hyper's connection future —
//! an upgraded WebSocket tunnel — keeps the slot until it ends.
use crate::log_limit::LogLimiter;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// Pause after a failed accept: out of descriptors (`EMFILE`/`ENFILE`) or
/// memory, retrying at once would only spin on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// One WARN line a second at most for failed accepts (every 50 ms while out
/// of descriptors), saying how many were held back.
static ACCEPT_LOG: LazyLock<LogLimiter> = LazyLock::new(|| LogLimiter::new(Duration::from_secs(1)));

/// Accepts on `listener` while a permit of `connections` is free (the permit
/// is held for the connection's life), hands each connection to `serve` with
/// a graceful-shutdown watcher, and when `shutdown` flips drains for at most
/// `drain` before dropping what is left.
pub(crate) fn spawn<F, Fut>(
    what: &'static str,
    listener: TcpListener,
    connections: Arc<Semaphore>,
    drain: Duration,
    shutdown: watch::Receiver<bool>,
    serve: F,
) -> JoinHandle<()>
where
    F: Fn(TcpStream, SocketAddr, Watcher) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    spawn_with(
        what,
        listener,
        connections,
        drain,
        shutdown,
        move |stream, peer, watcher, permit| {
            let conn = serve(stream, peer, watcher);
            async move {
                let _permit = permit;
                conn.await
            }
        },
    )
}

/// Like [`spawn`], but `serve` gets the connection's permit and decides how
/// long it is held (at least as long as its future runs).
pub(crate) fn spawn_with<F, Fut>(
    what: &'static str,
    listener: TcpListener,
    connections: Arc<Semaphore>,
    drain: Duration,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) -> JoinHandle<()>
where
    F: Fn(TcpStream, SocketAddr, Watcher, OwnedSemaphorePermit) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let mut conns = JoinSet::new();
        loop {
            // Reap finished connection tasks so the set stays small.
            while conns.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = stopped(&mut shutdown) => break,
            };
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = stopped(&mut shutdown) => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    if let Some(suppressed) = ACCEPT_LOG.admit() {
                        tracing::warn!(listener = what, error = %e, suppressed, "accept failed; backing off");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            conns.spawn(serve(stream, peer, graceful.watcher(), permit));
        }
        drop(listener);
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                listener = what,
                remaining = conns.len(),
                "drain timeout: closing connections with requests in flight"
            );
        }
        conns.shutdown().await;
    })
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
