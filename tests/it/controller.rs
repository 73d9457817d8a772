//! The controller end to end: real upstreams, real traffic through the proxy,
//! the admin API to observe and drive it.

use crate::support::*;
use canary_proxy::app::App;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_canary_is_rolled_back_and_everyone_is_told_why() {
    let stable = TestServer::named("stable").start().await;
    let (canary, failing) = switchable("canary").await;
    let (hook, received) = webhook_receiver().await;
    let app = start_proxy(
        &yaml(
            "routing: { canary_weight: 50 }\n\
             analysis: { error_rate: { max: 5.0 } }\n\
             notify: { webhooks: [ { url: \"{hook}/hook\", events: [aborted] } ] }\n",
        ),
        &[("stable", &stable), ("canary", &canary), ("hook", &hook)],
    )
    .await;
    let _load = Load::start(app.proxy_addr, 4, Duration::from_millis(2));

    // Healthy for a while: no abort.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = status(&app).await;
    assert_eq!(s["abort"], false, "healthy canary aborted: {s}");
    assert_eq!(weight(&s), 50.0);
    assert!(s["canary"]["requests"].as_u64().unwrap_or(0) > 50, "{s}");

    failing.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let rolled_back = eventually(Duration::from_secs(5), || app.snapshot().weight_bp == 0).await;
    let took = t0.elapsed();
    assert!(
        rolled_back,
        "canary still receives traffic 5s after it failed"
    );
    assert!(took < Duration::from_secs(3), "rollback took {took:?}");

    let s = status(&app).await;
    assert_eq!(s["phase"], "Degraded");
    assert_eq!(s["abort"], true);
    assert_eq!(weight(&s), 0.0);
    let msg = s["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("RolloutAborted: metric \"error-rate"),
        "{msg}"
    );
    assert_eq!(s["verdict"]["result"], "Failed", "{s}");
    assert_eq!(app.registry().gauges.aborts.load(Ordering::Relaxed), 1);

    let ev = events(&app).await;
    let last = ev.last().expect("events");
    assert_eq!(last["kind"], "aborted");
    assert_eq!(last["message"], msg);
    assert_eq!(last["canary_weight"], 0.0);

    assert!(
        eventually(Duration::from_secs(3), || !received
            .lock()
            .unwrap()
            .is_empty())
        .await,
        "no webhook"
    );
    let hooks = received.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "only `aborted` is subscribed: {hooks:?}");
    let h = &hooks[0];
    assert_eq!(h["event"], "aborted");
    assert_eq!(h["phase"], "Degraded");
    assert_eq!(h["message"], msg);
    assert_eq!(h["canary_weight"], 0.0);
    assert_eq!(h["previous_weight"], 50.0);
    assert_eq!(h["version"], "v2");
    assert_eq!(h["canary"]["version"], "v2");
    assert_eq!(h["stable"]["version"], "v1");
    assert!(h["timestamp"].as_str().unwrap_or("").ends_with('Z'));
    println!("rollback after the canary turned bad: {took:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_canary_walks_the_plan_to_healthy() {
    let stable = TestServer::named("stable").start().await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(
        &yaml(
            "rollout:\n  steps:\n\
             \x20   - set_weight: 20\n\
             \x20   - pause: 300ms\n\
             \x20   - set_weight: 50\n\
             \x20   - pause: 300ms\n\
             \x20   - set_weight: 100\n",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let _load = Load::start(app.proxy_addr, 2, Duration::from_millis(5));
    let s = status(&app).await;
    assert_eq!(s["phase"], "Progressing");
    assert_eq!(weight(&s), 20.0);
    assert_eq!(s["step_index"], 1);
    assert_eq!(s["steps"], 5);

    let s = wait_status(&app, Duration::from_secs(5), |s| s["phase"] == "Healthy").await;
    assert_eq!(s["phase"], "Healthy", "{s}");
    assert_eq!(weight(&s), 100.0);
    assert_eq!(s["step_index"], 5);
    assert_eq!(s["abort"], false);
    let k = kinds(&events(&app).await);
    assert_eq!(
        k,
        [
            "started",
            "step",
            "step",
            "step",
            "step",
            "step",
            "completed"
        ],
        "events: {k:?}"
    );
    // Plan finished: the guard stops, so promote has nothing left to do.
    let (code, _) = admin(&app, "POST", "/api/v1/promote", None, None).await;
    assert_eq!(code, 409);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_gate_passes_on_evidence_and_times_out_without() {
    let stable = TestServer::named("stable").start().await;
    let canary = TestServer::named("canary").start().await;
    // Only the error-rate limit: the others need far more evidence than a
    // second of loopback traffic to pass at the default confidence.
    let plan =
        "analysis: { error_rate: { max_increase: null }, latency: { max_p99_ratio: null } }\n\
                rollout:\n  steps:\n\
                \x20   - set_weight: 50\n\
                \x20   - analysis: { duration: 400ms, min_requests: 40, timeout: 3s }\n\
                \x20   - set_weight: 100\n";
    // With traffic: the gate passes once duration and evidence are there.
    let app = start_proxy(&yaml(plan), &[("stable", &stable), ("canary", &canary)]).await;
    let s = status(&app).await;
    assert_eq!(
        (s["phase"].clone(), s["step_index"].clone()),
        ("Progressing".into(), 1.into())
    );
    let _load = Load::start(app.proxy_addr, 3, Duration::from_millis(2));
    let t0 = Instant::now();
    let s = wait_status(&app, Duration::from_secs(5), |s| s["phase"] == "Healthy").await;
    assert_eq!(s["phase"], "Healthy", "{s}");
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "gate passed before its duration"
    );
    let ev = events(&app).await;
    assert!(
        ev.iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains("gate passed")),
        "{ev:?}"
    );
    drop(_load);
    app.shutdown().await;

    // Without traffic: no evidence, so the gate times out → Paused + `inconclusive`.
    let app = start_proxy(&yaml(plan), &[("stable", &stable), ("canary", &canary)]).await;
    let s = wait_status(&app, Duration::from_secs(5), |s| s["phase"] == "Paused").await;
    assert_eq!(s["phase"], "Paused", "{s}");
    assert_eq!(weight(&s), 50.0);
    assert_eq!(
        kinds(&events(&app).await).last().map(String::as_str),
        Some("inconclusive")
    );
    // Resume: the operator accepts the gate and the plan goes on.
    let (code, s) = admin(&app, "POST", "/api/v1/resume", None, None).await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["phase"], "Healthy");
    assert_eq!(weight(&s), 100.0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_canary_fails_the_gate() {
    let stable = TestServer::named("stable").start().await;
    let (canary, failing) = switchable("canary").await;
    failing.store(true, Ordering::Relaxed);
    let app = start_proxy(
        &yaml(
            "rollout:\n  steps:\n\
             \x20   - set_weight: 30\n\
             \x20   - analysis: { duration: 10s, min_requests: 20 }\n\
             \x20   - set_weight: 100\n",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let _load = Load::start(app.proxy_addr, 3, Duration::from_millis(2));
    let s = wait_status(&app, Duration::from_secs(5), |s| s["abort"] == true).await;
    assert_eq!(s["phase"], "Degraded", "{s}");
    assert_eq!(weight(&s), 0.0);
    assert!(
        s["message"].as_str().unwrap_or("").contains("error-rate"),
        "{s}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_set_after_the_plan_completed_is_guarded() {
    let stable = TestServer::named("stable").start().await;
    let (canary, failing) = switchable("canary").await;
    let app = start_proxy(
        &yaml(
            "analysis: { error_rate: { max: 5.0 } }\n\
             rollout:\n  steps:\n    - set_weight: 100\n",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let (code, s) = admin(
        &app,
        "PUT",
        "/api/v1/weight",
        Some(r#"{"canary_weight": 50}"#),
        None,
    )
    .await;
    assert_eq!(code, 200, "{s}");
    let _load = Load::start(app.proxy_addr, 4, Duration::from_millis(2));
    failing.store(true, Ordering::Relaxed);
    let s = wait_status(&app, Duration::from_secs(5), |s| s["abort"] == true).await;
    assert_eq!(
        (s["phase"].as_str(), weight(&s)),
        (Some("Degraded"), 0.0),
        "{s}"
    );
    assert!(
        s["message"].as_str().unwrap_or("").contains("error-rate"),
        "{s}"
    );
    app.shutdown().await;
}

async fn start_from_dir(yaml_text: &str, dir: &std::path::Path) -> App {
    start_from_file(yaml_text, &dir.join("config.yaml")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_file_survives_a_restart_for_the_same_version_only() {
    let stable = TestServer::named("stable").start().await;
    let canary = TestServer::named("canary").start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let text = |version: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
             upstreams:\n  stable: {{ version: v1, endpoints: [\"{}\"] }}\n  canary: {{ version: {version}, endpoints: [\"{}\"] }}\n\
             state_file: {}\n\
             rollout:\n  steps:\n    - set_weight: 20\n    - pause: {{}}\n    - set_weight: 100\n",
            stable.url(),
            canary.url(),
            state.display()
        )
    };

    let app = start_from_dir(&text("v2"), dir.path()).await;
    let s = status(&app).await;
    assert_eq!((s["phase"].as_str(), weight(&s)), (Some("Paused"), 20.0));
    let (code, _) = admin(&app, "POST", "/api/v1/abort", None, None).await;
    assert_eq!(code, 200);
    app.shutdown().await;
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["abort"], true);
    assert_eq!(saved["version"], "v2");

    // Same version: still aborted at 0, whatever the plan says.
    let app = start_from_dir(&text("v2"), dir.path()).await;
    let s = status(&app).await;
    assert_eq!(s["phase"], "Degraded", "{s}");
    assert_eq!(s["abort"], true);
    assert_eq!(s["message"], "manual abort");
    assert_eq!(weight(&s), 0.0);
    assert_eq!(app.snapshot().weight_bp, 0);
    assert!(app.snapshot().aborted);
    app.shutdown().await;

    // A new canary version starts its own rollout.
    let app = start_from_dir(&text("v3"), dir.path()).await;
    let s = status(&app).await;
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["abort"].as_bool()),
        (Some("Paused"), 20.0, Some(false))
    );
    // Promote moves it on, and the position is persisted...
    let (code, _) = admin(&app, "POST", "/api/v1/pause", None, None).await;
    assert_eq!(code, 200);
    app.shutdown().await;
    // ...so a restart resumes paused at the same step.
    let app = start_from_dir(&text("v3"), dir.path()).await;
    let s = status(&app).await;
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["step_index"].as_u64()),
        (Some("Paused"), 20.0, Some(1))
    );
    app.shutdown().await;

    // A corrupt file is reported and ignored: a fresh start, not a crash.
    std::fs::write(&state, b"{ not json").unwrap();
    let app = start_from_dir(&text("v3"), dir.path()).await;
    let s = status(&app).await;
    assert_eq!(
        (s["phase"].as_str(), weight(&s), s["abort"].as_bool()),
        (Some("Paused"), 20.0, Some(false))
    );
    // ...and the next change rewrites it whole.
    let (code, _) = admin(&app, "POST", "/api/v1/abort", None, None).await;
    assert_eq!(code, 200);
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        (saved["abort"].as_bool(), saved["version"].as_str()),
        (Some(true), Some("v3"))
    );
    app.shutdown().await;

    // A file that parses but describes a state never written (Degraded
    // without abort; aborted above weight 0) is just as corrupt.
    for bad in [
        r#"{"version":"v3","phase":"Degraded","canary_weight":0.0,"step_index":1,"abort":false,"message":"","paused":false}"#,
        r#"{"version":"v3","phase":"Degraded","canary_weight":20.0,"step_index":1,"abort":true,"message":"x","paused":false}"#,
    ] {
        std::fs::write(&state, bad).unwrap();
        let app = start_from_dir(&text("v3"), dir.path()).await;
        let s = status(&app).await;
        assert_eq!(
            (s["phase"].as_str(), weight(&s), s["abort"].as_bool()),
            (Some("Paused"), 20.0, Some(false)),
            "{bad}: {s}"
        );
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_with_no_healthy_endpoint_is_aborted() {
    let stable = TestServer::named("stable").start().await;
    let canary = TestServer::named("canary")
        .route("/health", |_req| async { resp::text(503, "down") })
        .start()
        .await;
    let app = start_proxy(
        &yaml(
            "routing: { canary_weight: 10 }\n\
             upstreams_placeholder: 1\n",
        )
        .replace("upstreams_placeholder: 1\n", "")
        .replace(
            "endpoints: [\"{canary}\"] }",
            "endpoints: [\"{canary}\"], health_check: { interval: 50ms, timeout: 40ms, unhealthy_after: 2 } }",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let s = wait_status(&app, Duration::from_secs(5), |s| s["abort"] == true).await;
    assert_eq!(s["phase"], "Degraded", "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap_or("")
            .contains("canary unhealthy"),
        "{s}"
    );
    let k = kinds(&events(&app).await);
    assert!(
        k.contains(&"unhealthy".to_string()) && k.last().map(String::as_str) == Some("aborted"),
        "{k:?}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_and_never_delay_an_abort() {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    let (stable, canary) = (
        TestServer::named("stable").start().await,
        TestServer::named("canary").start().await,
    );
    let hung = TestServer::named("hung")
        .fallback(|_req| resp::hang())
        .start()
        .await;
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    // Fails twice, then accepts.
    let flaky = TestServer::named("flaky")
        .fallback(move |_req| {
            let n = t.fetch_add(1, Ordering::SeqCst);
            async move { resp::text(if n < 2 { 503 } else { 200 }, "") }
        })
        .start()
        .await;
    let app = start_proxy(
        &yaml(
            "routing: { canary_weight: 10 }\n\
             notify:\n  webhooks:\n\
             \x20   - { url: \"{hung}/hook\", timeout: 5s }\n\
             \x20   - { url: \"{flaky}/hook\", events: [aborted], timeout: 1s }\n",
        ),
        &[
            ("stable", &stable),
            ("canary", &canary),
            ("hung", &hung),
            ("flaky", &flaky),
        ],
    )
    .await;
    let t0 = Instant::now();
    let (code, s) = admin(&app, "POST", "/api/v1/abort", None, None).await;
    let took = t0.elapsed();
    assert_eq!((code, s["abort"].as_bool()), (200, Some(true)));
    assert!(
        took < Duration::from_millis(500),
        "abort waited on a webhook: {took:?}"
    );
    assert!(
        eventually(Duration::from_secs(5), || tries.load(Ordering::SeqCst) == 3).await,
        "flaky hook tried {} times",
        tries.load(Ordering::SeqCst)
    );
    // `started` went to the hung hook (all events), not to the flaky one (aborted only).
    assert!(hung.hits() >= 1);
    app.shutdown().await;
}
