//! Routing of admin requests to handlers, and the JSON error shape.
use super::{auth, origin, AdminState, BODY_READ_TIMEOUT, MAX_BODY};
use crate::controller::{history, CallError, Command, Rejection};
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

/// What an admin route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Healthz,
    Readyz,
    Metrics,
    Page,
    Status,
    Events,
    History,
    Analysis,
    Apm,
    Weight,
    Promote,
    Abort,
    Retry,
    Pause,
    Resume,
    Reload,
}

const READ: &[Method] = &[Method::GET, Method::HEAD];

/// The one route table: path, the methods it allows (405 + `Allow` for the
/// rest), what it does.
const ROUTES: &[(&str, &[Method], Action)] = &[
    ("/healthz", READ, Action::Healthz),
    ("/readyz", READ, Action::Readyz),
    ("/metrics", READ, Action::Metrics),
    ("/", READ, Action::Page),
    ("/api/v1/status", READ, Action::Status),
    ("/api/v1/events", READ, Action::Events),
    ("/api/v1/history", READ, Action::History),
    ("/api/v1/analysis", READ, Action::Analysis),
    ("/v1/metrics", READ, Action::Apm),
    ("/api/v1/weight", &[Method::PUT], Action::Weight),
    ("/api/v1/promote", &[Method::POST], Action::Promote),
    ("/api/v1/abort", &[Method::POST], Action::Abort),
    ("/api/v1/retry", &[Method::POST], Action::Retry),
    ("/api/v1/pause", &[Method::POST], Action::Pause),
    ("/api/v1/resume", &[Method::POST], Action::Resume),
    ("/api/v1/reload", &[Method::POST], Action::Reload),
];

/// The status page's headers: no framing (clickjacking), and a policy that
/// lets it load nothing but itself and talk to nothing but this API.
fn page(body: &'static str) -> Resp {
    let mut r = respond(200, "text/html; charset=utf-8", body);
    let h = r.headers_mut();
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    r
}

