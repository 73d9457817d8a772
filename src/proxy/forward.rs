//! Forwarding one request: one snapshot load, one routing decision, one
//! upstream exchange (with connect-failure retries), one recorded outcome.
use super::body::{Inner, ProxyBody, Recorder};
use super::conn_io::Busy;
use super::{headers, ids, upgrade, ConnCtx, Proxy};
use crate::routing::{self, StickyKey};
use crate::snapshot::{Backend, Snapshot};
use crate::telemetry::method_index;
use crate::upstream::client::{ReclaimBody, UpstreamBody};
use crate::upstream::endpoints::Endpoint;
use crate::upstream::{idempotent, pool};
use crate::Role;
use http::header::{CONTENT_TYPE, HOST, SET_COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;

/// Why no upstream response came back.
enum Failure {
    NoEndpoint,
    Connect,
    Timeout,
    /// The upstream connection failed after the request was handed to it.
    Upstream,
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::NoEndpoint => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Connect | Failure::Upstream => StatusCode::BAD_GATEWAY,
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn text(&self) -> &'static str {
        match self {
            Failure::NoEndpoint => "no healthy upstream\n",
            Failure::Connect => "upstream connect failed\n",
            Failure::Timeout => "upstream timeout\n",
            Failure::Upstream => "upstream connection error\n",
        }
    }
}

/// Serves one client request. The recorder lives in this future until the
/// response exists: if the client leaves first, dropping it records a 499.
pub async fn handle(
    proxy: Arc<Proxy>,
    ctx: Arc<ConnCtx>,
    busy: Busy,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let snap = proxy.live.load_full();
    let decision = routing::decide(
        &snap.rules,
        req.headers(),
        &snap.backend(Role::Canary).version,
        snap.weight_bp,
        snap.aborted,
        ids::rand_bp,
        ids::sticky_id,
    );
    let backend = snap.backend(decision.role);
    let mut rec = Recorder::new(
        backend.stats.clone(),
        method_index(req.method()),
        start,
        !decision.via_override,
    );
    let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let mut resp = match send(&ctx, &snap, backend, req, upgrade).await {
        Ok(mut up) => {
            let status = up.status();
            let switching = status == StatusCode::SWITCHING_PROTOCOLS;
            if let (true, Some(client)) = (switching, client_upgrade) {
                upgrade::tunnel(client, hyper::upgrade::on(&mut up), ctx.activity.busy());
            }
            let (mut parts, body) = up.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, switching);
            rec.responded(
                status.as_u16(),
                snap.settings.error_statuses.contains(status.as_u16()),
            );
            Response::from_parts(parts, ProxyBody::upstream(body, Some(rec)))
        }
        Err(f) => {
            let status = f.status();
            rec.responded(
                status.as_u16(),
                snap.settings.error_statuses.contains(status.as_u16()),
            );
            if !matches!(f, Failure::NoEndpoint) {
                rec.force_error();
            }
            let mut r = Response::new(ProxyBody::text(f.text(), Some(rec)));
            *r.status_mut() = status;
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
    };
    if let (Some(name), Some(v)) = (&snap.rules.response_header, &backend.version_header) {
        resp.headers_mut().insert(name.clone(), v.clone());
    }
    if let (Some(id), Some(StickyKey::Cookie(name))) = (&decision.assign_cookie, &snap.rules.sticky)
    {
        let cookie = format!("{name}={id}; Path=/; HttpOnly; SameSite=Lax");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp.map(|b| b.with_busy(busy))
}

fn upstream_uri(endpoint: &Uri, path: &PathAndQuery) -> Option<Uri> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = endpoint.scheme().cloned();
    parts.authority = endpoint.authority().cloned();
    parts.path_and_query = Some(path.clone());
    Uri::from_parts(parts).ok()
}

