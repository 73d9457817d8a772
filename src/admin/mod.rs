//! The admin listener: health, metrics, the status page and the control API (the `/api/v1/*` endpoints).
mod auth;
mod routes;

// The pure parsers of admin input (Authorization header, bodies, queries),
// public so the fuzz targets in `fuzz/` can reach them.
pub use auth::authorized;
pub use routes::{parse_apm_query, parse_full, parse_weight, ApmQuery};

use crate::app::Shared;
use crate::config::Config;
use crate::controller::ControllerHandle;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Request bodies above this are refused (every admin body is a small JSON object).
pub const MAX_BODY: usize = 64 * 1024;

pub(crate) struct AdminState {
    pub shared: Arc<Shared>,
    pub controller: ControllerHandle,
}

/// Binds `admin.listen` and serves until `shutdown` turns true.
pub async fn start(
    config: &Config,
    shared: Arc<Shared>,
    controller: ControllerHandle,
    mut shutdown: watch::Receiver<bool>,
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
    let state = Arc::new(AdminState { shared, controller });
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() { break } else { continue }
                }
            };
            let state = state.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(routes::handle(&state, req).await) }
                });
                let conn = http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                    }
                }
            });
        }
    });
    tracing::info!(%addr, "admin API listening");
    Ok((addr, task))
}
