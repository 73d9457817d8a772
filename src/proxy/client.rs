//! Upstream clients: pooled keep-alive hyper clients (HTTP/1.1, and h2 by ALPN
//! for https upstreams), one per version so each can trust its own extra CA.
use super::tls::provider;
use crate::config::Config;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

#[derive(Debug, thiserror::Error)]
#[error("upstreams.{role}.ca: cannot load {path}: {message}")]
pub struct CaError {
    pub role: &'static str,
    pub path: String,
    pub message: String,
}

/// The clients built from one config (connect timeout and CA files).
pub struct ClientSet {
    /// `[stable, canary]`.
    pub by_role: [UpstreamClient; 2],
    /// The config these were built from (pointer identity tells a reload).
    pub built_from: Arc<Config>,
}

impl ClientSet {
    pub fn build(config: Arc<Config>) -> Result<ClientSet, CaError> {
        let connect = config.timeouts.connect.get();
        let idle = config.timeouts.idle.get();
        let stable = build_client(
            connect,
            idle,
            config.upstreams.stable.ca.as_deref(),
            "stable",
        )?;
        let canary = build_client(
            connect,
            idle,
            config.upstreams.canary.ca.as_deref(),
            "canary",
        )?;
        Ok(ClientSet {
            by_role: [stable, canary],
            built_from: config,
        })
    }
}

fn build_client(
    connect_timeout: Duration,
    idle: Duration,
    ca: Option<&Path>,
    role: &'static str,
) -> Result<UpstreamClient, CaError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        let err = |message: String| CaError {
            role,
            path: path.display().to_string(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no certificate in file".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| err(e.to_string()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError {
            role,
            path: String::new(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(idle)
        .pool_max_idle_per_host(1024)
        .build(https))
}

/// The request body sent upstream. `Reclaim` gives an unsent body back when
/// the connect failed, so an idempotent request with a body can be retried.
pub enum UpstreamBody {
    Empty,
    Incoming(Incoming),
    Reclaim(ReclaimBody),
}

pub struct ReclaimBody {
    body: Option<Incoming>,
    started: bool,
    back: Option<oneshot::Sender<Incoming>>,
}

impl ReclaimBody {
    pub fn new(body: Incoming) -> (ReclaimBody, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        (
            ReclaimBody {
                body: Some(body),
                started: false,
                back: Some(tx),
            },
            rx,
        )
    }
}

impl Drop for ReclaimBody {
    fn drop(&mut self) {
        if !self.started {
            if let (Some(b), Some(tx)) = (self.body.take(), self.back.take()) {
                let _ = tx.send(b);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Incoming(b) => Pin::new(b).poll_frame(cx),
            UpstreamBody::Reclaim(r) => {
                r.started = true;
                match r.body.as_mut() {
                    Some(b) => Pin::new(b).poll_frame(cx),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Incoming(b) => b.is_end_stream(),
            UpstreamBody::Reclaim(r) => r.body.as_ref().is_none_or(|b| b.is_end_stream()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Incoming(b) => b.size_hint(),
            UpstreamBody::Reclaim(r) => r
                .body
                .as_ref()
                .map_or(SizeHint::with_exact(0), |b| b.size_hint()),
        }
    }
}
