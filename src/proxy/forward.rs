//! Forwarding one request: one snapshot load, one routing decision, one
//! upstream exchange (one retry loop over `upstream::send`), one recorded
//! outcome.
use super::body::{ProxyBody, Recorder};
use super::conn_io::Busy;
use super::{headers, ids, upgrade, ConnCtx, Proxy};
use crate::routing::{self, StickyKey};
use crate::snapshot::{Backend, Snapshot};
use crate::telemetry::method_index;
use crate::upstream::{
    self, idempotent, Attempt, ErrorKind, UpstreamError, UpstreamRequest, UpstreamResponseBody,
};
use crate::Role;
use http::header::{CONTENT_TYPE, HOST, SET_COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;

/// The status and short body a client gets for an upstream failure.
fn failure_response(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::NoEndpoint => (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream\n"),
        ErrorKind::Connect => (StatusCode::BAD_GATEWAY, "upstream connect failed\n"),
        ErrorKind::Upstream => (StatusCode::BAD_GATEWAY, "upstream connection error\n"),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream timeout\n"),
    }
}

/// Serves one client request. The recorder lives in this future until the
/// response exists: if the client leaves first, dropping it records a 499.
pub(super) async fn handle(
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
        Err(e) => {
            let (status, text) = failure_response(e.kind());
            log_failure(backend.role, &e, status);
            rec.responded(
                status.as_u16(),
                snap.settings.error_statuses.contains(status.as_u16()),
            );
            if e.kind() != ErrorKind::NoEndpoint {
                rec.force_error();
            }
            let mut r = Response::new(ProxyBody::text(text, Some(rec)));
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

/// A 502/504 is worth a WARN with the endpoint and the reason, but a dead
/// endpoint under load fails thousands of requests a second: at most one
/// line per endpoint per second, saying how many were held back.
fn log_failure(role: Role, e: &UpstreamError, status: StatusCode) {
    let Some(endpoint) = e.endpoint() else {
        return;
    };
    if let Some(suppressed) = endpoint.failure_log.admit() {
        tracing::warn!(
            %role,
            endpoint = %endpoint.label,
            status = status.as_u16(),
            error = %e,
            suppressed,
            "upstream request failed"
        );
    }
}

/// The request as it goes upstream: hop-by-hop headers out, forwarding
/// headers in, origin-form URI, no body when the client sent none.
fn upstream_request(ctx: &ConnCtx, req: Request<Incoming>, upgrade: bool) -> UpstreamRequest {
    let (mut head, body) = req.into_parts();
    // Host as the client sent it; for h2 clients, `:authority`.
    let host = head.headers.get(HOST).cloned().or_else(|| {
        head.uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    headers::strip_hop_by_hop(&mut head.headers, upgrade);
    headers::set_forwarded(
        &mut head.headers,
        ctx.peer_value.clone(),
        ctx.proto,
        host.clone(),
    );
    headers::ensure_request_id(&mut head.headers);
    if let Some(h) = host {
        head.headers.insert(HOST, h);
    }
    let path = head
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    head.uri = Uri::from(path);
    // What the client's connection attached is not for the upstream's.
    head.extensions.clear();
    UpstreamRequest {
        head,
        body: (!http_body::Body::is_end_stream(&body)).then_some(body),
        upgrade,
    }
}

/// Sends the request to an endpoint of `backend`. One loop: an attempt
/// that failed before anything was sent (a connect failure) gives the
/// request back, and an idempotent request goes again, on another endpoint
/// when there is one, up to `retry.attempts` times, all under one
/// `timeouts.request` deadline for the response head.
async fn send(
    ctx: &ConnCtx,
    snap: &Snapshot,
    backend: &Backend,
    req: Request<Incoming>,
    upgrade: bool,
) -> Result<Response<UpstreamResponseBody>, UpstreamError> {
    let settings = &snap.settings;
    let mut endpoint = backend
        .endpoints
        .pick()
        .ok_or_else(UpstreamError::no_endpoint)?;
    let mut req = upstream_request(ctx, req, upgrade);
    let mut retries =
        if settings.retry_on_connect_failure && !upgrade && idempotent(&req.head.method) {
            settings.retry_attempts
        } else {
            0
        };
    let deadline = tokio::time::Instant::now() + settings.request_timeout;
    loop {
        let attempt = Attempt {
            deadline,
            give_back: retries > 0,
        };
        let e = match upstream::send(&backend.client, endpoint, req, attempt).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        if retries == 0 || !e.is_retry_safe() {
            return Err(e);
        }
        let Some(next) = backend.endpoints.pick_other(endpoint) else {
            return Err(e);
        };
        tracing::debug!(endpoint = %endpoint.label, error = %e, next = %next.label, "retrying");
        req = e.into_request()?;
        endpoint = next;
        retries -= 1;
    }
}
