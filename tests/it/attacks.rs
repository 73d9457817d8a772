//! Attacks on the limits: each test runs the attack and shows that a normal
//! client keeps getting answers meanwhile.
use crate::support::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads what the server sends until it closes (or `within` passes).
async fn read_until_close(s: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_flood_never_reaches_the_data_plane() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    // Far more connections than the admin listener holds, each announcing a
    // 60 kB body and sending one byte of it.
    let mut held = Vec::new();
    for _ in 0..4 * canary_proxy::admin::MAX_CONNECTIONS {
        let mut s = TcpStream::connect(app.admin_addr).await.unwrap();
        s.write_all(
            b"PUT /api/v1/weight HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 60000\r\n\r\n{",
        )
        .await
        .unwrap();
        held.push(s);
    }
    // The data plane does not notice.
    let c = TestClient::new();
    for _ in 0..50 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!(r.status, 200);
    }
    // The first held connections are cut off once the body read times out.
    let started = Instant::now();
    let answer = read_until_close(
        &mut held[0],
        canary_proxy::admin::BODY_READ_TIMEOUT + Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < canary_proxy::admin::BODY_READ_TIMEOUT + Duration::from_secs(4));
    // Once the attacker goes away, the admin API answers again; the weight never moved.
    drop(held);
    let s = tokio::time::timeout(Duration::from_secs(5), status(&app))
        .await
        .expect("admin answers after the flood");
    assert_eq!(s["canary_weight"], 0.0);
    assert_eq!(c.get(app.proxy_addr, "/").await.unwrap().status, 200);
    app.shutdown().await;
}

/// One raw HTTP/1.1 request; returns the status code and the whole answer.
async fn raw(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{head}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let text = read_until_close(&mut s, Duration::from_secs(5)).await;
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_cannot_drive_the_admin_api() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("routing: { canary_weight: 10 }").replace(
            "admin: { listen: 127.0.0.1:0 }",
            "admin: { listen: 127.0.0.1:0, hosts: [canary-admin.internal] }",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let a = app.admin_addr;
    let c = TestClient::new();
    // What a browser sends for a cross-site `fetch(..., {method: "POST", mode: "no-cors"})`.
    let attacks = [
        format!("POST /api/v1/abort HTTP/1.1\r\nHost: {a}\r\nOrigin: http://evil.example"),
        format!("POST /api/v1/abort HTTP/1.1\r\nHost: {a}\r\nOrigin: null"),
        format!("POST /api/v1/abort HTTP/1.1\r\nHost: {a}\r\nSec-Fetch-Site: cross-site"),
        format!("POST /api/v1/abort HTTP/1.1\r\nHost: {a}\r\nSec-Fetch-Site: same-site"),
        // DNS rebinding: the attacker's name now points at 127.0.0.1.
        format!(
            "POST /api/v1/abort HTTP/1.1\r\nHost: rebind.attacker.example:{}",
            a.port()
        ),
        format!(
            "GET /api/v1/status HTTP/1.1\r\nHost: rebind.attacker.example:{}",
            a.port()
        ),
    ];
    for head in &attacks {
        let (code, text) = raw(a, head).await;
        assert_eq!(code, 403, "{head}\n{text}");
        assert!(text.contains("\"error\""), "{text}");
        // The data plane serves meanwhile.
        assert_eq!(c.get(app.proxy_addr, "/").await.unwrap().status, 200);
    }
    let s = status(&app).await;
    assert_eq!(
        (s["abort"].as_bool(), weight(&s)),
        (Some(false), 10.0),
        "{s}"
    );

    // The status page's own buttons (same origin), a listed name, and curl work.
    let own = format!("POST /api/v1/pause HTTP/1.1\r\nHost: {a}\r\nOrigin: http://{a}\r\nSec-Fetch-Site: same-origin");
    assert_eq!(
        raw(a, &own).await.0,
        409,
        "manual mode: the call reached the controller"
    );
    let listed = "GET /api/v1/status HTTP/1.1\r\nHost: canary-admin.internal:9901";
    assert_eq!(raw(a, listed).await.0, 200);
    let scraper = "GET /metrics HTTP/1.1\r\nHost: canary-proxy:9901";
    assert_eq!(
        raw(a, scraper).await.0,
        200,
        "probes and scrapers are not refused by name"
    );
    let (code, _) = admin(&app, "POST", "/api/v1/abort", None, None).await;
    assert_eq!(code, 200);

    // The page cannot be framed and loads nothing from elsewhere.
    let (code, page) = raw(a, &format!("GET / HTTP/1.1\r\nHost: {a}")).await;
    assert_eq!(code, 200);
    let lower = page.to_ascii_lowercase();
    assert!(lower.contains("x-frame-options: deny"), "{page}");
    assert!(
        lower.contains("content-security-policy: default-src 'none'"),
        "{page}"
    );
    app.shutdown().await;
}

/// A 100k-endpoint config takes seconds to parse and validate (in a debug
/// build). A reload reads it on the blocking pool: on a current-thread
/// runtime (`workers: 1`), requests keep flowing meanwhile.
#[tokio::test]
async fn a_huge_config_reload_does_not_stall_requests() {
    let (stable, canary) = stable_canary().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let base = yaml("")
        .replace("{stable}", &stable.url())
        .replace("{canary}", &canary.url());
    let app = start_from_file(&base, &path).await;
    // The canary (weight 0, no health check: never contacted) gets 100k endpoints.
    let many: Vec<String> = (0..100_000u32)
        .map(|i| {
            format!(
                "\"http://127.{}.{}.{}:9\"",
                1 + i / 65536,
                (i / 256) % 256,
                i % 256
            )
        })
        .collect();
    let huge = yaml("").replace("{stable}", &stable.url()).replace(
        "endpoints: [\"{canary}\"]",
        &format!("endpoints: [{}]", many.join(", ")),
    );
    std::fs::write(&path, huge).unwrap();

    let controller = app.controller.clone();
    let started = Instant::now();
    let reload = tokio::spawn(async move { controller.call(canary_proxy::Command::Reload).await });
    let c = TestClient::new();
    let (mut served, mut slowest) = (0, Duration::ZERO);
    while !reload.is_finished() {
        let t = Instant::now();
        assert_eq!(c.get(app.proxy_addr, "/").await.unwrap().status, 200);
        slowest = slowest.max(t.elapsed());
        served += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    reload.await.unwrap().expect("the huge config is valid");
    println!("reload took {took:?}; {served} requests meanwhile, slowest {slowest:?}");
    assert!(served > 0);
    assert!(
        slowest < Duration::from_millis(500) || slowest < took / 4,
        "a request waited {slowest:?} during a {took:?} reload"
    );
    assert_eq!(
        app.snapshot().backends[1].endpoints.endpoints.len(),
        100_000
    );
    app.shutdown().await;
}
