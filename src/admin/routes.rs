//! Routing of admin requests to handlers, and the JSON error shape.
use super::{auth, AdminState, MAX_BODY};
use crate::controller::{CallError, Command, Rejection};
use crate::telemetry::{apm, export};
use crate::Role;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

type Resp = Response<Full<Bytes>>;

const STATUS_PAGE: &str = include_str!("status.html");

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn json_resp(status: u16, v: &Value) -> Resp {
    respond(status, "application/json", format!("{v}\n"))
}

fn error(status: u16, msg: impl std::fmt::Display) -> Resp {
    json_resp(status, &json!({ "error": msg.to_string() }))
}

/// The status code for a failed controller call.
fn call_status(e: &CallError) -> u16 {
    match e {
        CallError::Rejected(r) => match r {
            Rejection::Aborted
            | Rejection::NoPlan
            | Rejection::ManualAfterPlan
            | Rejection::Complete
            | Rejection::NotAborted => 409,
            // A reload the rollout refuses: the file is what is wrong.
            Rejection::PlanRunning => 400,
        },
        CallError::Config(_) | CallError::NoConfigFile => 400,
        CallError::Stopped => 503,
    }
}

impl From<CallError> for Resp {
    fn from(e: CallError) -> Resp {
        error(call_status(&e), e)
    }
}

/// The routes and the methods each allows (for 405 + `Allow`).
const ROUTES: &[(&str, &[Method])] = &[
    ("/healthz", &[Method::GET, Method::HEAD]),
    ("/readyz", &[Method::GET, Method::HEAD]),
    ("/metrics", &[Method::GET, Method::HEAD]),
    ("/", &[Method::GET, Method::HEAD]),
    ("/api/v1/status", &[Method::GET, Method::HEAD]),
    ("/api/v1/events", &[Method::GET, Method::HEAD]),
    ("/api/v1/analysis", &[Method::GET, Method::HEAD]),
    ("/v1/metrics", &[Method::GET, Method::HEAD]),
    ("/api/v1/weight", &[Method::PUT]),
    ("/api/v1/promote", &[Method::POST]),
    ("/api/v1/abort", &[Method::POST]),
    ("/api/v1/retry", &[Method::POST]),
    ("/api/v1/pause", &[Method::POST]),
    ("/api/v1/resume", &[Method::POST]),
    ("/api/v1/reload", &[Method::POST]),
];

