//! Keep-alive HTTP/1.1 connections to plain-`http` endpoints, without a lock
//! and without a task per connection: the connector behind `upstream::send`
//! for bodiless, non-upgrade requests.
//!
//! Each endpoint keeps its idle connections in a per-thread deque
//! (`thread_local::ThreadLocal`). A request pops the most recently used one,
//! writes its head and reads the response head itself (`h1`), in its own
//! task; the response body owns the connection and puts it back when the body
//! has ended. A connection whose response was not read to the end is dropped,
//! never reused. Requests with a body, https and upgrade requests take
//! hyper's client (`client`), which streams both directions at once.
use super::client::ClientSettings;
use super::endpoints::{ConnPermit, Endpoint};
use super::error::Cause;
use super::h1::{self, Decoded, Decoder, H1Error};
use super::{idempotent, UpstreamError, UpstreamRequest};
use bytes::{Bytes, BytesMut};
use http::{request, Method, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use thread_local::ThreadLocal;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

/// Idle connections kept per endpoint and worker thread (like NGINX `keepalive`).
const MAX_IDLE: usize = 256;
/// Read buffer reserved per read: one typical response, head and body.
const READ_CHUNK: usize = 8 * 1024;

/// One upstream connection with its buffers (kept across requests).
pub(crate) struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
}

impl Conn {
    /// Is this idle connection still usable? Costs no syscall unless the
    /// socket became readable while idle (the upstream closed it, or sent
    /// bytes nobody asked for): tokio cleared readiness at the last short read.
    fn still_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.rbuf)
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        poll_fn(|cx| self.poll_fill(cx)).await
    }
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

/// The idle connections of one endpoint.
#[derive(Default)]
pub struct IdleConns {
    idle: ThreadLocal<RefCell<VecDeque<IdleConn>>>,
}

impl std::fmt::Debug for IdleConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdleConns")
    }
}

impl IdleConns {
    /// The most recently used open connection idle for less than `max_idle`.
    fn checkout(&self, max_idle: Duration) -> Option<Conn> {
        let mut idle = self.idle.get_or_default().borrow_mut();
        while let Some(mut c) = idle.pop_back() {
            if c.since.elapsed() >= max_idle {
                // Everything further down waited longer still.
                idle.clear();
                return None;
            }
            if c.conn.still_open() {
                return Some(c.conn);
            }
        }
        None
    }

    fn checkin(&self, conn: Conn, max_idle: Duration) {
        let now = Instant::now();
        let mut idle = self.idle.get_or_default().borrow_mut();
        // Close the oldest once it has outlived the idle timeout, so a burst
        // does not leave sockets open forever at the bottom of the stack.
        if idle
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= max_idle)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(IdleConn { conn, since: now });
        }
    }
}

