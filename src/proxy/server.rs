//! Proxy listeners: HTTP/1.1 + h2 (prior knowledge on the plain port, ALPN
//! on TLS) with per-connection deadlines (`conn_io`), on the shared accept
//! loop (`listener`: connection cap, accept back-off, graceful drain).
use super::conn_io::{Activity, Deadlines, TimedIo};
use super::{forward, listener, ConnCtx, Proxy};
use crate::log_limit::LogLimiter;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Listener settings fixed at start (changing them needs a restart).
#[derive(Clone)]
pub(crate) struct ListenerSettings {
    pub max_header_bytes: usize,
    /// Shared by every listener: at the limit we stop accepting. A slot is
    /// held by a connection and by the tunnel it may upgrade into.
    pub connections: Arc<Semaphore>,
    /// `limits.max_h2_streams`: concurrent streams per h2 connection.
    pub max_h2_streams: u32,
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
        .max_concurrent_streams(settings.max_h2_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// At most one WARN line a second for clients whose h2 connection was
/// closed for abuse (a rapid-reset storm is one per connection).
static ABUSE_LOG: LazyLock<LogLimiter> = LazyLock::new(|| LogLimiter::new(Duration::from_secs(1)));

/// The HTTP/2 error behind a connection error, if any.
fn h2_reason(e: &(dyn std::error::Error + 'static)) -> Option<h2::Reason> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(h) = e.downcast_ref::<h2::Error>() {
            return h.reason();
        }
        next = e.source();
    }
    None
}

/// How a connection ended. A client that broke the h2 rules badly enough
/// for a GOAWAY (`ENHANCE_YOUR_CALM`: a rapid-reset storm, too many
/// resets or errors; `PROTOCOL_ERROR`, `FLOW_CONTROL_ERROR`, ...) is worth
/// a WARN, but a storm of such connections must not flood the log: one line
/// a second, saying how many were held back. (h2's own per-connection WARN
/// is off by default: `log_limit::DEFAULT_FILTER`.)
fn log_end(peer: std::net::SocketAddr, e: &(dyn std::error::Error + 'static)) {
    match h2_reason(e) {
        Some(reason) if reason != h2::Reason::NO_ERROR && reason != h2::Reason::CANCEL => {
            if let Some(suppressed) = ABUSE_LOG.admit() {
                tracing::warn!(
                    %peer,
                    %reason,
                    error = %e,
                    suppressed,
                    "h2 client connection closed for a protocol violation"
                );
            }
        }
        _ => tracing::trace!(%peer, error = %e, "connection ended with an error"),
    }
}

/// Runs a proxy listener until `shutdown` flips, then drains its
/// connections for at most `drain` and drops what is left.
pub(crate) fn spawn(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    settings: ListenerSettings,
    drain: Duration,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let builder = Arc::new(builder(&settings));
    let what = if tls.is_some() { "tls" } else { "listen" };
    listener::spawn_with(
        what,
        listener,
        settings.connections.clone(),
        drain,
        shutdown,
        move |stream, peer, watcher, slot| {
            let builder = builder.clone();
            let proxy = proxy.clone();
            let tls = tls.clone();
            async move {
                let settings = proxy.live.load().settings.clone();
                let deadlines = Deadlines {
                    header_read: settings.header_read_timeout,
                    idle: settings.idle_timeout,
                    send: settings.send_timeout,
                };
                let header_read = deadlines.header_read;
                let activity = Arc::new(Activity::default());
                match tls {
                    None => {
                        let ctx = ConnCtx::new(peer, "http", activity.clone(), Some(slot));
                        let io = TimedIo::new(stream, activity, deadlines, None);
                        serve(&builder, watcher, io, proxy, ctx, peer).await
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
                        let ctx = ConnCtx::new(peer, "https", activity.clone(), Some(slot));
                        let io = TimedIo::new(stream, activity, deadlines, Some(h2));
                        serve(&builder, watcher, io, proxy, ctx, peer).await
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
    peer: std::net::SocketAddr,
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
        log_end(peer, &*e);
    }
}

pub(crate) use super::listener::stopped;
