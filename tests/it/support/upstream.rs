//! In-process test upstreams: routes are closures, faults on demand.
//!
//! Every server listens on 127.0.0.1:0, records the requests it saw, and
//! stops when its `Upstream` is dropped.
use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Response body of test routes: anything streamable, may fail mid-way.
pub type TestBody = BoxBody<Bytes, std::io::Error>;
type BoxFut = Pin<Box<dyn Future<Output = Response<TestBody>> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxFut + Send + Sync>;

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
}

/// Builder for an in-process upstream: routes are closures.
pub struct TestServer {
    routes: HashMap<String, Handler>,
    fallback: Handler,
    name: String,
}

impl Default for TestServer {
    fn default() -> Self {
        Self::new()
    }
}

impl TestServer {
    /// Answers every unrouted path with 200 and the server's name (`"upstream"`).
    pub fn new() -> Self {
        Self::named("upstream")
    }

    /// Like `new`, the fallback answers `name` (tell stable from canary by body).
    pub fn named(name: &str) -> Self {
        let n = name.to_string();
        TestServer {
            routes: HashMap::new(),
            fallback: Arc::new(move |_| {
                let n = n.clone();
                async move { resp::text(200, n) }.boxed()
            }),
            name: name.to_string(),
        }
    }

    /// Route an exact path (query ignored) to a closure.
    pub fn route<F, Fut>(mut self, path: &str, f: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        self.routes
            .insert(path.to_string(), Arc::new(move |r| f(r).boxed()));
        self
    }

    /// Unrouted paths go to `f` instead of the default 200.
    pub fn fallback<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        self.fallback = Arc::new(move |r| f(r).boxed());
        self
    }

    /// Streams the request body back as the response body (never buffered).
    pub fn echo(self, path: &str) -> Self {
        self.route(path, |req: Request<Incoming>| async move {
            let body = req
                .into_body()
                .map_err(|e| std::io::Error::other(e.to_string()))
                .boxed();
            Response::new(body)
        })
    }

    /// Accepts a WebSocket upgrade and echoes every message.
    pub fn websocket_echo(self, path: &str) -> Self {
        self.route(path, |mut req: Request<Incoming>| async move {
            let key = req
                .headers()
                .get("sec-websocket-key")
                .map(|k| k.as_bytes().to_vec())
                .unwrap_or_default();
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                use futures_util::{SinkExt, StreamExt};
                let Ok(up) = on.await else { return };
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(up),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() || ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
            let mut r = Response::new(resp::empty());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            r.headers_mut()
                .insert("upgrade", "websocket".parse().unwrap());
            r.headers_mut()
                .insert("sec-websocket-accept", accept.parse().unwrap());
            r
        })
    }

    /// Binds 127.0.0.1:0 and serves (HTTP/1.1 and h2c) until the `Upstream` drops.
    pub async fn start(self) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let acc = accepted.clone();
        let opened = open.clone();
        let routes = Arc::new(self.routes);
        let fallback = self.fallback;
        let (s, h) = (seen.clone(), hits.clone());
        let task = tokio::spawn(async move {
            // Connections live in this set, so dropping the `Upstream` (which
            // aborts this task) closes them too: a stopped upstream is gone.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                acc.fetch_add(1, Ordering::SeqCst);
                let gauge = OpenConn::new(opened.clone());
                let _ = stream.set_nodelay(true);
                let (routes, fallback, seen, hits) =
                    (routes.clone(), fallback.clone(), s.clone(), h.clone());
                conns.spawn(async move {
                    let _gauge = gauge;
                    let svc = service_fn(move |req: Request<Incoming>| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        seen.lock().unwrap().push(Seen {
                            method: req.method().clone(),
                            path: req.uri().path().to_string(),
                            version: req.version(),
                            headers: req.headers().clone(),
                        });
                        let handler = routes
                            .get(req.uri().path())
                            .cloned()
                            .unwrap_or_else(|| fallback.clone());
                        async move { Ok::<_, Infallible>(handler(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            name: self.name,
            seen,
            hits,
            accepted,
            open,
            task,
        }
    }
}

/// Counts a connection open until dropped (with its connection task).
struct OpenConn(Arc<AtomicUsize>);

impl OpenConn {
    fn new(n: Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        OpenConn(n)
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running test upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    hits: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests served so far.
    /// TCP connections accepted so far (keep-alive reuse shows here).
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// TCP connections open now (accepted and not yet closed).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A stable and a canary upstream with default routes, named after their role.
pub async fn stable_canary() -> (Upstream, Upstream) {
    (
        TestServer::named("stable").start().await,
        TestServer::named("canary").start().await,
    )
}

/// An address where nothing listens (connect → refused).
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Ready-made responses and faults for routes.
pub mod resp {
    use super::*;

    pub fn empty() -> TestBody {
        Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
    }

    pub fn full(b: impl Into<Bytes>) -> TestBody {
        Full::new(b.into()).map_err(|e| match e {}).boxed()
    }

    pub fn text(status: u16, body: impl Into<Bytes>) -> Response<TestBody> {
        let mut r = Response::new(full(body));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        r
    }

    /// `r` after `d` (latency on demand).
    pub async fn delayed(d: Duration, r: Response<TestBody>) -> Response<TestBody> {
        tokio::time::sleep(d).await;
        r
    }

    /// Never answers.
    pub async fn hang() -> Response<TestBody> {
        std::future::pending().await
    }

    /// A body fed chunk by chunk from a channel; an `Err` item resets it.
    pub fn channel_body(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> TestBody {
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item.map(Frame::data), rx))
        });
        StreamBody::new(stream).boxed()
    }

    /// 200 with a `total`-byte body made 64 KiB at a time, only as fast as it
    /// is read. `open` counts the bodies alive (being sent or waiting to be).
    pub fn stream_bytes(total: u64, open: &Arc<AtomicUsize>) -> Response<TestBody> {
        const CHUNK: u64 = 64 * 1024;
        let chunk = Bytes::from(vec![b'x'; CHUNK as usize]);
        let gauge = Arc::new(OpenConn::new(open.clone()));
        let stream = futures_util::stream::unfold(0u64, move |sent| {
            let chunk = chunk.clone();
            let _alive = gauge.clone();
            async move {
                (sent < total).then(|| {
                    let n = CHUNK.min(total - sent);
                    (Ok(Frame::data(chunk.slice(..n as usize))), sent + n)
                })
            }
        });
        let mut r = Response::new(StreamBody::new(stream).boxed());
        r.headers_mut()
            .insert("content-length", total.to_string().parse().unwrap());
        r
    }

    /// 200 with `first`, then (once the headers had time to leave) the
    /// connection is reset mid-body.
    pub fn reset_mid_body(first: impl Into<Bytes>) -> Response<TestBody> {
        let (tx, rx) = mpsc::channel(2);
        let first: Bytes = first.into();
        tokio::spawn(async move {
            let _ = tx.send(Ok(first)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(Err(std::io::Error::other("injected reset"))).await;
        });
        let mut r = Response::new(channel_body(rx));
        r.headers_mut()
            .insert("content-length", "1000000".parse().unwrap());
        r
    }
}
