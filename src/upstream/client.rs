//! The connector for what our codec does not carry: hyper-util's pooled
//! keep-alive client (HTTP/1.1, and h2 by ALPN for https upstreams), one per
//! version so each can trust its own extra CA. Used for https endpoints,
//! requests with a body and upgrades.
use super::endpoints::Endpoint;
use super::error::Cause;
use super::{Attempt, UpstreamError, UpstreamRequest};
use crate::certs::{provider, upstream_roots, CaError};
use bytes::Bytes;
use http::{request, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

type UpstreamClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// What a client is built from, and the timeouts of our own codec's
/// connections too. A snapshot keeps the previous version's client (and its
/// pooled connections) while these are unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// Extra CA (PEM) trusted for https endpoints of this version.
    pub ca: Option<PathBuf>,
}

/// One version's upstream settings and hyper client.
pub struct VersionClient {
    pub settings: ClientSettings,
    client: UpstreamClient,
}

impl VersionClient {
    /// Builds the client; reads the CA file, so it runs when a snapshot is
    /// built, never on the request path.
    pub fn build(settings: ClientSettings, role: &'static str) -> Result<VersionClient, CaError> {
        let client = build_client(
            settings.connect_timeout,
            settings.idle_timeout,
            settings.ca.as_deref(),
            role,
        )?;
        Ok(VersionClient { settings, client })
    }
}

fn build_client(
    connect_timeout: Duration,
    idle: Duration,
    ca: Option<&Path>,
    role: &'static str,
) -> Result<UpstreamClient, CaError> {
    let roots = upstream_roots(ca, role)?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError {
            role,
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

/// Sends `req` through hyper's client. The client consumes the request even
/// when no connection could be made, so with `attempt.give_back` a copy of
/// the head is kept and the body is wrapped to come back unsent.
pub(super) async fn send(
    vc: &VersionClient,
    endpoint: &Arc<Endpoint>,
    req: UpstreamRequest,
    attempt: Attempt,
) -> Result<Response<Incoming>, UpstreamError> {
    let uri = match absolute_uri(&endpoint.uri, &req.head.uri) {
        Ok(uri) => uri,
        Err(e) => return Err(UpstreamError::connect(endpoint, Cause::Uri(e), Some(req))),
    };
    let UpstreamRequest {
        mut head,
        body,
        upgrade,
    } = req;
    let kept = attempt.give_back.then(|| copy_head(&head));
    let (body, reclaim) = match body {
        None => (UpstreamBody::Empty, None),
        Some(b) if kept.is_some() => {
            let (r, rx) = ReclaimBody::new(b);
            (UpstreamBody::Reclaim(r), Some(rx))
        }
        Some(b) => (UpstreamBody::Incoming(b), None),
    };
    head.uri = uri;
    // The client picks h2 by ALPN per connection; the request itself is 1.1.
    head.version = Version::HTTP_11;
    let sent = vc.client.request(Request::from_parts(head, body));
    match tokio::time::timeout_at(attempt.deadline, sent).await {
        Err(_) => Err(UpstreamError::timeout(endpoint)),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) if e.is_connect() => {
            // The client dropped the request unsent: the body is back by now.
            let back = kept.and_then(|head| {
                let body = match reclaim {
                    None => None,
                    Some(mut rx) => Some(rx.try_recv().ok()?),
                };
                Some(UpstreamRequest {
                    head,
                    body,
                    upgrade,
                })
            });
            Err(UpstreamError::connect(endpoint, Cause::Client(e), back))
        }
        Ok(Err(e)) => Err(UpstreamError::upstream(endpoint, Cause::Client(e))),
    }
}

/// The endpoint's scheme and authority with the request's path and query.
fn absolute_uri(endpoint: &Uri, origin_form: &Uri) -> Result<Uri, http::uri::InvalidUriParts> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = endpoint.scheme().cloned();
    parts.authority = endpoint.authority().cloned();
    parts.path_and_query = Some(
        origin_form
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts)
}

/// What a retry needs of a request head (extensions are not forwarded).
fn copy_head(head: &request::Parts) -> request::Parts {
    let mut r = Request::new(());
    *r.method_mut() = head.method.clone();
    *r.uri_mut() = head.uri.clone();
    *r.version_mut() = head.version;
    *r.headers_mut() = head.headers.clone();
    r.into_parts().0
}

/// The request body sent upstream. `Reclaim` gives an unsent body back when
/// the connect failed, so an idempotent request with a body can be retried.
enum UpstreamBody {
    Empty,
    Incoming(Incoming),
    Reclaim(ReclaimBody),
}

struct ReclaimBody {
    body: Option<Incoming>,
    started: bool,
    back: Option<oneshot::Sender<Incoming>>,
}

impl ReclaimBody {
    fn new(body: Incoming) -> (ReclaimBody, oneshot::Receiver<Incoming>) {
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
