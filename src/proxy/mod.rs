//! The data plane: listeners (HTTP/1.1, h2c, TLS), forwarding one request,
//! header rules, health checks, upgrades.
//!
//! Request path, top to bottom: `server` accepts and wraps the socket in
//! `conn_io::TimedIo` → `forward::handle` loads the snapshot once, decides the
//! version, sends through `crate::upstream` → the response body
//! (`body::ProxyBody`) records the outcome when it ends or is dropped.
pub(crate) mod body;
pub(crate) mod conn_io;
mod forward;
pub(crate) mod headers;
pub(crate) mod health;
mod ids;
pub(crate) mod listener;
pub(crate) mod server;
pub(crate) mod tls;
mod upgrade;

use crate::snapshot::Live;
use conn_io::Activity;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// What the request path knows about the client connection. Shared (`Arc`)
/// by hyper's connection and any tunnel it upgrades into: the connection's
/// `limits.max_connections` slot is released when the last of them ends.
pub(crate) struct ConnCtx {
    /// `http` or `https`: the `X-Forwarded-Proto` this proxy saw.
    pub proto: &'static str,
    pub activity: Arc<Activity>,
    /// The peer's IP as a header value, formatted once per connection for `X-Forwarded-For`.
    pub peer_value: http::HeaderValue,
    /// This connection's slot of `limits.max_connections`.
    _slot: Option<OwnedSemaphorePermit>,
}

impl ConnCtx {
    pub(crate) fn new(
        peer: SocketAddr,
        proto: &'static str,
        activity: Arc<Activity>,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Self {
        let peer_value = http::HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
        ConnCtx {
            proto,
            activity,
            peer_value,
            _slot: slot,
        }
    }
}

/// The forwarding state shared by every listener and connection.
pub(crate) struct Proxy {
    /// The one thing the request path reads.
    pub live: Live,
}

impl Proxy {
    pub(crate) fn new(live: Live) -> Arc<Proxy> {
        Arc::new(Proxy { live })
    }
}
