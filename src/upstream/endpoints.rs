//! The endpoints of each version: their health flags, idle connections and
//! failure-log limiter. State shared by the request path, the health checker
//! and the snapshot builder; `routing` only decides which version a request
//! goes to.
use super::log_limit::LogLimiter;
use super::pool::IdleConns;
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
        }
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
