//! Forwarding one request: one snapshot load, one routing decision, one
//! upstream exchange (one retry loop over `upstream::send`), one recorded
//! outcome.
use super::body::{ProxyBody, Recorder};
use super::conn_io::{Busy, Waiting};
use super::{headers, ids, upgrade, ConnCtx, Proxy};
use crate::routing::{self, StickyKey};
use crate::snapshot::{Backend, Snapshot};
use crate::telemetry::method_index;
use crate::upstream::{
    self, idempotent, Attempt, ErrorKind, UpstreamError, UpstreamRequest, UpstreamResponseBody,
};
use crate::Role;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, SET_COOKIE, TRANSFER_ENCODING};
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
        ErrorKind::Limit => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream connection limit reached\n",
        ),
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
    if let Some(problem) = malformed(&ctx, &req) {
        return refuse(problem).map(|b| b.handed_over(busy, None));
    }
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
    let waiting = (req.version() == Version::HTTP_2).then(|| Waiting::new(ctx.activity.clone()));

    let mut resp = match send(&ctx, &snap, backend, req, upgrade).await {
        Ok(mut up) => {
            let status = up.status();
            let switching = status == StatusCode::SWITCHING_PROTOCOLS;
            if let (true, Some(client)) = (switching, client_upgrade) {
                let hold = upgrade::Hold::new(
                    ctx.activity.busy(),
                    ctx.clone(),
                    up.body_mut().take_permit(),
                );
                upgrade::tunnel(
                    client,
                    hyper::upgrade::on(&mut up),
                    hold,
                    snap.settings.tunnel_idle_timeout,
                );
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
            if !matches!(e.kind(), ErrorKind::NoEndpoint | ErrorKind::Limit) {
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
    resp.map(|b| b.handed_over(busy, waiting))
}

/// What makes an HTTP/1.x request unfit to forward, checked before routing
/// (such requests are not counted for a version):
/// - both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1: a
///   smuggling vector). hyper lets chunked win and removes `Content-Length`
///   from the header map, so the connection's IO wrapper spotted it in the
///   raw head (`conn_io::FramingScan`); refused as NGINX does;
/// - RFC 9112 §3.2: an HTTP/1.1 request without `Host`, any request with two
///   `Host` lines or an invalid one (empty, not `host[:port]`, user info), or
///   an absolute-form target whose authority is invalid.
///
/// Free for the common request: one header lookup for `Transfer-Encoding`,
/// one walk over the `Host` values.
fn malformed(ctx: &ConnCtx, req: &Request<Incoming>) -> Option<&'static str> {
    if req.version() > Version::HTTP_11 {
        return None;
    }
    if req.headers().contains_key(TRANSFER_ENCODING) && ctx.activity.framing_conflict() {
        return Some("both Content-Length and Transfer-Encoding\n");
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == Version::HTTP_11 => return Some("missing Host header\n"),
        (Some(_), Some(_)) => return Some("more than one Host header\n"),
        (Some(h), None) if !headers::valid_host(h.as_bytes()) => {
            return Some("invalid Host header\n")
        }
        _ => {}
    }
    if let Some(a) = req.uri().authority() {
        if !headers::valid_host(a.as_str().as_bytes()) {
            return Some("invalid request target authority\n");
        }
    }
    None
}

/// 400 with a short reason; the connection closes after it (the request
/// body is not read).
fn refuse(text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::text(text, None));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
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
    // The request target's authority when it has one (an absolute-form
    // HTTP/1.1 target wins over `Host`, RFC 9112 §3.2.2; h2's `:authority`),
    // else `Host` as the client sent it.
    let host = head
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| head.headers.get(HOST).cloned());
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
/// `timeouts.request` deadline for the response head. An endpoint at its
/// `max_connections` gives the request back untouched, so any request
/// (whatever its method) tries each other endpoint once before the 503.
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
    let mut at_limit = 0;
    loop {
        let attempt = Attempt {
            deadline,
            give_back: retries > 0,
            probe: false,
        };
        let e = match upstream::send(&backend.client, endpoint, req, attempt).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        if e.kind() == ErrorKind::Limit {
            at_limit += 1;
            if at_limit >= backend.endpoints.endpoints.len() {
                return Err(e);
            }
        } else if retries == 0 || !e.is_retry_safe() {
            return Err(e);
        } else {
            retries -= 1;
        }
        let Some(next) = backend.endpoints.pick_other(endpoint) else {
            return Err(e);
        };
        tracing::debug!(endpoint = %endpoint.label, error = %e, next = %next.label, "retrying");
        req = e.into_request()?;
        endpoint = next;
    }
}
