//! Proxy listeners: HTTP/1.1 + h2 (prior knowledge on the plain port, ALPN
//! on TLS) with per-connection read deadlines, on the shared accept loop
//! (`listener`: connection cap, accept back-off, graceful drain).
use super::conn_io::{Activity, TimedIo};
use super::{forward, listener, ConnCtx, Proxy};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Listener settings fixed at start (changing them needs a restart).
#[derive(Clone)]
pub struct ListenerSettings {
    pub max_header_bytes: usize,
    /// Shared by every listener: at the limit we stop accepting.
    pub connections: Arc<Semaphore>,
}

/// hyper's smallest allowed read buffer.
const MIN_BUF: usize = 8192;

fn builder(settings: &ListenerSettings) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Our `TimedIo` does header_read/idle; hyper's timer would conflate them.
        .header_read_timeout(None)
        // One flattened send per response instead of writev: measurably less
        // kernel time per request for the small messages a proxy mostly carries.
        .writev(false)
        .max_buf_size(settings.max_header_bytes.max(MIN_BUF));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// Runs a proxy listener until `shutdown` flips, then drains its
/// connections for at most `drain` and drops what is left.
pub fn spawn(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    settings: ListenerSettings,
    drain: Duration,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let builder = Arc::new(builder(&settings));
    let what = if tls.is_some() { "tls" } else { "listen" };
    listener::spawn(
        what,
        listener,
        settings.connections.clone(),
        drain,
        shutdown,
        move |stream, peer, watcher| {
            let builder = builder.clone();
            let proxy = proxy.clone();
            let tls = tls.clone();
            async move {
                let settings = proxy.live.load().settings.clone();
                let (header_read, idle) = (settings.header_read_timeout, settings.idle_timeout);
                let activity = Arc::new(Activity::default());
                match tls {
                    None => {
                        let ctx = ConnCtx::new(peer, "http", activity.clone());
                        let io = TimedIo::new(stream, activity, header_read, idle, None);
                        serve(&builder, watcher, io, proxy, ctx).await
                    }
                    Some(acceptor) => {
                        let hs = tokio::time::timeout(header_read, acceptor.accept(stream)).await;
                        let stream: tokio_rustls::server::TlsStream<TcpStream> = match hs {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        let ctx = ConnCtx::new(peer, "https", activity.clone());
                        let io = TimedIo::new(stream, activity, header_read, idle, Some(h2));
                        serve(&builder, watcher, io, proxy, ctx).await
                    }
                }
            }
        },
    )
}

async fn serve<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    proxy: Arc<Proxy>,
    ctx: ConnCtx,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = Arc::new(ctx);
    let svc = service_fn(move |req| {
        // Marked busy now, before the future first runs, so the read deadline
        // cannot fire while the request is being handled.
        let busy = ctx.activity.busy();
        let fut = forward::handle(proxy.clone(), ctx.clone(), busy, req);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::trace!(error = %e, "connection ended with an error");
    }
}

pub use super::listener::stopped;
