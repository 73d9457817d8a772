//! The endpoints of each version: their health flags, idle connections,
//! connection cap (`upstreams.X.max_connections`) and failure-log limiter. State shared by the request path, the health checker
//! and the snapshot builder; `routing` only decides which version a request
//! goes to.
use super::pool::IdleConns;
use crate::log_limit::LogLimiter;
use http::uri::Scheme;
use http::Uri;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// At most one WARN line per endpoint per this period for failed requests.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(1);

/// One upstream endpoint. Its health flag is flipped by the health checker and
/// read lock-free by the request path.
#[derive(Debug)]
pub struct Endpoint {
    /// As configured, e.g. `http://10.0.0.1:8080` (the metric label).
    pub label: String,
    /// Scheme and authority to forward to.
    pub uri: Uri,
    pub healthy: AtomicBool,
    /// Idle keep-alive connections (plain http; see `pool`).
    pub conns: IdleConns,
    /// Rate limit of the WARN lines for requests this endpoint failed.
    pub failure_log: LogLimiter,
    plain_http: bool,
    /// `upstreams.X.max_connections`; 0 = unlimited (and nothing is counted).
    max_connections: usize,
    /// Connections in use (see [`ConnPermit`]), counted only under a cap.
    in_use: AtomicUsize,
}

/// One connection in use on a capped endpoint, released on drop. What counts
/// as in use, precisely:
/// - our codec (`pool`): a connection from checkout (or connect) until its
///   response body has ended and it is back in the idle pool, or dropped;
/// - hyper's client (https, request bodies, upgrades): a request from send
///   until its response body has ended or was dropped. On an HTTP/1.1
///   upstream connection that is one connection; over h2 several requests
///   share one, so the cap counts requests (it errs on the safe side).
///
/// Idle keep-alive connections are not counted: they serve nobody, and the
/// pool bounds them (256 per endpoint and worker thread, closed after
/// `timeouts.idle`). An upgraded (WebSocket) tunnel holds its permit for
/// its whole life.
#[derive(Debug)]
pub struct ConnPermit(Arc<Endpoint>);

/// The endpoint has `max_connections` connections in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtLimit;

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Relaxed);
    }
}

impl Endpoint {
    pub fn new(label: &str, uri: Uri) -> Self {
        Endpoint {
            label: label.to_string(),
            plain_http: uri.scheme() == Some(&Scheme::HTTP),
            uri,
            healthy: AtomicBool::new(true),
            conns: Default::default(),
            failure_log: LogLimiter::new(FAILURE_LOG_PERIOD),
            max_connections: 0,
            in_use: AtomicUsize::new(0),
        }
    }

    /// At most `n` connections in use at once (0 = unlimited).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Connections in use now (always 0 on an endpoint without a cap).
    pub fn in_use(&self) -> usize {
        self.in_use.load(Relaxed)
    }

    /// A slot for one more connection in use: `Ok(None)` without a cap (no
    /// counting, nothing to release), `Ok(Some(permit))` under the cap,
    /// `Err(AtLimit)` at the cap.
    #[inline]
    pub fn acquire(self: &Arc<Self>) -> Result<Option<ConnPermit>, AtLimit> {
        if self.max_connections == 0 {
            return Ok(None);
        }
        let mut n = self.in_use.load(Relaxed);
        loop {
            if n >= self.max_connections {
                return Err(AtLimit);
            }
            match self
                .in_use
                .compare_exchange_weak(n, n + 1, Relaxed, Relaxed)
            {
                Ok(_) => return Ok(Some(ConnPermit(self.clone()))),
                Err(seen) => n = seen,
            }
        }
    }

    /// A slot taken whatever the cap (health probes: one connection per
    /// interval, and a saturated endpoint is not a dead one).
    pub fn acquire_always(self: &Arc<Self>) -> Option<ConnPermit> {
        if self.max_connections == 0 {
            return None;
        }
        self.in_use.fetch_add(1, Relaxed);
        Some(ConnPermit(self.clone()))
    }

    /// `http://` (our codec and pool can carry bodiless requests to it).
    pub fn is_plain_http(&self) -> bool {
        self.plain_http
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }
}

/// The endpoints of one version. Kept (same `Arc`) across snapshots while the
/// endpoint list is unchanged, so health state survives weight changes.
#[derive(Debug, Default)]
pub struct EndpointSet {
    pub endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
}

impl EndpointSet {
    pub fn new(endpoints: Vec<Arc<Endpoint>>) -> Self {
        EndpointSet {
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// Round robin over healthy endpoints; `None` when none is healthy.
    pub fn pick(&self) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Relaxed);
        (0..n)
            .map(|i| &self.endpoints[(start + i) % n])
            .find(|e| e.is_healthy())
    }

    /// Like `pick`, but skips `not` (for a retry after a connect failure).
    pub fn pick_other(&self, not: &Endpoint) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Relaxed);
        (0..n)
            .map(|i| &self.endpoints[(start + i) % n])
            .find(|e| e.is_healthy() && !std::ptr::eq(Arc::as_ptr(e), not))
            .or_else(|| self.pick())
    }

    pub fn any_healthy(&self) -> bool {
        self.endpoints.iter().any(|e| e.is_healthy())
    }
}
