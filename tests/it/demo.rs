//! The demo upstream over real HTTP, and the demo story end to end.
use bytes::Bytes;
use canary_proxy::demo::{runner, view::Output, Upstream};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn call(up: &Upstream, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{}", up.addr, path))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), client().request(req))
        .await
        .expect("answer within 5 s")
        .expect("request");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

#[tokio::test]
async fn upstream_answers_with_role_and_version() {
    let up = Upstream::start_local("canary", "v2-canary").await.unwrap();
    for m in [Method::GET, Method::POST] {
        let (s, v) = call(&up, m, "/", "").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, json!({"role": "canary", "version": "v2-canary"}));
    }
    assert_eq!(
        call(&up, Method::GET, "/health", "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&up, Method::GET, "/nope", "").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&up, Method::DELETE, "/", "").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(up.fault.served(), (2, 0));
    up.shutdown().await;
}

#[tokio::test]
async fn error_sim_toggles_failures_on_root() {
    let up = Upstream::start_local("stable", "v1").await.unwrap();
    let get = |p: &'static str| call(&up, Method::GET, p, "");
    assert_eq!(get("/api/error-sim").await.1, json!({"enabled": false}));
    // Empty POST toggles, like the vote app's button.
    assert_eq!(
        call(&up, Method::POST, "/api/error-sim", "").await.1,
        json!({"enabled": true})
    );
    assert_eq!(get("/api/error-sim").await.1, json!({"enabled": true}));
    let (s, v) = get("/").await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["role"], "stable", "a failure still names its role");
    assert_eq!(
        call(&up, Method::POST, "/", "").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        get("/health").await.0,
        StatusCode::OK,
        "health is not affected"
    );
    // An explicit body sets rather than toggles.
    assert_eq!(
        call(&up, Method::POST, "/api/error-sim", r#"{"enabled": false}"#)
            .await
            .1,
        json!({"enabled": false})
    );
    assert_eq!(get("/").await.0, StatusCode::OK);
    assert_eq!(
        call(&up, Method::POST, "/api/error-sim", "{not json")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    up.shutdown().await;
}

#[tokio::test]
async fn fault_route_sets_error_rate_and_latency() {
    let up = Upstream::start_local("canary", "v2").await.unwrap();
    let (s, v) = call(
        &up,
        Method::PUT,
        "/api/fault",
        r#"{"error_rate": 1.0, "latency_ms": 60}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["error_rate"], 1.0);
    assert_eq!(v["latency_ms"], 60.0);
    let t = Instant::now();
    assert_eq!(
        call(&up, Method::GET, "/", "").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(t.elapsed() >= Duration::from_millis(60), "latency applied");

    // A rejected call changes nothing.
    for bad in [
        r#"{"error_rate": 1.5}"#,
        r#"{"error_rate": 0.1, "latency_ms": -1}"#,
        r#"{"error_rat": 0.1}"#,
        "[]",
    ] {
        let (s, v) = call(&up, Method::PUT, "/api/fault", bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert!(v["error"].is_string());
    }
    assert_eq!(up.fault.error_rate(), 1.0);

    // A fractional rate fails about that fraction.
    call(
        &up,
        Method::PUT,
        "/api/fault",
        r#"{"error_rate": 0.5, "latency_ms": 0}"#,
    )
    .await;
    let mut failed = 0;
    for _ in 0..200 {
        if call(&up, Method::GET, "/", "").await.0 == StatusCode::INTERNAL_SERVER_ERROR {
            failed += 1;
        }
    }
    assert!(
        (60..=140).contains(&failed),
        "{failed} of 200 failed at 50%"
    );
    up.shutdown().await;
}

#[tokio::test]
async fn fault_handle_changes_a_running_upstream() {
    let up = Upstream::start_local("canary", "v2").await.unwrap();
    assert_eq!(call(&up, Method::GET, "/", "").await.0, StatusCode::OK);
    up.fault.set_error_rate(1.0);
    assert_eq!(
        call(&up, Method::GET, "/", "").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    up.fault.set_error_rate(0.0);
    assert_eq!(call(&up, Method::GET, "/", "").await.0, StatusCode::OK);
    assert_eq!(up.fault.served(), (3, 1));
    up.shutdown().await;
}

#[test]
fn demo_config_is_valid() {
    let yaml = runner::config_yaml("127.0.0.1:1", "127.0.0.1:2", Duration::from_secs(3));
    let c = canary_proxy::config::parse(&yaml, &|_| None).expect("valid demo config");
    assert_eq!(c.rollout.map(|r| r.steps.len()), Some(5));
}

/// The whole story on a short timeline: the guard must roll the canary back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_rolls_the_bad_canary_back() {
    let opts = runner::Options {
        rps: 200,
        workers: 6,
        pause_at_20: Duration::from_secs(1),
        healthy_at_50: Duration::from_secs(1),
        canary_error_rate: 0.4,
        after_rollback: Duration::from_millis(500),
        timeout: Duration::from_secs(40),
        keep_running: false,
        output: Output::Quiet,
    };
    let s = runner::run(opts).await.expect("demo runs");
    eprintln!("{}", s.line());
    assert!(s.rolled_back, "{}", s.line());
    assert_eq!(s.final_phase, "Degraded");
    assert_eq!(s.final_weight, Some(0.0));
    let d = s.detection.expect("detection time");
    assert!(d < Duration::from_secs(5), "rolled back in {d:?}");
    assert!(s.canary_failed > 0 && s.canary_failed <= s.failed_requests);
}