/// Sends the request to an endpoint of `backend`; a connect failure of an
/// idempotent request is retried on another endpoint (the request was never
/// handed to a connection, so nothing can have been applied twice).
/// Plain-http endpoints go through the lock-free `pool`; https endpoints and
/// upgrades through hyper-util's client (TLS, ALPN h2, upgrade support).
async fn send(
    ctx: &ConnCtx,
    snap: &Snapshot,
    backend: &Backend,
    req: Request<Incoming>,
    upgrade: bool,
) -> Result<Response<Inner>, Failure> {
    let settings = &snap.settings;
    let mut endpoint: Arc<Endpoint> = backend.endpoints.pick().ok_or(Failure::NoEndpoint)?.clone();
    let (mut parts, body) = req.into_parts();

    // Host as the client sent it; for h2 clients, `:authority`.
    let host = parts.headers.get(HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    headers::set_forwarded(
        &mut parts.headers,
        ctx.peer_value.clone(),
        ctx.proto,
        host.clone(),
    );
    headers::ensure_request_id(&mut parts.headers);
    if let Some(h) = host {
        parts.headers.insert(HOST, h);
    }
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));

    let mut retries = if settings.retry_on_connect_failure && idempotent(&parts.method) && !upgrade
    {
        settings.retry_attempts
    } else {
        0
    };
    let deadline = tokio::time::Instant::now() + settings.request_timeout;
    let body = (!http_body::Body::is_end_stream(&body)).then_some(body);

    if !upgrade && body.is_none() && is_http(&endpoint) {
        let mut out = Request::new(UpstreamBody::Empty);
        *out.method_mut() = parts.method;
        *out.uri_mut() = Uri::from(path);
        *out.headers_mut() = parts.headers;
        if !out.headers().contains_key(HOST) {
            if let Some(v) = endpoint
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                out.headers_mut().insert(HOST, v);
            }
        }
        loop {
            let sent = pool::send(
                &endpoint,
                out,
                settings.connect_timeout,
                settings.idle_timeout,
            );
            match tokio::time::timeout_at(deadline, sent).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(Ok(resp)) => return Ok(resp.map(Inner::H1)),
                Ok(Err(pool::SendError::Connect(e, back))) => {
                    tracing::debug!(endpoint = %endpoint.label, error = %e, "upstream connect failed");
                    if retries == 0 {
                        return Err(Failure::Connect);
                    }
                    retries -= 1;
                    endpoint = other_endpoint(backend, &endpoint)?;
                    if !is_http(&endpoint) {
                        return Err(Failure::Connect);
                    }
                    out = *back;
                }
                Ok(Err(pool::SendError::Upstream(e))) => {
                    tracing::debug!(endpoint = %endpoint.label, error = %e, "upstream request failed");
                    return Err(Failure::Upstream);
                }
            }
        }
    }

    // Requests with a body, https endpoints and upgrades: hyper-util's client,
    // which consumes the request even when the connect fails, so a retry
    // needs a copy.
    let client = &backend.client.client;
    let mut body = body;
    loop {
        let mut reclaim = None;
        let upstream_body = match body.take() {
            None => UpstreamBody::Empty,
            Some(b) if retries > 0 => {
                let (r, rx) = ReclaimBody::new(b);
                reclaim = Some(rx);
                UpstreamBody::Reclaim(r)
            }
            Some(b) => UpstreamBody::Incoming(b),
        };
        let mut out = Request::new(upstream_body);
        *out.method_mut() = parts.method.clone();
        // The client picks h2 by ALPN per connection; the request itself is 1.1.
        *out.version_mut() = Version::HTTP_11;
        *out.uri_mut() = upstream_uri(&endpoint.uri, &path).ok_or(Failure::Connect)?;
        *out.headers_mut() = if retries > 0 {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        match tokio::time::timeout_at(deadline, client.request(out)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Ok(resp)) => return Ok(resp.map(Inner::Upstream)),
            Ok(Err(e)) if e.is_connect() => {
                tracing::debug!(endpoint = %endpoint.label, error = %e, "upstream connect failed");
                if retries == 0 {
                    return Err(Failure::Connect);
                }
                if let Some(mut rx) = reclaim {
                    body = Some(rx.try_recv().map_err(|_| Failure::Connect)?);
                }
                retries -= 1;
                endpoint = other_endpoint(backend, &endpoint)?;
            }
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %endpoint.label, error = %e, "upstream request failed");
                return Err(Failure::Upstream);
            }
        }
    }
}

/// The endpoint to retry a connect failure on (another one when there is one).
fn other_endpoint(backend: &Backend, failed: &Endpoint) -> Result<Arc<Endpoint>, Failure> {
    backend
        .endpoints
        .pick_other(failed)
        .cloned()
        .ok_or(Failure::Connect)
}

fn is_http(endpoint: &Endpoint) -> bool {
    endpoint.uri.scheme() == Some(&http::uri::Scheme::HTTP)
}