pub(crate) async fn handle(state: &AdminState, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();

    let mutating = matches!(
        method,
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    if mutating {
        let token = state.shared.config.load().admin.token.clone();
        if !auth::authorized(&token, req.headers()) {
            let mut r = error(401, "missing or wrong bearer token");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    let Some((_, allowed)) = ROUTES.iter().find(|(p, _)| *p == path) else {
        return error(404, format!("no such endpoint: {path}"));
    };
    if !allowed.contains(&method) {
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut r = error(
            405,
            format!("{method} is not allowed on {path} (allowed: {allow})"),
        );
        if let Ok(v) = header::HeaderValue::from_str(&allow) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    // Every body is read (bounded) before acting, so an oversized one changes nothing.
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return error(413, format!("request body larger than {MAX_BODY} bytes"));
            }
            return error(400, format!("cannot read the request body: {e}"));
        }
    };
    let mut resp = route(state, &method, &path, &query, &body).await;
    if method == Method::HEAD {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

async fn route(state: &AdminState, method: &Method, path: &str, query: &str, body: &Bytes) -> Resp {
    let ctl = &state.controller;
    let call = |cmd| async move {
        match ctl.call(cmd).await {
            Ok(v) => json_resp(200, &v),
            Err(e) => e.into(),
        }
    };
    match (method.as_str(), path) {
        (_, "/healthz") => respond(200, "text/plain; charset=utf-8", "ok\n"),
        (_, "/readyz") => {
            let snap = state.shared.snapshot.load();
            if snap.backend(Role::Stable).pool.any_healthy() {
                respond(200, "text/plain; charset=utf-8", "ready\n")
            } else {
                respond(
                    503,
                    "text/plain; charset=utf-8",
                    "no healthy stable endpoint\n",
                )
            }
        }
        (_, "/metrics") => respond(200, export::CONTENT_TYPE, export::encode(&state.shared)),
        (_, "/") => respond(200, "text/html; charset=utf-8", STATUS_PAGE),
        (_, "/api/v1/status") => json_resp(200, &ctl.view().status),
        (_, "/api/v1/events") => json_resp(
            200,
            &serde_json::to_value(&*ctl.view().events).unwrap_or(json!([])),
        ),
        (_, "/api/v1/analysis") => json_resp(200, &ctl.view().analysis),
        (_, "/v1/metrics") => apm_metrics(state, query),
        ("PUT", "/api/v1/weight") => match parse_weight(body) {
            Ok(w) => call(Command::SetWeight(w)).await,
            Err(msg) => error(400, msg),
        },
        ("POST", "/api/v1/promote") => match parse_full(query) {
            Ok(full) => call(Command::Promote { full }).await,
            Err(msg) => error(400, msg),
        },
        ("POST", "/api/v1/abort") => call(Command::Abort).await,
        ("POST", "/api/v1/retry") => call(Command::Retry).await,
        ("POST", "/api/v1/pause") => call(Command::Pause).await,
        ("POST", "/api/v1/resume") => call(Command::Resume).await,
        ("POST", "/api/v1/reload") => call(Command::Reload).await,
        _ => error(404, format!("no such endpoint: {path}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    canary_weight: f64,
}

/// `{"canary_weight": 35}`: a number in 0..=100 with at most 2 decimals.
pub fn parse_weight(body: &[u8]) -> Result<f64, String> {
    let b: WeightBody = serde_json::from_slice(body)
        .map_err(|e| format!("body must be {{\"canary_weight\": <0..100>}}: {e}"))?;
    // serde also fills a struct from a JSON array (`[35]`): only an object is the
    // documented shape (found by fuzz/fuzz_targets/admin.rs).
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err("body must be {\"canary_weight\": <0..100>}: expected a JSON object".into());
    }
    let w = b.canary_weight;
    if !w.is_finite() || !(0.0..=100.0).contains(&w) {
        return Err(format!("canary_weight {w} is out of range 0..100"));
    }
    if ((w * 100.0).round() - w * 100.0).abs() > 1e-6 {
        return Err(format!("canary_weight {w} has more than 2 decimals"));
    }
    Ok(w)
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
}

/// `?full=` of `POST /api/v1/promote`: absent, `false`, `0` → false; `true`, `1`,
/// empty → true; anything else is the 400 message.
pub fn parse_full(query: &str) -> Result<bool, String> {
    match query_pairs(query)
        .find(|(k, _)| *k == "full")
        .map(|(_, v)| v)
    {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(v) => Err(format!("full={v}: expected true or false")),
    }
}

/// The parsed `GET /v1/metrics` query: the window asked for (`None`: the
/// configured `analysis.window`) and the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApmQuery {
    pub window: Option<Duration>,
    pub role: Role,
}

/// Parses `app=&metric=&window=&version=` (the APM query shape); `versions` is
/// `[stable, canary]` as named in the status. The error is the 400 message.
pub fn parse_apm_query(query: &str, versions: &[String; 2]) -> Result<ApmQuery, String> {
    let mut window = None;
    let mut role = Role::Canary;
    for (k, v) in query_pairs(query) {
        match k {
            "app" => {}
            "metric" if !matches!(v, "errorRate" | "responseTime" | "throughput") => {
                return Err(format!(
                    "metric={v}: expected errorRate, responseTime or throughput"
                ));
            }
            "window" => match apm::parse_window(v) {
                Ok(d) => window = Some(d),
                Err(e) => return Err(e.to_string()),
            },
            "version" => {
                role = if v == "canary" || v == versions[1] {
                    Role::Canary
                } else if v == "stable" || v == versions[0] {
                    Role::Stable
                } else {
                    return Err(format!(
                        "version={v}: expected stable, canary, {} or {}",
                        versions[0], versions[1]
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(ApmQuery { window, role })
}

/// `GET /v1/metrics?app=&metric=&window=&version=` (the APM query shape).
fn apm_metrics(state: &AdminState, query: &str) -> Resp {
    let view = state.controller.view();
    let ApmQuery { window, role } = match parse_apm_query(query, &view.versions) {
        Ok(q) => q,
        Err(msg) => return error(400, msg),
    };
    let window = window.unwrap_or_else(|| state.shared.config.load().analysis.window.get());
    match state.controller.span(role, window) {
        Some((reading, covered)) => match serde_json::to_value(apm::apm_metrics(&reading, covered))
        {
            Ok(v) => json_resp(200, &v),
            Err(e) => error(500, e),
        },
        None => error(400, "window is longer than the 1h served"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_bodies() {
        assert_eq!(parse_weight(br#"{"canary_weight": 35}"#), Ok(35.0));
        assert_eq!(parse_weight(br#"{"canary_weight": 12.25}"#), Ok(12.25));
        assert_eq!(parse_weight(br#"{"canary_weight": 0}"#), Ok(0.0));
        for bad in [
            &br#"{"canary_weight": 100.5}"#[..],
            br#"{"canary_weight": -1}"#,
            br#"{"canary_weight": 1.234}"#,
            br#"{"canary_weight": "35"}"#,
            br#"{"weight": 35}"#,
            br#"{"canary_weight": 35, "x": 1}"#,
            b"[35]",
            b" \n[0]",
            b"35",
            b"",
            b"{",
        ] {
            assert!(
                parse_weight(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn refusals_map_to_409_and_bad_reloads_to_400() {
        for r in [
            Rejection::Aborted,
            Rejection::NoPlan,
            Rejection::ManualAfterPlan,
            Rejection::Complete,
            Rejection::NotAborted,
        ] {
            assert_eq!(call_status(&CallError::Rejected(r)), 409, "{r}");
        }
        assert_eq!(call_status(&Rejection::PlanRunning.into()), 400);
        assert_eq!(call_status(&CallError::Config("x".into())), 400);
        assert_eq!(call_status(&CallError::NoConfigFile), 400);
        assert_eq!(call_status(&CallError::Stopped), 503);
    }

    #[test]
    fn full_flag() {
        assert_eq!(parse_full(""), Ok(false));
        assert_eq!(parse_full("full=true"), Ok(true));
        assert_eq!(parse_full("a=1&full=false"), Ok(false));
        assert!(parse_full("full=yes").is_err());
    }
}
