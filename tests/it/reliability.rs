//! Faults and abuse: hostile clients, failing upstreams, operations under load,
//! restarts over a damaged state file, TLS to upstreams. Each test is bounded
//! and loopback only. Points already proven elsewhere are listed in
//! docs/guarantees.md rather than repeated here.

use crate::support::*;
use bytes::Bytes;
use canary_proxy::app::App;
use canary_proxy::config;
use http::Response;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Closed-loop load that counts every outcome (support's `Load` does not count).
struct Counted {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Counted {
    fn start(addr: SocketAddr, workers: usize, pause: Duration) -> Counted {
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, ok, failed) = Default::default();
        let mut c = Counted {
            stop,
            sent,
            ok,
            failed,
            tasks: Vec::new(),
        };
        for _ in 0..workers {
            let (stop, sent, ok, failed) = (
                c.stop.clone(),
                c.sent.clone(),
                c.ok.clone(),
                c.failed.clone(),
            );
            c.tasks.push(tokio::spawn(async move {
                let client = TestClient::new();
                while !stop.load(Ordering::SeqCst) {
                    sent.fetch_add(1, Ordering::SeqCst);
                    match client.get(addr, "/").await {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                        other => {
                            eprintln!("load: failed request: {:?}", other.map(|r| r.status));
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                    tokio::time::sleep(pause).await;
                }
            }));
        }
        c
    }

    /// Stops and waits for every worker's last request to finish.
    async fn finish(mut self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        (
            self.sent.load(Ordering::SeqCst),
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }
}

/// Requests in the telemetry registry (what `http_requests_total` exports).
fn counted(app: &App) -> u64 {
    app.registry().all().iter().map(|v| v.total()).sum()
}

fn report(name: &str, (sent, ok, failed): (u64, u64, u64), counted: u64) {
    println!("{name}: sent={sent} ok={ok} failed={failed} counted={counted}");
}

/// Waits until the load has produced `n` more successes (the readiness signal
/// that traffic is really flowing while we act).
async fn flowing(load: &Counted, n: u64) {
    let base = load.ok();
    assert!(
        eventually(Duration::from_secs(10), || load.ok() >= base + n).await,
        "load is not flowing"
    );
}

async fn raw(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_and_never_disturb_other_clients() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("limits: { max_header_bytes: 8192 }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let load = Counted::start(app.proxy_addr, 2, Duration::from_millis(2));
    flowing(&load, 20).await;
    let before = stable.hits() + canary.hits();

    let cases: [(&[u8], &str); 9] = [
        (
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\nabc",
            "400",
        ),
        (
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: +3\r\n\r\nabc",
            "400",
        ),
        (
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3, 4\r\n\r\nabcd",
            "400",
        ),
        (b"GET / HTTP/1.1\r\nhost: x\r\n folded: y\r\n\r\n", "400"),
        (b"\x00\x01garbage\xff\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nho st: x\r\n\r\n", "400"),
        (
            b"GET / HTTP/1.1\r\nhost: x\r\nbad\x01name: y\r\n\r\n",
            "400",
        ),
        (b"GET /\x7f HTTP/9.9\r\n\r\n", "400"),
        (
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
            "400",
        ),
    ];
    for (req, code) in cases {
        let r = raw(app.proxy_addr, req).await;
        assert!(
            r.starts_with(&format!("HTTP/1.1 {code}")),
            "{:?} → {r}",
            String::from_utf8_lossy(req)
        );
        // The connection is closed after the error (read_to_end returned).
        assert_eq!(r.matches("HTTP/1.1 ").count(), 1, "{r}");
    }
    let big = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert!(raw(app.proxy_addr, big.as_bytes())
        .await
        .starts_with("HTTP/1.1 431"));

    flowing(&load, 20).await;
    let sent_ok = load.finish().await;
    assert_eq!(sent_ok.2, 0, "a normal client failed: {sent_ok:?}");
    // None of the hostile requests reached an upstream: it saw only the load's GETs.
    let seen: Vec<_> = stable
        .requests()
        .into_iter()
        .chain(canary.requests())
        .collect();
    assert!(seen.len() > before);
    assert!(seen
        .iter()
        .all(|s| s.method == http::Method::GET && s.path == "/"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_back_pressures_the_upstream() {
    const CHUNK: usize = 64 * 1024;
    const TOTAL: u64 = 256 * 1024 * 1024;
    let pushed = Arc::new(AtomicU64::new(0));
    let p = pushed.clone();
    let stable = TestServer::named("stable")
        .route("/big", move |_| {
            let p = p.clone();
            async move {
                let (tx, rx) = mpsc::channel(1);
                tokio::spawn(async move {
                    let chunk = Bytes::from(vec![b'x'; CHUNK]);
                    while p.load(Ordering::SeqCst) < TOTAL {
                        // Bounded: a stalled consumer ends the producer after 3 s.
                        let send = tx.send(Ok(chunk.clone()));
                        match tokio::time::timeout(Duration::from_secs(3), send).await {
                            Ok(Ok(())) => p.fetch_add(CHUNK as u64, Ordering::SeqCst),
                            _ => return,
                        };
                    }
                });
                Response::new(resp::channel_body(rx))
            }
        })
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;

    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Stop reading. The upstream keeps pushing until the socket buffers and the
    // proxy's bounded in-flight data fill, then stalls.
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = pushed.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
        assert!(now < TOTAL, "upstream wrote everything: no back-pressure");
    }
    assert!(
        last < 64 * 1024 * 1024,
        "{last} bytes buffered for a stalled client"
    );
    println!("stalled client: upstream stalled after {} KiB", last / 1024);
    // Other clients are still served meanwhile.
    assert_eq!(
        TestClient::new()
            .get(app.proxy_addr, "/")
            .await
            .unwrap()
            .status,
        200
    );
    drop(s);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_canary_gets_504_counts_errors_and_is_aborted() {
    let stable = TestServer::named("stable").start().await;
    let canary = TestServer::named("canary")
        .fallback(|_| resp::hang())
        .start()
        .await;
    let app = start_proxy(
        &yaml(
            "routing: { canary_weight: 50 }\ntimeouts: { request: 150ms }\n\
             analysis: { error_rate: { max: 5.0 } }\n",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let mut codes = std::collections::BTreeMap::new();
    let c = TestClient::new();
    // Traffic until the guard acts (bounded: at most 300 requests of <= 150 ms).
    for _ in 0..300 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        *codes.entry(r.status.as_u16()).or_insert(0) += 1;
        if app.snapshot().weight_bp == 0 {
            break;
        }
    }
    assert!(codes.get(&504).copied().unwrap_or(0) > 0, "{codes:?}");
    assert!(codes.keys().all(|k| *k == 200 || *k == 504), "{codes:?}");
    assert!(count(&app, canary_proxy::Role::Canary, 504) > 0);
    assert!(
        eventually(Duration::from_secs(5), || app.snapshot().weight_bp == 0).await,
        "hanging canary was not aborted"
    );
    let s = status(&app).await;
    assert_eq!(s["abort"], true, "{s}");
    // After the abort everyone gets the stable answer, quickly.
    for _ in 0..20 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "stable"));
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_down_answers_fast_with_5xx() {
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(
        "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nupstreams:\n  stable: { version: v1, endpoints: [\"{dead}\"] }\n  canary: { version: v2, endpoints: [\"{canary}\"] }\n",
        &[("canary", &canary)],
    )
    .await;
    let t = std::time::Instant::now();
    for _ in 0..20 {
        let r = TestClient::new().get(app.proxy_addr, "/").await.unwrap();
        assert!(matches!(r.status.as_u16(), 502 | 503), "{}", r.status);
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    app.shutdown().await;
}

// ---------- operations under load ----------

const WORKERS: usize = 4;
const PAUSE: Duration = Duration::from_millis(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_weight_changes_under_load_lose_nothing() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let load = Counted::start(app.proxy_addr, WORKERS, PAUSE);
    flowing(&load, 50).await;
    for i in 0..1000u32 {
        let w = (i * 7) % 101;
        let (code, s) = admin(
            &app,
            "PUT",
            "/api/v1/weight",
            Some(&format!("{{\"canary_weight\": {w}}}")),
            None,
        )
        .await;
        assert_eq!(code, 200, "{s}");
    }
    let r = load.finish().await;
    let n = counted(&app);
    report("weight_changes_x1000", r, n);
    assert_eq!((r.2, r.1, n), (0, r.0, r.0));
    app.shutdown().await;
}

fn file_text(stable: &Upstream, canary: &Upstream, i: usize) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
         upstreams:\n  stable: {{ version: v1, endpoints: [\"{}\"] }}\n  canary: {{ version: v2, endpoints: [\"{}\"] }}\n\
         routing: {{ canary_weight: {}, response_header: x-served-{} }}\n\
         timeouts: {{ request: {}s }}\n",
        stable.url(),
        canary.url(),
        i % 50,
        i % 2,
        5 + i % 3
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_and_an_invalid_one_under_load_lose_nothing() {
    let (stable, canary) = stable_canary().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let app = start_from_file(&file_text(&stable, &canary, 0), &path).await;
    let load = Counted::start(app.proxy_addr, WORKERS, PAUSE);
    flowing(&load, 50).await;
    for i in 1..=50 {
        std::fs::write(&path, file_text(&stable, &canary, i)).unwrap();
        let (code, s) = admin(&app, "POST", "/api/v1/reload", None, None).await;
        assert_eq!(code, 200, "{s}");
        flowing(&load, 5).await;
    }
    let res = load.finish().await;
    let n = counted(&app);
    report("reloads_x50", res, n);
    assert_eq!((res.2, res.1, n), (0, res.0, res.0));
    // The last reload's header is what clients see now.
    let r = TestClient::new().get(app.proxy_addr, "/").await.unwrap();
    assert!(r.header("x-served-0").is_some(), "{:?}", r.headers);

    // Invalid reload under load: 400 with its errors, old config keeps serving.
    let before = counted(&app);
    let load = Counted::start(app.proxy_addr, WORKERS, PAUSE);
    flowing(&load, 50).await;
    let before_status = status(&app).await;
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\nupstreams: {}\nrouting: { canary_weight: 300 }\n",
    )
    .unwrap();
    let (code, e) = admin(&app, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap_or("").contains("canary_weight"),
        "{e}"
    );
    flowing(&load, 50).await;
    let res = load.finish().await;
    let n = counted(&app) - before;
    report("invalid_reload", res, n);
    assert_eq!((res.2, res.1, n), (0, res.0, res.0));
    let after_status = status(&app).await;
    assert_eq!(
        after_status["canary_weight"],
        before_status["canary_weight"]
    );
    let r = TestClient::new().get(app.proxy_addr, "/").await.unwrap();
    assert!(r.header("x-served-0").is_some());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_finishes_every_request() {
    // Each request takes 30 ms upstream, so shutdown always meets some in flight.
    let slow = |name: &str| {
        TestServer::named(name)
            .fallback(|_| resp::delayed(Duration::from_millis(30), resp::text(200, "ok")))
    };
    let (stable, canary) = (slow("stable").start().await, slow("canary").start().await);
    let app = start_proxy(
        &yaml("routing: { canary_weight: 20 }\ntimeouts: { drain: 5s }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let addr = app.proxy_addr;
    let load = Counted::start(addr, 8, Duration::from_millis(1));
    flowing(&load, 100).await;
    // Stop issuing new requests, wait until every request sent has reached an
    // upstream (so none is racing a keep-alive close, which RFC 9112 §9.3.1
    // leaves to client retries), then shut down with those still in flight:
    // each must complete with 200.
    load.stop.store(true, Ordering::SeqCst);
    let sent = || load.sent.load(Ordering::SeqCst) as usize;
    assert!(
        eventually(Duration::from_secs(5), || stable.hits() + canary.hits()
            == sent())
        .await
    );
    let in_flight =
        load.sent.load(Ordering::SeqCst) - load.ok() - load.failed.load(Ordering::SeqCst);
    assert!(in_flight > 0, "nothing in flight at shutdown");
    println!("graceful_shutdown: {in_flight} requests in flight at shutdown");
    let versions = app.registry().all();
    app.shutdown().await;
    let res = load.finish().await;
    let n: u64 = versions.iter().map(|v| v.total()).sum();
    report("graceful_shutdown", res, n);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    assert_eq!((res.2, res.1, n), (0, res.0, res.0));
}

// ---------- restarts over damaged state ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_state_or_leftover_temp_file_never_breaks_the_start() {
    let (stable, canary) = stable_canary().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let text = format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
         upstreams:\n  stable: {{ version: v1, endpoints: [\"{}\"] }}\n  canary: {{ version: v2, endpoints: [\"{}\"] }}\n\
         routing: {{ canary_weight: 10 }}\nstate_file: {}\n",
        stable.url(),
        canary.url(),
        state.display()
    );
    let path = dir.path().join("config.yaml");

    // A crash between temp write and rename leaves a torn temp file behind.
    std::fs::write(
        dir.path().join(".state.json.tmp.12345"),
        b"{\"version\": \"v2\", \"pha",
    )
    .unwrap();
    let app = start_from_file(&text, &path).await;
    admin(
        &app,
        "PUT",
        "/api/v1/weight",
        Some("{\"canary_weight\": 33}"),
        None,
    )
    .await;
    admin(&app, "POST", "/api/v1/abort", None, None).await;
    app.shutdown().await;
    let app = start_from_file(&text, &path).await;
    let s = status(&app).await;
    assert_eq!(
        (s["abort"].as_bool(), s["canary_weight"].as_f64()),
        (Some(true), Some(0.0)),
        "{s}"
    );
    // Aborted canary: no weighted traffic after restart.
    for _ in 0..30 {
        let r = TestClient::new().get(app.proxy_addr, "/").await.unwrap();
        assert_eq!(r.text(), "stable");
    }
    app.shutdown().await;

    // A corrupt state file: the start succeeds from the config (and logs why).
    for junk in [
        &b"{not json"[..],
        b"",
        b"\xff\xfe\x00",
        b"{\"version\":\"v2\",\"phase\":\"Nope\"}",
    ] {
        std::fs::write(&state, junk).unwrap();
        let app = start_from_file(&text, &path).await;
        let s = status(&app).await;
        assert_eq!(s["canary_weight"].as_f64(), Some(10.0), "{s}");
        assert_eq!(
            TestClient::new()
                .get(app.proxy_addr, "/")
                .await
                .unwrap()
                .status,
            200
        );
        app.shutdown().await;
    }
}

// ---------- TLS to upstreams ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_fails_closed_without_its_ca_and_works_with_it() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (addr, task) = tls_upstream(&ck).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let canary = TestServer::named("canary").start().await;
    let cfg = |ca_line: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n  stable: {{ version: v1, endpoints: [\"https://localhost:{}\"]{ca_line} }}\n  canary: {{ version: v2, endpoints: [\"{{canary}}\"] }}\n",
            addr.port()
        )
    };
    let app = start_proxy(&cfg(""), &[("canary", &canary)]).await;
    let r = TestClient::new().get(app.proxy_addr, "/").await.unwrap();
    assert_eq!(r.status, 502, "self-signed upstream accepted: {}", r.text());
    app.shutdown().await;

    let app = start_proxy(
        &cfg(&format!(", ca: {}", ca.display())),
        &[("canary", &canary)],
    )
    .await;
    let r = TestClient::new().get(app.proxy_addr, "/").await.unwrap();
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "secure"));
    app.shutdown().await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_canary_gets_502_counts_errors_and_is_aborted() {
    let stable = TestServer::named("stable").start().await;
    let app = start_proxy(
        "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nupstreams:\n  stable: { version: v1, endpoints: [\"{stable}\"] }\n  canary: { version: v2, endpoints: [\"{dead}\"] }\nrouting: { canary_weight: 50 }\nanalysis: { error_rate: { max: 5.0 } }\n",
        &[("stable", &stable)],
    )
    .await;
    let c = TestClient::new();
    let mut codes = std::collections::BTreeMap::new();
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        let code = r.status.as_u16();
        *codes.entry(code).or_insert(0) += 1;
        if code == 200 {
            assert_eq!(r.text(), "stable");
        }
        if app.snapshot().weight_bp == 0 {
            break;
        }
    }
    assert!(app.snapshot().weight_bp == 0, "not aborted: {codes:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(codes.keys().all(|k| *k == 200 || *k == 502), "{codes:?}");
    assert!(count(&app, canary_proxy::Role::Canary, 502) > 0);
    let s = status(&app).await;
    assert_eq!(s["abort"], true, "{s}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_canary_endpoint_never_disturbs_the_stable() {
    let up = Arc::new(AtomicBool::new(true));
    let u = up.clone();
    let flappy = TestServer::named("canary")
        .fallback(move |_| {
            let ok = u.load(Ordering::SeqCst);
            async move {
                if ok {
                    resp::text(200, "canary")
                } else {
                    resp::text(503, "down")
                }
            }
        })
        .start()
        .await;
    let stable = TestServer::named("stable").start().await;
    let app = start_proxy(
        &yaml("routing: { canary_weight: 30 }\nanalysis: { error_rate: { max: 100.0 } }\n").replace(
            "endpoints: [\"{canary}\"] }",
            "endpoints: [\"{canary}\"], health_check: { interval: 30ms, timeout: 25ms, unhealthy_after: 1, healthy_after: 1 } }",
        ),
        &[("stable", &stable), ("canary", &flappy)],
    )
    .await;
    let flipper = {
        let up = up.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                up.fetch_xor(true, Ordering::SeqCst);
            }
        })
    };
    let c = TestClient::new();
    let (mut stable_ok, mut canary_seen) = (0, 0);
    while !flipper.is_finished() {
        let t = std::time::Instant::now();
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "slow while flapping");
        match r.text().as_str() {
            "stable" => {
                assert_eq!(r.status, 200);
                stable_ok += 1
            }
            _ => canary_seen += 1,
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("flapping: stable_ok={stable_ok} canary={canary_seen}");
    assert!(
        stable_ok > 100 && canary_seen > 0,
        "{stable_ok} {canary_seen}"
    );
    let k = kinds(&events(&app).await);
    assert!(k.iter().filter(|k| *k == "unhealthy").count() >= 2, "{k:?}");
    app.shutdown().await;
}

/// The TLS listener speaks 1.2 and 1.3 only (src/proxy/tls.rs sets the
/// versions). Checked from outside with `openssl s_client` when installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_refuses_tls_1_1() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        println!("openssl not installed: TLS 1.1 refusal checked by src/proxy/tls.rs only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = self_signed(dir.path(), "localhost", "cert");
    let (stable, canary) = stable_canary().await;
    let tls = format!(
        "tls: {{ listen: 127.0.0.1:0, cert: {}, key: {} }}",
        cert.display(),
        key.display()
    );
    let app = start_proxy(&yaml(&tls), &[("stable", &stable), ("canary", &canary)]).await;
    let addr = app.tls_addr.unwrap().to_string();
    let handshake = |args: &'static [&'static str]| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("timeout")
                .arg("10")
                .arg("openssl")
                .args(["s_client", "-connect", &addr, "-servername", "localhost"])
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        })
    };
    let (ok12, out12) = handshake(&["-tls1_2"]).await.unwrap();
    assert!(ok12 && out12.contains("TLSv1.2"), "{out12}");
    // SECLEVEL=0 so the client itself is willing to offer 1.1: the refusal is the server's.
    let (ok11, out11) = handshake(&["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
        .await
        .unwrap();
    println!(
        "tls1_1 attempt: {}",
        out11
            .lines()
            .filter(|l| l.contains("alert") || l.contains("error"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    assert!(!ok11 || !out11.contains("Protocol  : TLSv1.1"), "{out11}");
    assert!(
        out11.contains("alert") || out11.contains("no protocols"),
        "{out11}"
    );
    app.shutdown().await;
}

#[test]
fn admin_listener_defaults_to_loopback() {
    let c = config::parse(
        "listen: 127.0.0.1:0\nupstreams: { stable: { endpoints: [\"http://127.0.0.1:1\"] }, canary: { endpoints: [\"http://127.0.0.1:1\"] } }\n",
        &|_| None,
    )
    .expect("minimal config");
    let addr: SocketAddr = c.admin.listen.parse().expect("admin.listen is an address");
    assert!(addr.ip().is_loopback(), "{addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_oversized_headers_are_refused_and_the_connection_lives_on() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("limits: { max_header_bytes: 8192 }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let c = TestClient::h2c();
    let big = "a".repeat(20_000);
    let r = c
        .get_with(app.proxy_addr, "/", &[("x-big", &big)])
        .await
        .unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(
        stable.hits() + canary.hits(),
        0,
        "oversized request forwarded"
    );
    let r = c.get(app.proxy_addr, "/").await.unwrap();
    assert_eq!((r.status.as_u16(), r.version), (200, http::Version::HTTP_2));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tls_client_is_dropped_after_header_read() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = self_signed(dir.path(), "localhost", "cert");
    let (stable, canary) = stable_canary().await;
    let tls = format!(
        "timeouts: {{ header_read: 300ms }}\ntls: {{ listen: 127.0.0.1:0, cert: {}, key: {} }}",
        cert.display(),
        key.display()
    );
    let app = start_proxy(&yaml(&tls), &[("stable", &stable), ("canary", &canary)]).await;
    let t = std::time::Instant::now();
    let mut s = TcpStream::connect(app.tls_addr.unwrap()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("silent TLS connection was never closed");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    app.shutdown().await;
}
