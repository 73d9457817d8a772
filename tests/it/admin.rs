//! The admin API end to end: every transition with its 409s, auth, bad input
//! that changes nothing, reload, and the read-only endpoints' shapes.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

/// What a rejected call must leave unchanged.
fn essence(s: &Value) -> (Value, Value, Value, Value, Value) {
    (
        s["phase"].clone(),
        s["canary_weight"].clone(),
        s["abort"].clone(),
        s["step_index"].clone(),
        s["message"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_mode_transitions() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("routing: { canary_weight: 10 }\n"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let s = status(&app).await;
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["steps"].as_u64()),
        (Some("Healthy"), 10.0, Some(0))
    );

    let (code, s) = admin(
        &app,
        "PUT",
        "/api/v1/weight",
        Some(r#"{"canary_weight": 35.5}"#),
        None,
    )
    .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!((s["phase"].as_str(), weight(&s)), (Some("Healthy"), 35.5));
    assert_eq!(app.snapshot().weight_bp, 3550);

    for path in [
        "/api/v1/promote",
        "/api/v1/pause",
        "/api/v1/resume",
        "/api/v1/retry",
    ] {
        let before = status(&app).await;
        let (code, e) = admin(&app, "POST", path, None, None).await;
        assert_eq!(code, 409, "{path}: {e}");
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
        assert_eq!(
            essence(&status(&app).await),
            essence(&before),
            "{path} changed state"
        );
    }

    let (code, s) = admin(&app, "POST", "/api/v1/abort", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["abort"].as_bool()),
        (Some("Degraded"), 0.0, Some(true))
    );
    assert_eq!(s["message"], "manual abort");
    assert!(app.snapshot().aborted);

    let (code, _) = admin(
        &app,
        "PUT",
        "/api/v1/weight",
        Some(r#"{"canary_weight": 5}"#),
        None,
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(weight(&status(&app).await), 0.0);

    let (code, s) = admin(&app, "POST", "/api/v1/retry", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["abort"].as_bool()),
        (Some("Healthy"), 0.0, Some(false))
    );
    assert!(!app.snapshot().aborted);

    let k = kinds(&events(&app).await);
    assert_eq!(k, ["started", "weight", "aborted", "retried"]);
    let ev = events(&app).await;
    assert!(ev.iter().all(|e| e["time"].is_string()
        && e["message"].is_string()
        && e["canary_weight"].is_number()));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_transitions() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml(
            "rollout:\n  steps:\n    - set_weight: 10\n    - pause: {}\n    - set_weight: 40\n    - pause: {}\n    - set_weight: 70\n    - pause: 1h\n    - set_weight: 100\n",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let s = status(&app).await;
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["step_index"].as_u64()),
        (Some("Paused"), 10.0, Some(1))
    );
    assert_eq!(s["steps"], 7);
    assert_eq!(s["plan"][1]["pause"], serde_json::json!({}));
    // `pause: {}` waits for an operator: Paused, and says so.
    assert_eq!(
        (s["paused"].as_bool(), s["mode"].as_str()),
        (Some(true), Some("plan"))
    );

    // promote leaves the indefinite pause.
    let (code, s) = admin(&app, "POST", "/api/v1/promote", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["step_index"].as_u64()),
        (Some("Paused"), 40.0, Some(3))
    );

    // PUT weight holds the plan; resume continues with the next step.
    let (code, s) = admin(
        &app,
        "PUT",
        "/api/v1/weight",
        Some(r#"{"canary_weight": 55}"#),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["paused"].as_bool()),
        (Some("Paused"), 55.0, Some(true))
    );
    let (code, s) = admin(&app, "POST", "/api/v1/resume", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["step_index"].as_u64()),
        (Some("Progressing"), 70.0, Some(5))
    );

    // pause / resume around a timed pause.
    let (code, s) = admin(&app, "POST", "/api/v1/pause", None, None).await;
    assert_eq!((code, s["phase"].as_str()), (200, Some("Paused")));
    let (code, s) = admin(&app, "POST", "/api/v1/resume", None, None).await;
    assert_eq!(
        (code, s["phase"].as_str(), s["step_index"].as_u64()),
        (200, Some("Progressing"), Some(5))
    );

    // retry only after an abort.
    let (code, _) = admin(&app, "POST", "/api/v1/retry", None, None).await;
    assert_eq!(code, 409);

    // promote?full=true → 100%, Healthy; nothing left to promote.
    let (code, s) = admin(&app, "POST", "/api/v1/promote?full=true", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["step_index"].as_u64()),
        (Some("Healthy"), 100.0, Some(7))
    );
    assert_eq!(
        s["guard"],
        serde_json::json!({"running": false, "reason": "plan complete"})
    );
    let (code, _) = admin(&app, "POST", "/api/v1/promote", None, None).await;
    assert_eq!(code, 409);
    let (code, _) = admin(&app, "POST", "/api/v1/pause", None, None).await;
    assert_eq!(code, 409);

    // abort → promote/pause/resume/weight are 409; retry restarts at step 0.
    let (code, _) = admin(&app, "POST", "/api/v1/abort", None, None).await;
    assert_eq!(code, 200);
    for (m, p, b) in [
        ("POST", "/api/v1/promote", None),
        ("POST", "/api/v1/promote?full=true", None),
        ("POST", "/api/v1/pause", None),
        ("POST", "/api/v1/resume", None),
        ("PUT", "/api/v1/weight", Some(r#"{"canary_weight": 5}"#)),
    ] {
        let before = status(&app).await;
        let (code, e) = admin(&app, m, p, b, None).await;
        assert_eq!(code, 409, "{m} {p}: {e}");
        assert_eq!(essence(&status(&app).await), essence(&before));
    }
    let (code, s) = admin(&app, "POST", "/api/v1/retry", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        (
            s["phase"].as_str(),
            weight(&s),
            s["step_index"].as_u64(),
            s["abort"].as_bool()
        ),
        (Some("Paused"), 10.0, Some(1), Some(false))
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_after_a_completed_plan_is_guarded_manual_mode() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("rollout:\n  steps:\n    - set_weight: 100\n"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let s = status(&app).await;
    assert_eq!((s["phase"].as_str(), weight(&s)), (Some("Healthy"), 100.0));
    assert_eq!(s["guard"]["running"], false);
    let (code, s) = admin(
        &app,
        "PUT",
        "/api/v1/weight",
        Some(r#"{"canary_weight": 50}"#),
        None,
    )
    .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["mode"].as_str()),
        (Some("Healthy"), 50.0, Some("manual"))
    );
    assert_eq!(s["step_index"], Value::Null);
    assert_eq!(
        s["guard"],
        serde_json::json!({"running": true, "reason": null})
    );
    for path in ["/api/v1/promote", "/api/v1/pause", "/api/v1/resume"] {
        let (code, e) = admin(&app, "POST", path, None, None).await;
        assert_eq!(code, 409, "{path}: {e}");
        assert!(
            e["error"].as_str().unwrap_or("").contains("manual mode"),
            "{e}"
        );
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_on_every_change() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("routing: { canary_weight: 10 }\n").replace(
            "admin: { listen: 127.0.0.1:0 }",
            "admin: { listen: 127.0.0.1:0, token: s3cret }",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let before = status(&app).await; // GETs need no token
    for (m, p, b) in [
        ("POST", "/api/v1/abort", None),
        ("POST", "/api/v1/reload", None),
        ("PUT", "/api/v1/weight", Some(r#"{"canary_weight": 50}"#)),
        ("DELETE", "/api/v1/status", None),
    ] {
        for tok in [
            None,
            Some("wrong"),
            Some("s3cre"),
            Some("S3CRET"),
            Some("s3cret2"),
        ] {
            let (code, e) = admin(&app, m, p, b, tok).await;
            assert_eq!(code, 401, "{m} {p} with {tok:?}: {e}");
            assert!(e["error"].is_string());
        }
    }
    assert_eq!(essence(&status(&app).await), essence(&before));
    let (code, s) = admin(
        &app,
        "PUT",
        "/api/v1/weight",
        Some(r#"{"canary_weight": 50}"#),
        Some("s3cret"),
    )
    .await;
    assert_eq!((code, weight(&s)), (200, 50.0));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_changes_nothing() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("routing: { canary_weight: 10 }\n"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let before = status(&app).await;
    let events_before = events(&app).await.len();
    let huge = format!(
        r#"{{"canary_weight": 5, "pad": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    for body in [
        "",
        "{",
        "35",
        r#"{"canary_weight": "35"}"#,
        r#"{"canary_weight": 100.01}"#,
        r#"{"canary_weight": -0.5}"#,
        r#"{"canary_weight": 12.345}"#,
        r#"{"canary_weight": null}"#,
        r#"{"weight": 35}"#,
        r#"{"canary_weight": 35, "extra": true}"#,
        // an array fills the struct in serde: was accepted as weight 35 (fuzz/admin)
        "[35]",
        "\n\t[0]",
        huge.as_str(),
    ] {
        let (code, e) = admin(&app, "PUT", "/api/v1/weight", Some(body), None).await;
        assert!(
            code == 400 || code == 413,
            "{code} for {}: {e}",
            &body[..body.len().min(40)]
        );
        assert!(e["error"].is_string(), "{e}");
    }
    let (code, _) = admin(&app, "POST", "/api/v1/promote?full=maybe", None, None).await;
    assert_eq!(code, 400);
    let (code, e) = admin(&app, "GET", "/api/v1/nope", None, None).await;
    assert_eq!((code, e["error"].is_string()), (404, true));
    let (code, e) = admin(&app, "GET", "/api/v1/abort", None, None).await;
    assert_eq!((code, e["error"].is_string()), (405, true));
    let (code, _) = admin(&app, "POST", "/api/v1/status", None, None).await;
    assert_eq!(code, 405);
    // started without a config file: nothing to reload
    let (code, _) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 400);

    assert_eq!(essence(&status(&app).await), essence(&before));
    assert_eq!(events(&app).await.len(), events_before);
    assert_eq!(app.snapshot().weight_bp, 1000);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_endpoints_have_their_shapes() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("routing: { canary_weight: 50 }\n"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let c = TestClient::new();
    for _ in 0..200 {
        c.get(app.proxy_addr, "/").await.unwrap();
    }
    // The status figures come from the controller's windows, refreshed every interval.
    let s = wait_status(&app, Duration::from_secs(3), |s| {
        s["canary"]["requests"].as_u64().unwrap_or(0)
            + s["stable"]["requests"].as_u64().unwrap_or(0)
            >= 200
    })
    .await;
    for role in ["stable", "canary"] {
        let v = &s[role];
        for k in [
            "version",
            "requests",
            "errors",
            "error_rate",
            "p50_ms",
            "p99_ms",
            "rps",
        ] {
            assert!(v.get(k).is_some(), "{role}.{k} missing: {s}");
        }
        assert!(v["requests"].as_u64().unwrap() > 20, "{s}");
    }
    for k in [
        "phase",
        "abort",
        "message",
        "canary_weight",
        "step_index",
        "steps",
        "verdict",
    ] {
        assert!(s.get(k).is_some(), "{k} missing: {s}");
    }
    assert!(s["verdict"]["result"].is_string(), "{s}");
    // The verdict says when it was made, and whether the guard still runs.
    assert!(
        s["verdict"]["at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{s}"
    );
    assert_eq!(
        s["guard"],
        serde_json::json!({"running": true, "reason": null})
    );
    assert_eq!(s["mode"], "manual");
    let m = &s["verdict"]["metrics"][0];
    for k in ["metric", "value", "limit", "evidence"] {
        assert!(m.get(k).is_some(), "verdict metric {k} missing: {s}");
    }

    let (code, v) = admin(
        &app,
        "GET",
        "/v1/metrics?app=shop&metric=errorRate&window=5m&version=canary",
        None,
        None,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["errorRate"], 0.0);
    assert!(v["responseTime"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["throughput"].as_f64().unwrap() > 0.0, "{v}");
    let (code, v) = admin(
        &app,
        "GET",
        "/v1/metrics?app=shop&metric=throughput&window=1h&version=v1",
        None,
        None,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    for bad in ["window=2h", "window=abc", "metric=cpu", "version=v9"] {
        let (code, e) = admin(&app, "GET", &format!("/v1/metrics?app=x&{bad}"), None, None).await;
        assert_eq!(code, 400, "{bad}: {e}");
    }

    let (code, a) = admin(&app, "GET", "/api/v1/analysis", None, None).await;
    assert_eq!(code, 200);
    let w = a["weight"].as_f64().unwrap();
    assert!((5.0..=100.0).contains(&w), "{a}");
    assert_eq!(a["status"], "proceed");
    assert_eq!(
        a["canary_weight"],
        status(&app).await["canary_weight"],
        "{a}"
    );
    for k in ["errorRate", "p99LatencyMs", "errorDelta", "latencyDelta"] {
        assert!(a[k].is_number(), "{k}: {a}");
    }
    admin(&app, "POST", "/api/v1/abort", None, None).await;
    assert_eq!(status(&app).await["guard"]["reason"], "aborted");
    let (_, a) = admin(&app, "GET", "/api/v1/analysis", None, None).await;
    assert_eq!(
        (
            a["weight"].as_f64(),
            a["status"].as_str(),
            a["canary_weight"].as_f64()
        ),
        (Some(0.0), Some("abort"), Some(0.0))
    );

    let r = c.get(app.admin_addr, "/healthz").await.unwrap();
    assert_eq!(r.status, 200);
    let r = c.get(app.admin_addr, "/readyz").await.unwrap();
    assert_eq!(r.status, 200);
    let r = c.get(app.admin_addr, "/metrics").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text();
    let sample = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(sample("canary_weight"), Some(0.0), "{text}");
    assert_eq!(sample("canary_aborts_total"), Some(1.0), "{text}");
    assert!(
        text.contains("canary_phase{phase=\"Degraded\"} 1"),
        "{text}"
    );
    let r = c.get(app.admin_addr, "/").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/html"));
    assert!(r.text().contains("/api/v1/status"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_stable_health() {
    let stable = TestServer::named("stable")
        .route("/health", |_req| async { resp::text(503, "down") })
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(
        &yaml("").replace(
            "endpoints: [\"{stable}\"] }",
            "endpoints: [\"{stable}\"], health_check: { interval: 50ms, timeout: 40ms, unhealthy_after: 1 } }",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let c = TestClient::new();
    let mut last = 0;
    for _ in 0..100 {
        last = c
            .get(app.admin_addr, "/readyz")
            .await
            .unwrap()
            .status
            .as_u16();
        if last == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, 503);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_valid_files_and_rejects_the_rest() {
    let (stable, canary) = stable_canary().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let text = |weight: &str, version: &str, extra: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
             upstreams:\n  stable: {{ version: v1, endpoints: [\"{}\"] }}\n  canary: {{ version: {version}, endpoints: [\"{}\"] }}\n\
             routing: {{ canary_weight: {weight} }}\n{extra}",
            stable.url(),
            canary.url()
        )
    };
    let app = start_from_file(&text("10", "v2", ""), &path).await;

    // Manual mode: a changed canary_weight applies.
    std::fs::write(&path, text("25", "v2", "")).unwrap();
    let (code, s) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!((code, weight(&s)), (200, 25.0), "{s}");
    assert_eq!(
        kinds(&events(&app).await).last().map(String::as_str),
        Some("reloaded")
    );

    // Invalid file: 400 with every error, nothing changes.
    let before = status(&app).await;
    std::fs::write(&path, text("250", "v2", "bogus_key: 1\n")).unwrap();
    let (code, e) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 400);
    let msg = e["error"].as_str().unwrap_or("");
    assert!(
        msg.contains("canary_weight") && msg.contains("bogus_key"),
        "{msg}"
    );
    assert_eq!(essence(&status(&app).await), essence(&before));

    // Restart-only keys are refused.
    std::fs::write(&path, text("25", "v2", "workers: 3\n")).unwrap();
    let (code, e) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap_or("").contains("workers"));

    // While aborted a changed weight does not apply...
    admin(&app, "POST", "/api/v1/abort", None, None).await;
    std::fs::write(&path, text("30", "v2", "")).unwrap();
    let (code, s) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(
        (code, weight(&s), s["abort"].as_bool()),
        (200, 0.0, Some(true))
    );
    // ...but a new canary version is a new canary: fresh, at the configured weight.
    std::fs::write(&path, text("30", "v3", "")).unwrap();
    let (code, s) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(
        (code, weight(&s), s["abort"].as_bool()),
        (200, 30.0, Some(false)),
        "{s}"
    );
    assert_eq!(s["canary"]["version"], "v3");
    assert_eq!(
        &*app.snapshot().backend(canary_proxy::Role::Canary).version,
        "v3"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_new_steps_for_a_running_plan() {
    let (stable, canary) = stable_canary().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let text = |steps: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
             upstreams:\n  stable: {{ version: v1, endpoints: [\"{}\"] }}\n  canary: {{ version: v2, endpoints: [\"{}\"] }}\n\
             analysis: {{ error_rate: {{ max: 3.0 }} }}\n\
             rollout:\n  steps: {steps}\n",
            stable.url(),
            canary.url()
        )
    };
    let app = start_from_file(
        &text("[{set_weight: 20}, {pause: {}}, {set_weight: 100}]"),
        &path,
    )
    .await;
    std::fs::write(
        &path,
        text("[{set_weight: 30}, {pause: {}}, {set_weight: 100}]"),
    )
    .unwrap();
    let before = status(&app).await;
    let (code, e) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap_or("").contains("rollout.steps"),
        "{e}"
    );
    assert_eq!(essence(&status(&app).await), essence(&before));
    app.shutdown().await;
}

/// Words of serde and Rust that a 400 must never show a caller.
const INTERNALS: &[&str] = &[
    "struct",
    "WeightBody",
    "invalid type",
    "expected f64",
    "f64",
    "expected value",
    "EOF",
    "`",
];

fn error_text(e: &Value) -> String {
    e["error"].as_str().unwrap_or_default().to_string()
}

fn assert_caller_terms(what: &str, msg: &str) {
    for word in INTERNALS {
        assert!(!msg.contains(word), "{what}: {msg:?} shows {word:?}");
    }
}

/// Every malformed `PUT /api/v1/weight` body is a 400 that says what to send
/// and what was wrong, in the caller's terms; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_errors_say_what_to_send_and_change_nothing() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("routing: { canary_weight: 10 }\n"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let before = status(&app).await;
    let events_before = events(&app).await.len();
    let shape = r#"body must be JSON like {"canary_weight": 35} (a number from 0 to 100, at most 2 decimals)"#;
    for (body, why) in [
        // malformed JSON
        ("{", "the JSON ends too early"),
        ("{canary_weight: 35}", "not valid JSON (line 1, column 2)"),
        (r#"{"canary_weight": 35,}"#, "not valid JSON"),
        ("", "the body is empty"),
        // wrong type
        (
            r#"{"canary_weight": "x"}"#,
            r#"canary_weight is a string ("x"), not a number"#,
        ),
        (
            r#"{"canary_weight": true}"#,
            "canary_weight is a boolean (true), not a number",
        ),
        ("35", "got a number"),
        ("[35]", "got an array"),
        // missing field
        ("{}", "canary_weight is missing"),
        // unknown field
        (r#"{"weight": 35}"#, r#"unknown key "weight""#),
        (
            r#"{"canary_weight": 35, "extra": true}"#,
            r#"unknown key "extra""#,
        ),
        // right type, wrong value
        (r#"{"canary_weight": 101}"#, "outside 0 to 100"),
        (r#"{"canary_weight": 12.345}"#, "more than 2 decimals"),
    ] {
        let (code, e) = admin(&app, "PUT", "/api/v1/weight", Some(body), None).await;
        assert_eq!(code, 400, "{body}: {e}");
        let msg = error_text(&e);
        assert_eq!(e.as_object().map(|o| o.len()), Some(1), "{body}: {e}");
        assert!(msg.starts_with(shape), "{body}: {msg}");
        assert!(msg.contains(why), "{body}: {msg:?} lacks {why:?}");
        assert_caller_terms(body, &msg);
    }
    assert_eq!(essence(&status(&app).await), essence(&before));
    assert_eq!(events(&app).await.len(), events_before);
    assert_eq!(app.snapshot().weight_bp, 1000);
    // The shape the message shows is accepted.
    let (code, s) = admin(
        &app,
        "PUT",
        "/api/v1/weight",
        Some(r#"{"canary_weight": 35}"#),
        None,
    )
    .await;
    assert_eq!((code, weight(&s)), (200, 35.0), "{s}");
    app.shutdown().await;
}

/// The query parameters (`?full=` of promote, `window`, `metric`, `version`
/// of `/v1/metrics`): a 400 naming the parameter and the values it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_say_what_to_send_and_change_nothing() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("rollout:\n  steps:\n    - set_weight: 10\n    - pause: {}\n    - set_weight: 100\n"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let before = status(&app).await;
    let events_before = events(&app).await.len();
    for (method, path, want) in [
        (
            "POST",
            "/api/v1/promote?full=maybe",
            "full=maybe: expected full=true or full=false",
        ),
        (
            "GET",
            "/v1/metrics?app=x&window=abc",
            "window=abc: expected a number and a unit (ms, s, m, h) up to 1h, e.g. window=30s",
        ),
        (
            "GET",
            "/v1/metrics?window=5",
            "window=5: expected a number and a unit",
        ),
        (
            "GET",
            "/v1/metrics?window=2h",
            "window=2h: at most 1h is served",
        ),
        (
            "GET",
            "/v1/metrics?window=0s",
            "window=0s: must be longer than 0",
        ),
        (
            "GET",
            "/v1/metrics?metric=cpu",
            "metric=cpu: expected metric=errorRate, metric=responseTime or metric=throughput",
        ),
        (
            "GET",
            "/v1/metrics?version=v9",
            "version=v9: expected version=stable, version=canary, version=v1 or version=v2",
        ),
    ] {
        let (code, e) = admin(&app, method, path, None, None).await;
        assert_eq!(code, 400, "{path}: {e}");
        let msg = error_text(&e);
        assert!(msg.starts_with(want), "{path}: {msg:?}, wanted {want:?}");
        assert_caller_terms(path, &msg);
    }
    assert_eq!(essence(&status(&app).await), essence(&before));
    assert_eq!(events(&app).await.len(), events_before);
    // The spellings the messages offer work.
    for path in [
        "/v1/metrics?app=x&metric=errorRate&window=30s&version=canary",
        "/v1/metrics?window=1h&version=v1",
    ] {
        let (code, v) = admin(&app, "GET", path, None, None).await;
        assert_eq!(code, 200, "{path}: {v}");
    }
    let (code, s) = admin(&app, "POST", "/api/v1/promote?full=true", None, None).await;
    assert_eq!((code, weight(&s)), (200, 100.0), "{s}");
    app.shutdown().await;
}

/// After 100%: the operator makes the canary the new stable. A config whose
/// canary has a new `version` starts the plan again from step 0, on reload and
/// on restart (state for another canary version is ignored); without a next
/// version, an idle canary under a new label at weight 0 gets no traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_full_promotion_the_canary_becomes_stable() {
    let (v1, v2) = stable_canary().await;
    let v3 = TestServer::named("next").start().await;
    let dir = tempfile::tempdir().unwrap();
    let (path, state) = (dir.path().join("c.yaml"), dir.path().join("state.json"));
    let plan = "rollout:\n  steps:\n    - set_weight: 20\n    - pause: {}\n    - set_weight: 100\n";
    let text = |stable: (&str, &Upstream), canary: (&str, &Upstream), rest: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
             upstreams:\n  stable: {{ version: {}, endpoints: [\"{}\"] }}\n  canary: {{ version: {}, endpoints: [\"{}\"] }}\n\
             state_file: {}\n{rest}",
            stable.0,
            stable.1.url(),
            canary.0,
            canary.1.url(),
            state.display()
        )
    };
    let state_version = || {
        let s: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        s["version"].as_str().unwrap_or_default().to_string()
    };

    // v2 is rolled out to 100%.
    let app = start_from_file(&text(("v1", &v1), ("v2", &v2), plan), &path).await;
    let (code, s) = admin(&app, "POST", "/api/v1/promote?full=true", None, None).await;
    assert_eq!(
        (code, s["phase"].as_str(), weight(&s)),
        (200, Some("Healthy"), 100.0),
        "{s}"
    );
    assert_eq!(state_version(), "v2");

    // The operator: v2's endpoints and version become stable, v3 is the new
    // canary, reload. The plan starts again from step 0.
    std::fs::write(&path, text(("v2", &v2), ("v3", &v3), plan)).unwrap();
    let (code, s) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        (
            s["phase"].as_str(),
            weight(&s),
            s["step_index"].as_u64(),
            s["abort"].as_bool()
        ),
        (Some("Paused"), 20.0, Some(1), Some(false)),
        "{s}"
    );
    assert_eq!(
        (
            s["stable"]["version"].as_str(),
            s["canary"]["version"].as_str()
        ),
        (Some("v2"), Some("v3"))
    );
    assert_eq!(state_version(), "v3");
    // v3 goes to 100% too; the state file says so.
    admin(&app, "POST", "/api/v1/promote?full=true", None, None).await;
    assert_eq!(weight(&status(&app).await), 100.0);
    app.shutdown().await;

    // Restart instead of reload: the file is for v3, the config's canary is
    // v4, so the state is ignored and the plan starts at step 0 (not at 100%).
    std::fs::write(&path, text(("v3", &v3), ("v4", &v1), plan)).unwrap();
    let app = start_from_file(&text(("v3", &v3), ("v4", &v1), plan), &path).await;
    let s = status(&app).await;
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["step_index"].as_u64()),
        (Some("Paused"), 20.0, Some(1)),
        "{s}"
    );
    assert_eq!(state_version(), "v4");

    // No next version yet: the canary under a new label on the stable's
    // endpoints, no plan, weight 0. Reload: manual mode, no canary traffic.
    admin(&app, "POST", "/api/v1/promote?full=true", None, None).await;
    std::fs::write(
        &path,
        text(
            ("v4", &v1),
            ("v4-idle", &v1),
            "routing: { canary_weight: 0 }\n",
        ),
    )
    .unwrap();
    let (code, s) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["steps"].as_u64()),
        (Some("Healthy"), 0.0, Some(0)),
        "{s}"
    );
    assert_eq!(app.snapshot().weight_bp, 0);
    app.shutdown().await;
}

/// A readable CA file without a usable certificate used to pass reload (and
/// `check`) and fail only at the next start: reload refuses it now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_a_ca_file_without_a_usable_certificate() {
    let (stable, canary) = stable_canary().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = |ca_line: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
             upstreams:\n  stable: {{ version: v1, endpoints: [\"{}\"] }}\n  canary: {{ version: v2, endpoints: [\"{}\"]{ca_line} }}\n",
            stable.url(),
            canary.url()
        )
    };
    let app = start_from_file(&text(""), &path).await;
    std::fs::write(&path, text(&format!(", ca: {}", ca.display()))).unwrap();
    let (code, e) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 400, "{e}");
    let msg = e["error"].as_str().unwrap_or("");
    assert!(
        msg.contains("upstreams.canary.ca: ") && msg.contains("not a usable CA certificate"),
        "{msg}"
    );
    // Still serving with the config it had.
    let r = TestClient::new().get(app.proxy_addr, "/").await.unwrap();
    assert_eq!(r.status, 200);
    app.shutdown().await;
}

/// The status page's charts come from the server: after some load and an
/// abort, `GET /api/v1/history` holds the seconds before the abort (weight
/// 30 with canary traffic) and after it (weight 0, Degraded), one point per
/// wall second, and `?since=` serves only what is newer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_keeps_the_seconds_before_an_abort() {
    let stable = TestServer::named("stable").start().await;
    let (canary, failing) = switchable("canary").await;
    let app = start_proxy(
        &yaml("routing: { canary_weight: 30 }\nanalysis: { error_rate: { max: 5.0 } }\n"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let load = Load::start(app.proxy_addr, 3, Duration::from_millis(3));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    failing.store(true, std::sync::atomic::Ordering::Relaxed);
    settle(
        Duration::from_secs(5),
        "guard abort",
        || app.snapshot().aborted,
        |a| *a,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    drop(load);

    let (code, h) = admin(&app, "GET", "/api/v1/history", None, None).await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["resolution_ms"], 1000);
    assert_eq!(h["capacity"], 900);
    let points = h["points"].as_array().cloned().unwrap_or_default();
    assert!(points.len() >= 5, "{} points: {h}", points.len());
    let t: Vec<u64> = points.iter().map(|p| p["t"].as_u64().unwrap()).collect();
    for pair in t.windows(2) {
        let step = pair[1] - pair[0];
        assert!(
            step >= 1000 && step % 1000 == 0,
            "points {pair:?} not whole seconds apart"
        );
    }
    assert!(t.iter().all(|t| t % 1000 == 0), "{t:?}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now_ms.abs_diff(*t.last().unwrap()) < 5000,
        "stamps are unix ms: {t:?}"
    );
    // Most seconds are one tick-second apart on an idle machine; allow some late ticks.
    let exact = t.windows(2).filter(|p| p[1] - p[0] == 1000).count();
    assert!(exact * 2 >= t.len() - 1, "{t:?}");

    // Before the abort: weight 30 and canary traffic; after: weight 0, Degraded.
    let first_abort = points
        .iter()
        .position(|p| p["phase"] == "Degraded")
        .expect("a Degraded point");
    let before = &points[..first_abort];
    assert!(
        before.iter().any(|p| p["canary_weight"] == 30.0
            && p["canary"]["rps"].as_f64().unwrap_or(0.0) > 0.0
            && p["phase"] == "Healthy"),
        "no pre-abort point at 30%: {before:?}"
    );
    let after = &points[first_abort..];
    assert!(after
        .iter()
        .all(|p| p["canary_weight"] == 0.0 && p["phase"] == "Degraded"));
    // The abort second shows the canary's errors; rates are per second, not a window average.
    let p = &points[first_abort];
    assert!(
        p["canary"]["error_rate"].as_f64().unwrap_or(0.0) > 5.0,
        "{p}"
    );
    for p in &points {
        for role in ["stable", "canary"] {
            let v = &p[role];
            let span = p["span_ms"].as_f64().unwrap() / 1000.0;
            let rps = v["rps"].as_f64().unwrap();
            let n = v["requests"].as_f64().unwrap();
            assert!((rps * span - n).abs() <= n * 0.02 + 1.0, "{p}");
        }
    }

    // ?since= serves only newer points; a bad one is a 400 that says what to send.
    let (_, newer) = admin(
        &app,
        "GET",
        &format!("/api/v1/history?since={}", t[t.len() - 3]),
        None,
        None,
    )
    .await;
    let newer: Vec<u64> = newer["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["t"].as_u64().unwrap())
        .collect();
    assert!(
        newer.len() >= 2 && newer.starts_with(&t[t.len() - 2..]),
        "{newer:?} vs {t:?}"
    );
    let (code, e) = admin(&app, "GET", "/api/v1/history?since=yesterday", None, None).await;
    assert_eq!(code, 400);
    assert!(
        e["error"]
            .as_str()
            .unwrap_or("")
            .contains("unix time in milliseconds"),
        "{e}"
    );

    // The verdict behind the abort: per limit the span of its figures and why.
    let s = status(&app).await;
    let rows = s["verdict"]["metrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let failed = rows
        .iter()
        .find(|m| m["result"] == "Failed")
        .unwrap_or_else(|| panic!("no Failed limit: {s}"));
    assert_eq!(failed["span"], "run", "{failed}");
    let reason = failed["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("over the limit with confidence"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("n={}", failed["evidence"])),
        "{reason}"
    );
    assert!(
        rows.iter()
            .all(|m| m["reason"].is_string() && m["span"].is_string()),
        "{rows:?}"
    );
    assert_eq!(s["analysis"]["min_requests"], 20);
    assert_eq!(s["analysis"]["window_ms"], 60_000);
    let span = s["canary"]["span_ms"].as_u64().unwrap();
    assert!((5000..=60_000).contains(&span), "{s}");
    app.shutdown().await;
}

/// A timed pause shows how long it has run and how long it lasts; a held one says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_pause_shows_its_countdown() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("rollout:\n  steps:\n    - set_weight: 10\n    - pause: 30s\n    - set_weight: 50\n    - pause: {}\n"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let s = status(&app).await;
    assert_eq!(s["pause"]["duration_ms"], 30_000, "{s}");
    assert_eq!(s["pause"]["held"], false);
    let e0 = s["pause"]["elapsed_ms"].as_u64().unwrap();
    assert!(e0 < 30_000, "{s}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = status(&app).await;
    let e1 = s["pause"]["elapsed_ms"].as_u64().unwrap();
    assert!(e1 >= e0 + 400, "the countdown does not move: {e0} → {e1}");
    let (code, s) = admin(&app, "POST", "/api/v1/pause", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        (s["pause"]["held"].as_bool(), s["paused"].as_bool()),
        (Some(true), Some(true))
    );
    // On to `pause: {}`: no duration, held until promote.
    admin(&app, "POST", "/api/v1/promote", None, None).await;
    let s = status(&app).await;
    assert_eq!(weight(&s), 50.0);
    assert_eq!(s["pause"]["duration_ms"], Value::Null, "{s}");
    assert_eq!(s["pause"]["held"], true);
    // Past the plan there is no pause.
    admin(&app, "POST", "/api/v1/promote", None, None).await;
    assert_eq!(status(&app).await["pause"], Value::Null);
    app.shutdown().await;
}

/// A reload says what changed (its reply's `changes` and its event), never the whole status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_says_what_changed() {
    let (stable, canary) = stable_canary().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let text = |weight: &str, max: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0, token: t0ken }}\n\
             upstreams:\n  stable: {{ version: v1, endpoints: [\"{}\"] }}\n  canary: {{ version: v2, endpoints: [\"{}\"] }}\n\
             routing: {{ canary_weight: {weight} }}\nanalysis: {{ error_rate: {{ max: {max} }} }}\n",
            stable.url(),
            canary.url()
        )
    };
    let app = start_from_file(&text("10", "5.0"), &path).await;
    std::fs::write(&path, text("25", "1.5").replace("t0ken", "n3w-t0ken")).unwrap();
    let (code, s) = admin(&app, "POST", "/api/v1/reload", None, Some("t0ken")).await;
    assert_eq!(code, 200, "{s}");
    let mut changes: Vec<&str> = s["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            "admin.token changed",
            "analysis.error_rate.max: 5.0 → 1.5",
            "routing.canary_weight: 10.0 → 25.0",
        ]
    );
    let ev = events(&app).await;
    let msg = ev.last().unwrap()["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with("config reloaded from "), "{msg}");
    assert!(msg.contains("routing.canary_weight: 10.0 → 25.0"), "{msg}");
    assert!(
        !msg.contains("n3w-t0ken") && !msg.contains("\"phase\""),
        "{msg}"
    );
    // Unchanged: said so.
    let (_, s) = admin(&app, "POST", "/api/v1/reload", None, Some("n3w-t0ken")).await;
    assert_eq!(s["changes"], serde_json::json!([]));
    let ev = events(&app).await;
    assert!(ev.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .ends_with(": nothing changed"));
    app.shutdown().await;
}
