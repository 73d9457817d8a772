//! The data plane: listeners (HTTP/1.1, h2c, TLS), forwarding one request,
//! header rules, upstream clients, health checks, upgrades.
//!
//! Request path, top to bottom: `server` accepts and wraps the socket in
//! `conn_io::TimedIo` → `forward::handle` loads the snapshot once, decides the
//! version, sends through `pool` (our HTTP/1.1 codec `h1`, for bodiless
//! requests to plain-http endpoints) or `client` (hyper's) → the response body
//! (`body::ProxyBody`) records the outcome when it ends or is dropped.
pub mod body;
pub mod client;
pub mod conn_io;
mod forward;
pub mod h1;
pub mod headers;
pub mod health;
mod ids;
pub mod pool;
pub mod server;
pub mod tls;
mod upgrade;

use crate::app::Shared;
use arc_swap::ArcSwap;
use client::{CaError, ClientSet};
use conn_io::Activity;
use std::net::SocketAddr;
use std::sync::Arc;

/// Methods a client may safely resend (RFC 9110 §9.2.2): the request may be
/// retried on another connection or endpoint without changing its effect.
fn idempotent(m: &http::Method) -> bool {
    use http::Method;
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// What the request path knows about the client connection.
pub struct ConnCtx {
    /// `http` or `https`: the `X-Forwarded-Proto` this proxy saw.
    pub proto: &'static str,
    pub activity: Arc<Activity>,
    /// The peer's IP as a header value, formatted once per connection for `X-Forwarded-For`.
    pub peer_value: http::HeaderValue,
}

impl ConnCtx {
    pub fn new(peer: SocketAddr, proto: &'static str, activity: Arc<Activity>) -> Self {
        let peer_value = http::HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
        ConnCtx {
            proto,
            activity,
            peer_value,
        }
    }
}

/// The forwarding state shared by every listener and connection.
pub struct Proxy {
    pub shared: Arc<Shared>,
    clients: ArcSwap<ClientSet>,
}

impl Proxy {
    pub fn new(shared: Arc<Shared>) -> Result<Arc<Proxy>, CaError> {
        let clients = ClientSet::build(shared.config.load_full())?;
        Ok(Arc::new(Proxy {
            shared,
            clients: ArcSwap::from_pointee(clients),
        }))
    }

    /// The upstream clients for the current config. After a reload that
    /// changed the connect/idle timeout or a CA file they are rebuilt once;
    /// otherwise the pooled connections are kept.
    pub fn clients(&self) -> Arc<ClientSet> {
        let cur = self.clients.load_full();
        let config = self.shared.config.load_full();
        if Arc::ptr_eq(&cur.built_from, &config) {
            return cur;
        }
        let (a, b) = (&cur.built_from, &config);
        let same = a.timeouts.connect == b.timeouts.connect
            && a.timeouts.idle == b.timeouts.idle
            && a.upstreams.stable.ca == b.upstreams.stable.ca
            && a.upstreams.canary.ca == b.upstreams.canary.ca;
        let next = if same {
            ClientSet {
                by_role: cur.by_role.clone(),
                built_from: config,
            }
        } else {
            match ClientSet::build(config.clone()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "keeping the previous upstream clients");
                    ClientSet {
                        by_role: cur.by_role.clone(),
                        built_from: config,
                    }
                }
            }
        };
        let next = Arc::new(next);
        self.clients.store(next.clone());
        next
    }
}