async fn connect(uri: &Uri, timeout: Duration) -> std::io::Result<Conn> {
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let addr = if uri.port_u16().is_some() {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    Ok(Conn {
        stream,
        rbuf: BytesMut::new(),
        wbuf: Vec::new(),
    })
}

/// Sends a bodiless request (`head`: origin-form URI) to `endpoint` on a
/// pooled connection, or a new one. When no connection can be made, the head
/// comes back in the error, whole, for a retry elsewhere. A pooled
/// connection the upstream closed just as it was reused (no response byte
/// came back) is replaced once for an idempotent request (RFC 9112 §9.3.1),
/// as hyper's client does: a property of keep-alive, not a retry.
pub(super) async fn send(
    endpoint: &Arc<Endpoint>,
    head: request::Parts,
    settings: &ClientSettings,
    permit: Option<ConnPermit>,
) -> Result<Response<ResponseBody>, UpstreamError> {
    let (connect_timeout, max_idle) = (settings.connect_timeout, settings.idle_timeout);
    let (mut conn, mut reused) = match endpoint.conns.checkout(max_idle) {
        Some(c) => (c, true),
        // Boxed: the connect future is large and rarely needed.
        None => match Box::pin(connect(&endpoint.uri, connect_timeout)).await {
            Ok(c) => (c, false),
            Err(e) => return Err(connect_failed(endpoint, e, head)),
        },
    };
    let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
    conn.wbuf.clear();
    h1::encode_head(
        &head.method,
        path,
        &head.headers,
        endpoint.uri.authority(),
        &mut conn.wbuf,
    );
    let replayable = idempotent(&head.method);
    let resp = loop {
        match exchange(&mut conn, &head.method).await {
            Ok(resp) => break resp,
            Err((e, answered)) => {
                if !(reused && replayable && !answered) {
                    return Err(UpstreamError::upstream(endpoint, Cause::H1(e)));
                }
                tracing::debug!(endpoint = %endpoint.label, error = %e, "stale keep-alive connection; resending");
                let mut fresh = match Box::pin(connect(&endpoint.uri, connect_timeout)).await {
                    Ok(c) => c,
                    // Still unanswered, and idempotent: safe to send elsewhere.
                    Err(e) => return Err(connect_failed(endpoint, e, head)),
                };
                std::mem::swap(&mut fresh.wbuf, &mut conn.wbuf);
                conn = fresh;
                reused = false;
            }
        }
    };
    let (resp_parts, ()) = resp.response.into_parts();
    let body = ResponseBody::new(
        conn,
        Decoder::new(resp.framing),
        resp.keep_alive,
        endpoint.clone(),
        max_idle,
        permit,
    );
    Ok(Response::from_parts(resp_parts, body))
}

fn connect_failed(
    endpoint: &Arc<Endpoint>,
    e: std::io::Error,
    head: request::Parts,
) -> UpstreamError {
    UpstreamError::connect(
        endpoint,
        Cause::Io(e),
        Some(UpstreamRequest::bodiless(head)),
    )
}

/// Writes the request and reads the response head. On failure, also says
/// whether any response byte had arrived (if none, the request may never
/// have been seen).
async fn exchange(conn: &mut Conn, method: &Method) -> Result<h1::Head, (H1Error, bool)> {
    conn.rbuf.clear();
    let written = conn.stream.write_all(&conn.wbuf).await.map_err(H1Error::Io);
    loop {
        if !conn.rbuf.is_empty() {
            match h1::parse_head(&mut conn.rbuf, method) {
                Ok(Some(mut head)) => {
                    // A response that came before the whole request went out
                    // (an early 413, say) ends this connection's reuse.
                    head.keep_alive &= written.is_ok();
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => return Err((e, true)),
            }
        }
        let answered = !conn.rbuf.is_empty();
        match conn.fill().await {
            Ok(0) => return Err((written.err().unwrap_or(H1Error::Eof), answered)),
            Ok(_) => {}
            Err(e) => return Err((H1Error::Io(e), answered)),
        }
    }
}

/// A response body read straight off the upstream connection, which it owns
/// and hands back to the pool once the body has ended.
pub(crate) struct ResponseBody {
    conn: Option<Conn>,
    decoder: Decoder,
    keep_alive: bool,
    home: Arc<Endpoint>,
    max_idle: Duration,
    /// The connection counts as in use on a capped endpoint until released.
    permit: Option<ConnPermit>,
}

impl ResponseBody {
    fn new(
        conn: Conn,
        decoder: Decoder,
        keep_alive: bool,
        home: Arc<Endpoint>,
        max_idle: Duration,
        permit: Option<ConnPermit>,
    ) -> Self {
        let mut b = ResponseBody {
            conn: Some(conn),
            decoder,
            keep_alive,
            home,
            max_idle,
            permit,
        };
        if b.decoder.is_done() {
            b.release();
        }
        b
    }

    /// The body ended: the connection is reusable unless the upstream asked
    /// to close or sent bytes past the end of the response.
    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.rbuf.is_empty() {
                self.home.conns.checkin(conn, self.max_idle);
            }
        }
        self.permit = None;
    }

    pub(super) fn take_permit(&mut self) -> Option<ConnPermit> {
        self.permit.take()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let out = match this.decoder.decode(&mut conn.rbuf) {
                Ok(Decoded::Data(d)) => Some(Ok(Frame::data(d))),
                Ok(Decoded::Done) => None,
                Ok(Decoded::NeedMore) => match ready!(conn.poll_fill(cx)) {
                    Ok(0) => match this.decoder.eof() {
                        Ok(()) => None,
                        Err(e) => Some(Err(e)),
                    },
                    Ok(_) => continue,
                    Err(e) => Some(Err(H1Error::Io(e))),
                },
                Err(e) => Some(Err(e)),
            };
            match &out {
                Some(Ok(_)) if this.decoder.is_done() => this.release(),
                Some(Ok(_)) => {}
                None => this.release(),
                Some(Err(_)) => {
                    this.conn = None;
                    this.permit = None;
                }
            }
            return Poll::Ready(out);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
