//! The admin listener: health, metrics, the status page and the control API (the `/api/v1/*` endpoints).
mod auth;
mod origin;
mod routes;

// The pure parsers of admin input (Authorization header, bodies, queries),
// public so the fuzz targets in `fuzz/` can reach them.
pub use auth::authorized;
pub use routes::{parse_apm_query, parse_full, parse_weight, ApmQuery};

use crate::config::Config;
use crate::controller::ControllerHandle;
use crate::proxy::listener;
use crate::snapshot::Live;
use crate::telemetry::Registry;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Request bodies above this are refused (every admin body is a small JSON object).
pub const MAX_BODY: usize = 64 * 1024;
/// Connections the admin listener holds at once. Its own cap, separate from
/// the data plane's `limits.max_connections`, so a flood of admin connections
/// cannot take descriptors or permits from proxied traffic.
pub const MAX_CONNECTIONS: usize = 64;
/// From the moment a request is awaited (a new or kept-alive connection) to
/// the end of its head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// For the whole request body (at most `MAX_BODY`).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct AdminState {
    /// Read for the token, readiness and endpoint health.
    pub live: Live,
    pub registry: Arc<Registry>,
    pub controller: ControllerHandle,
}

/// Binds `admin.listen` and serves until `shutdown` turns true, then drains
/// for at most `timeouts.drain` like the proxy listeners.
pub async fn start(
    config: &Config,
    live: Live,
    registry: Arc<Registry>,
    controller: ControllerHandle,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(&config.admin.listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "admin.listen: cannot listen on {}: {e}",
                config.admin.listen
            ),
        )
    })?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AdminState {
        live,
        registry,
        controller,
    });
    let task = listener::spawn(
        "admin",
        listener,
        Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        config.timeouts.drain.get(),
        shutdown,
        move |stream, _peer, watcher| {
            let state = state.clone();
            async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(routes::handle(&state, req).await) }
                });
                // hyper's header timer also closes a kept-alive connection
                // that sends nothing for that long: fine for an admin API.
                let conn = http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = watcher.watch(conn).await;
            }
        },
    );
    tracing::info!(%addr, "admin API listening");
    Ok((addr, task))
}