pub(crate) async fn handle(state: &AdminState, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();

    let route = ROUTES.iter().find(|(p, _, _)| *p == path);
    let mutating = !READ.contains(&method);
    let settings = state.live.load().admin.clone();
    // Probes and scrapers address the listener by whatever name they know it
    // by; they are read-only and carry nothing a page could use.
    let probe =
        route.is_some_and(|r| matches!(r.2, Action::Healthz | Action::Readyz | Action::Metrics));
    if !probe {
        if let Err(refusal) = origin::check(req.headers(), mutating, &settings.hosts) {
            return error(403, refusal);
        }
    }
    // Before the route is looked up: without the token, nothing is revealed.
    if mutating && !auth::authorized(&settings.token, req.headers()) {
        let mut r = error(401, "missing or wrong bearer token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let Some(&(_, allowed, action)) = route else {
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
    let read = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    );
    let Ok(read) = read.await else {
        return error(408, "request body not received in time");
    };
    let body = match read {
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
    let mut resp = act(state, action, &query, &body).await;
    if method == Method::HEAD {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

async fn act(state: &AdminState, action: Action, query: &str, body: &Bytes) -> Resp {
    let ctl = &state.controller;
    let call = |cmd| async move {
        match ctl.call(cmd).await {
            Ok(v) => json_resp(200, &v),
            Err(e) => e.into(),
        }
    };
    match action {
        Action::Healthz => respond(200, "text/plain; charset=utf-8", "ok\n"),
        Action::Readyz => {
            let snap = state.live.load();
            if snap.backend(Role::Stable).endpoints.any_healthy() {
                respond(200, "text/plain; charset=utf-8", "ready\n")
            } else {
                respond(
                    503,
                    "text/plain; charset=utf-8",
                    "no healthy stable endpoint\n",
                )
            }
        }
        Action::Metrics => metrics(state),
        Action::Page => page(STATUS_PAGE),
        Action::Status => json_resp(200, &ctl.view().status),
        Action::Events => json_resp(
            200,
            &serde_json::to_value(&*ctl.view().events).unwrap_or(json!([])),
        ),
        Action::History => match parse_since(query) {
            Ok(after) => json_resp(
                200,
                &json!({
                    "resolution_ms": history::RESOLUTION.as_millis() as u64,
                    "capacity": history::CAPACITY,
                    "points": ctl.history(after),
                }),
            ),
            Err(msg) => error(400, msg),
        },
        Action::Analysis => json_resp(200, &ctl.view().analysis),
        Action::Apm => apm_metrics(state, query),
        Action::Weight => match parse_weight(body) {
            Ok(w) => call(Command::SetWeight(w)).await,
            Err(msg) => error(400, msg),
        },
        Action::Promote => match parse_full(query) {
            Ok(full) => call(Command::Promote { full }).await,
            Err(msg) => error(400, msg),
        },
        Action::Abort => call(Command::Abort).await,
        Action::Retry => call(Command::Retry).await,
        Action::Pause => call(Command::Pause).await,
        Action::Resume => call(Command::Resume).await,
        Action::Reload => call(Command::Reload).await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    canary_weight: f64,
}

/// What `PUT /api/v1/weight` expects, the start of every 400 it answers.
const WEIGHT_SHAPE: &str =
    r#"body must be JSON like {"canary_weight": 35} (a number from 0 to 100, at most 2 decimals)"#;

/// The JSON type of `v`, as a caller would name it.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `{"canary_weight": 35}`: a number in 0..=100 with at most 2 decimals. The
/// error is the 400 message: what to send, then what was wrong with this body
/// (in the caller's terms, never a parser's internals).
pub fn parse_weight(body: &[u8]) -> Result<f64, String> {
    let bad = |why: String| format!("{WEIGHT_SHAPE}; {why}");
    let w = match serde_json::from_slice::<WeightBody>(body) {
        // serde also fills a struct from a JSON array (`[35]`): only an object
        // is the documented shape (found by fuzz/fuzz_targets/admin.rs).
        Ok(b) if body.trim_ascii_start().first() == Some(&b'{') => b.canary_weight,
        Ok(_) => return Err(bad("got an array".into())),
        Err(_) => return Err(bad(weight_body_problem(body))),
    };
    if !w.is_finite() || !(0.0..=100.0).contains(&w) {
        return Err(bad(format!("canary_weight {w} is outside 0 to 100")));
    }
    if ((w * 100.0).round() - w * 100.0).abs() > 1e-6 {
        return Err(bad(format!("canary_weight {w} has more than 2 decimals")));
    }
    Ok(w)
}

/// Why `body` is not a `{"canary_weight": <number>}` object.
fn weight_body_problem(body: &[u8]) -> String {
    if body.trim_ascii().is_empty() {
        return "the body is empty".into();
    }
    let v = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v,
        Err(e) if e.is_eof() => return "the JSON ends too early".into(),
        Err(e) => {
            return format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        }
    };
    let Value::Object(map) = &v else {
        return format!("got {}", json_kind(&v));
    };
    if let Some(k) = map.keys().find(|k| *k != "canary_weight") {
        return format!("unknown key {k:?} (canary_weight is the only key)");
    }
    match map.get("canary_weight") {
        None => "canary_weight is missing".into(),
        // A number that still failed: the key was given twice.
        Some(Value::Number(_)) => "canary_weight must appear exactly once".into(),
        Some(w) => format!("canary_weight is {} ({w}), not a number", json_kind(w)),
    }
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
}

/// `?since=` of `GET /api/v1/history`: a unix time in ms (the `t` of the last
/// point the caller has); absent → every point. Anything else is the 400 message.
pub(super) fn parse_since(query: &str) -> Result<Option<u64>, String> {
    match query_pairs(query).find(|(k, _)| *k == "since") {
        None | Some((_, "")) => Ok(None),
        Some((_, v)) => v.parse::<u64>().map(Some).map_err(|_| {
            format!("since={v}: expected a unix time in milliseconds, e.g. since=1732262412000 (the t of the last point you have)")
        }),
    }
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
        Some(v) => Err(format!(
            "full={v}: expected full=true or full=false (1 and 0 also work)"
        )),
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
                    "metric={v}: expected metric=errorRate, metric=responseTime or metric=throughput"
                ));
            }
            "window" => match apm::parse_window(v) {
                Ok(d) => window = Some(d),
                Err(apm::WindowError::TooLong(_)) => {
                    return Err(format!("window={v}: at most 1h is served, e.g. window=1h"))
                }
                Err(apm::WindowError::Zero) => {
                    return Err(format!("window={v}: must be longer than 0, e.g. window=5m"))
                }
                Err(apm::WindowError::Invalid(..)) => {
                    return Err(format!(
                        "window={v}: expected a number and a unit (ms, s, m, h) up to 1h, e.g. window=30s or window=5m"
                    ))
                }
            },
            "version" => {
                role = if v == "canary" || v == versions[1] {
                    Role::Canary
                } else if v == "stable" || v == versions[0] {
                    Role::Stable
                } else {
                    return Err(format!(
                        "version={v}: expected version=stable, version=canary, version={} or version={}",
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
    let window = window.unwrap_or_else(|| state.live.load().admin.window);
    match state.controller.span(role, window) {
        Some((reading, covered)) => match serde_json::to_value(apm::apm_metrics(&reading, covered))
        {
            Ok(v) => json_resp(200, &v),
            Err(e) => error(500, e),
        },
        None => error(
            400,
            "window: at most 1h is served; pass window=1h or shorter",
        ),
    }
}

/// `GET /metrics`: the registry's families plus each endpoint's health.
fn metrics(state: &AdminState) -> Resp {
    let endpoints = state.live.load().endpoint_health();
    respond(
        200,
        export::CONTENT_TYPE,
        export::encode(&state.registry, endpoints),
    )
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

    /// Words of serde and Rust that must never reach a caller.
    const INTERNALS: &[&str] = &[
        "struct",
        "WeightBody",
        "invalid type",
        "f64",
        "u64",
        "expected value",
        "EOF",
        "`",
        "Invalid(",
    ];

    #[test]
    fn weight_errors_say_what_to_send() {
        for (body, why) in [
            (&b""[..], "the body is empty"),
            (b"  \n", "the body is empty"),
            (b"{", "the JSON ends too early"),
            (b"{canary_weight: 3}", "not valid JSON (line 1, column 2)"),
            (b"[35]", "got an array"),
            (b" \n[0]", "got an array"),
            (b"35", "got a number"),
            (b"null", "got null"),
            (
                br#"{"canary_weight": "35"}"#,
                r#"canary_weight is a string ("35"), not a number"#,
            ),
            (
                br#"{"canary_weight": null}"#,
                "canary_weight is null (null), not a number",
            ),
            (
                br#"{"canary_weight": [35]}"#,
                "canary_weight is an array ([35]), not a number",
            ),
            (br#"{}"#, "canary_weight is missing"),
            (br#"{"weight": 35}"#, r#"unknown key "weight""#),
            (br#"{"canary_weight": 35, "x": 1}"#, r#"unknown key "x""#),
            (
                br#"{"canary_weight": 1, "canary_weight": 2}"#,
                "exactly once",
            ),
            (
                br#"{"canary_weight": 100.5}"#,
                "canary_weight 100.5 is outside 0 to 100",
            ),
            (
                br#"{"canary_weight": -1}"#,
                "canary_weight -1 is outside 0 to 100",
            ),
            (
                br#"{"canary_weight": 1.234}"#,
                "canary_weight 1.234 has more than 2 decimals",
            ),
        ] {
            let shown = String::from_utf8_lossy(body);
            let msg = parse_weight(body).expect_err(&shown);
            assert!(msg.starts_with(WEIGHT_SHAPE), "{shown}: {msg}");
            assert!(msg.contains(why), "{shown}: {msg:?} lacks {why:?}");
            for word in INTERNALS {
                assert!(!msg.contains(word), "{shown}: {msg:?} contains {word:?}");
            }
        }
    }

    #[test]
    fn query_errors_say_what_to_send() {
        let v = ["v1".to_string(), "v2".to_string()];
        for (q, want) in [
            (
                "window=abc",
                "window=abc: expected a number and a unit (ms, s, m, h) up to 1h",
            ),
            ("window=5", "window=5: expected a number and a unit"),
            ("window=2h", "window=2h: at most 1h is served"),
            ("window=0s", "window=0s: must be longer than 0"),
            (
                "metric=cpu",
                "metric=cpu: expected metric=errorRate, metric=responseTime or metric=throughput",
            ),
            (
                "version=v9",
                "version=v9: expected version=stable, version=canary, version=v1 or version=v2",
            ),
        ] {
            let msg = parse_apm_query(q, &v).expect_err(q);
            assert!(msg.starts_with(want), "{q}: {msg}");
            for word in INTERNALS {
                assert!(!msg.contains(word), "{q}: {msg:?} contains {word:?}");
            }
        }
        let msg = parse_full("full=yes").unwrap_err();
        assert_eq!(
            msg,
            "full=yes: expected full=true or full=false (1 and 0 also work)"
        );
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
    fn since_param() {
        assert_eq!(parse_since(""), Ok(None));
        assert_eq!(parse_since("since="), Ok(None));
        assert_eq!(
            parse_since("since=1732262412000"),
            Ok(Some(1_732_262_412_000))
        );
        let msg = parse_since("since=-5").unwrap_err();
        assert!(
            msg.starts_with("since=-5: expected a unix time in milliseconds"),
            "{msg}"
        );
        for word in INTERNALS {
            assert!(!msg.contains(word), "{msg:?} contains {word:?}");
        }
    }

    #[test]
    fn full_flag() {
        assert_eq!(parse_full(""), Ok(false));
        assert_eq!(parse_full("full=true"), Ok(true));
        assert_eq!(parse_full("a=1&full=false"), Ok(false));
        assert!(parse_full("full=yes").is_err());
    }
}
