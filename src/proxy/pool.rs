//! Keep-alive HTTP/1.1 connections to plain-`http` endpoints, without a lock.
//!
//! hyper-util's pooled client takes a mutex, hashes a pool key and boxes a
//! large future per request; on one core that was a fifth of our user time.
//! Here each endpoint keeps its idle connections in a per-thread stack
//! (`thread_local::ThreadLocal`): a worker pops the most recently used one,
//! sends on it, and pushes it back when the response body has ended. A
//! connection whose response was not read to the end is dropped, never
//! reused. https and upgrade requests keep using `client::ClientSet`.
use super::client::UpstreamBody;
use crate::routing::Endpoint;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thread_local::ThreadLocal;
use tokio::net::TcpStream;

/// Idle connections kept per endpoint and worker thread (like NGINX `keepalive`).
const MAX_IDLE: usize = 256;

type Sender = http1::SendRequest<UpstreamBody>;

struct IdleConn {
    tx: Sender,
    since: Instant,
}

/// The idle connections of one endpoint.
#[derive(Default)]
pub struct IdleConns {
    idle: ThreadLocal<RefCell<Vec<IdleConn>>>,
}

impl std::fmt::Debug for IdleConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdleConns")
    }
}

/// Why a request got no response from the upstream.
pub enum SendError {
    /// Nothing was sent (the TCP connect failed): the request comes back
    /// whole, so a retry on another endpoint needs no copy made in advance.
    Connect(std::io::Error, Box<Request<UpstreamBody>>),
    /// The request was handed to the connection and failed there.
    Http(hyper::Error),
}

/// A connection in use; `release` hands it back when its response ended.
pub struct Lease {
    tx: Sender,
    home: Arc<Endpoint>,
}

impl Lease {
    pub fn release(self) {
        if self.tx.is_closed() {
            return;
        }
        let mut idle = self.home.conns.idle.get_or_default().borrow_mut();
        if idle.len() < MAX_IDLE {
            idle.push(IdleConn {
                tx: self.tx,
                since: Instant::now(),
            });
        }
    }
}

impl IdleConns {
    /// The most recently used live connection idle for less than `max_idle`.
    fn checkout(&self, max_idle: Duration) -> Option<Sender> {
        let mut idle = self.idle.get_or_default().borrow_mut();
        while let Some(c) = idle.pop() {
            if !c.tx.is_closed() && c.since.elapsed() < max_idle {
                return Some(c.tx);
            }
        }
        None
    }
}

async fn connect(uri: &Uri, timeout: Duration) -> std::io::Result<Sender> {
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
    let (tx, conn) = http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!(error = %e, "upstream connection ended");
        }
    });
    Ok(tx)
}

/// Sends `req` (origin-form URI, `Host` set) to `endpoint` on a pooled
/// connection, or a new one. A pooled connection that turns out closed before
/// the request was written is replaced transparently: nothing reached the
/// upstream, so this is safe for every method.
pub async fn send(
    endpoint: &Arc<Endpoint>,
    mut req: Request<UpstreamBody>,
    connect_timeout: Duration,
    max_idle: Duration,
) -> Result<(Response<Incoming>, Lease), SendError> {
    loop {
        let (mut tx, reused) = match endpoint.conns.checkout(max_idle) {
            Some(tx) => (tx, true),
            None => match connect(&endpoint.uri, connect_timeout).await {
                Ok(tx) => (tx, false),
                Err(e) => return Err(SendError::Connect(e, Box::new(req))),
            },
        };
        if tx.ready().await.is_err() {
            if reused {
                continue;
            }
            let e = std::io::Error::other("upstream closed the connection");
            return Err(SendError::Connect(e, Box::new(req)));
        }
        match tx.try_send_request(req).await {
            Ok(resp) => {
                let lease = Lease {
                    tx,
                    home: endpoint.clone(),
                };
                return Ok((resp, lease));
            }
            Err(mut e) => match e.take_message() {
                Some(back) if reused => req = back,
                _ => return Err(SendError::Http(e.into_error())),
            },
        }
    }
}
