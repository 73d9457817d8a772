//! The upstream side of the proxy, behind one face: [`send`] takes an
//! [`UpstreamRequest`] to one endpoint of a version and returns the response
//! head with a streaming [`UpstreamResponseBody`], or an [`UpstreamError`]
//! that says what happened, whether a retry is safe, and gives the request
//! back when it is. Retry policy (how often, where to) is the caller's.
//!
//! Under the face, two connectors:
//! - `pool` + `h1`: our HTTP/1.1 codec on per-thread keep-alive connections,
//!   driven in the caller's task, for bodiless non-upgrade requests to
//!   plain-http endpoints (most traffic, and the health probes);
//! - `client`: hyper-util's client for the rest (https with h2 by ALPN,
//!   request bodies streamed while the response comes back, upgrades).
//!
//! `endpoints` holds each version's endpoints: health flags, idle
//! connections, connection caps, and the limiter of their failure log lines
//! (`crate::log_limit`).
pub(crate) mod client;
pub(crate) mod endpoints;
mod error;
pub(crate) mod h1;
pub(crate) mod pool;

pub(crate) use error::{ErrorKind, UpstreamError};

use bytes::Bytes;
use client::VersionClient;
use endpoints::{ConnPermit, Endpoint};
use http::request;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Methods a client may safely resend (RFC 9110 §9.2.2): the request may be
/// retried on another connection or endpoint without changing its effect.
pub(crate) fn idempotent(m: &http::Method) -> bool {
    use http::Method;
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A request on its way upstream.
#[derive(Debug)]
pub(crate) struct UpstreamRequest {
    /// Method, origin-form URI (path and query) and the headers as they go
    /// upstream. Without `Host`, the endpoint's authority is sent.
    pub head: request::Parts,
    /// `None`: the request has no body (only such requests take our codec).
    pub body: Option<Incoming>,
    /// An HTTP/1.1 upgrade (WebSocket): hyper's client hands over the
    /// upgraded connection.
    pub upgrade: bool,
}

impl UpstreamRequest {
    pub(crate) fn bodiless(head: request::Parts) -> Self {
        UpstreamRequest {
            head,
            body: None,
            upgrade: false,
        }
    }
}

/// How one attempt is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    /// The response head must have arrived by then (`timeouts.request`).
    pub deadline: tokio::time::Instant,
    /// A retry may follow: keep the request so a connect failure can give it
    /// back. Free for bodiless plain-http requests (our codec always gives
    /// them back); on hyper's client, which consumes the request, it costs a
    /// copy of the head and a reclaimable body.
    pub give_back: bool,
    /// A health probe: not refused at the endpoint's `max_connections` (a
    /// saturated endpoint is not a dead one), though still counted.
    pub probe: bool,
}

/// Sends `req` to `endpoint`: bodiless non-upgrade requests to a plain-http
/// endpoint through our codec and pool, everything else through the
/// version's hyper client. The connect timeout and idle timeout are the
/// client's settings, for both. An endpoint at its `max_connections` refuses
/// the request before anything is sent (`ErrorKind::Limit`, request given
/// back); the permit taken here lives in the response body.
pub(crate) async fn send(
    client: &VersionClient,
    endpoint: &Arc<Endpoint>,
    req: UpstreamRequest,
    attempt: Attempt,
) -> Result<Response<UpstreamResponseBody>, UpstreamError> {
    let permit = if attempt.probe {
        endpoint.acquire_always()
    } else {
        match endpoint.acquire() {
            Ok(p) => p,
            Err(endpoints::AtLimit) => return Err(UpstreamError::limit(endpoint, req)),
        }
    };
    if req.body.is_none() && !req.upgrade && endpoint.is_plain_http() {
        let sent = pool::send(endpoint, req.head, &client.settings, permit);
        return match tokio::time::timeout_at(attempt.deadline, sent).await {
            Ok(r) => r.map(|resp| resp.map(UpstreamResponseBody::H1)),
            Err(_) => Err(UpstreamError::timeout(endpoint)),
        };
    }
    let resp = client::send(client, endpoint, req, attempt).await?;
    Ok(resp.map(|b| UpstreamResponseBody::Client(b, permit)))
}

/// A failed response body (the upstream broke off mid-body).
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A response body streamed from the upstream by whichever connector carried
/// the request.
pub(crate) enum UpstreamResponseBody {
    /// Read off a pooled connection by our codec; the connection goes back
    /// to the pool once the body has ended.
    H1(pool::ResponseBody),
    /// From hyper's client, with the endpoint's connection permit (if capped).
    Client(Incoming, Option<ConnPermit>),
}

impl UpstreamResponseBody {
    /// The connection permit, for an upgraded tunnel to hold while it lives.
    pub(crate) fn take_permit(&mut self) -> Option<ConnPermit> {
        match self {
            UpstreamResponseBody::H1(b) => b.take_permit(),
            UpstreamResponseBody::Client(_, p) => p.take(),
        }
    }
}

impl Body for UpstreamResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamResponseBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpstreamResponseBody::Client(b, _) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamResponseBody::H1(b) => b.is_end_stream(),
            UpstreamResponseBody::Client(b, _) => b.is_end_stream(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamResponseBody::H1(b) => b.size_hint(),
            UpstreamResponseBody::Client(b, _) => b.size_hint(),
        }
    }
}
