//! End-to-end tests of the data plane: real upstreams on 127.0.0.1:0, real
//! HTTP through the proxy.

use crate::support::*;
use bytes::Bytes;
use canary_proxy::Command;
use canary_proxy::Role;
use futures_util::{stream, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_is_accurate() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("routing: { canary_weight: 20 }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let client = TestClient::new();
    let n = 5000;
    let results: Vec<_> = stream::iter(0..n)
        .map(|_| {
            let c = client.clone();
            let addr = app.proxy_addr;
            async move { c.get(addr, "/").await.unwrap() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(results.iter().all(|r| r.status == 200));
    let canary_share = 100.0 * canary.hits() as f64 / n as f64;
    println!("split: canary {canary_share:.2}% of {n} at weight 20%");
    assert!((18.0..=22.0).contains(&canary_share), "{canary_share}");
    assert_eq!(stable.hits() + canary.hits(), n);
    assert_eq!(count(&app, Role::Canary, 200), canary.hits() as u64);
    assert_eq!(count(&app, Role::Stable, 200), stable.hits() as u64);
    app.shutdown().await;
}

#[tokio::test]
async fn sticky_clients_stay_on_canary_when_the_weight_rises() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("routing:\n  canary_weight: 10\n  sticky: { cookie: canary_id }\n  response_header: x-canary-version"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let client = TestClient::new();
    // A new client gets an id.
    let first = client.get(app.proxy_addr, "/").await.unwrap();
    let set = first.header("set-cookie").unwrap();
    assert!(set.starts_with("canary_id=") && set.contains("Path=/; HttpOnly; SameSite=Lax"));

    let version_of = |id: usize| {
        let c = client.clone();
        let addr = app.proxy_addr;
        async move {
            let cookie = format!("canary_id=client-{id}");
            let r = c.get_with(addr, "/", &[("cookie", &cookie)]).await.unwrap();
            assert!(r.header("set-cookie").is_none(), "known client re-assigned");
            r.header("x-canary-version").unwrap().to_string()
        }
    };
    let mut before = Vec::new();
    for id in 0..400 {
        before.push(version_of(id).await);
    }
    app.controller.call(Command::SetWeight(50.0)).await.unwrap();
    let mut moved_up = 0;
    for (id, was) in before.iter().enumerate() {
        let now = version_of(id).await;
        if was == "v2" {
            assert_eq!(now, "v2", "client-{id} went back to stable");
        } else if now == "v2" {
            moved_up += 1;
        }
        // Same answer twice in a row: the assignment is deterministic.
        assert_eq!(version_of(id).await, now);
    }
    let canary_before = before.iter().filter(|v| *v == "v2").count();
    assert!((15..=70).contains(&canary_before), "{canary_before}");
    assert!(moved_up > 100, "{moved_up}");
    app.shutdown().await;
}

#[tokio::test]
async fn overrides_take_precedence_and_are_not_evidence() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("routing:\n  canary_weight: 0\n  sticky: { cookie: canary_id }\n  override: { header: x-canary, header_value: beta, cookie: canary }\n  response_header: x-canary-version"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let c = TestClient::new();
    let ver = |h: Vec<(&'static str, &'static str)>| {
        let c = c.clone();
        let addr = app.proxy_addr;
        async move {
            let r = c.get_with(addr, "/", &h).await.unwrap();
            r.header("x-canary-version").unwrap().to_string()
        }
    };
    assert_eq!(ver(vec![("x-canary", "always")]).await, "v2");
    assert_eq!(ver(vec![("cookie", "canary=always")]).await, "v2");
    // The header beats the cookie.
    assert_eq!(
        ver(vec![("x-canary", "never"), ("cookie", "canary=always")]).await,
        "v1"
    );
    // Anything else falls through to sticky/weight (weight 0 → stable).
    assert_eq!(ver(vec![("x-canary", "maybe")]).await, "v1");
    let evidence = app
        .snapshot()
        .backend(Role::Canary)
        .stats
        .reading()
        .requests;
    assert_eq!(evidence, 0, "override-routed requests are not evidence");
    assert_eq!(count(&app, Role::Canary, 200), 2);

    // After an abort only header_value reaches the canary.
    app.controller.call(Command::Abort).await.unwrap();
    assert_eq!(ver(vec![("x-canary", "always")]).await, "v1");
    assert_eq!(ver(vec![("x-canary", "beta")]).await, "v2");
    app.shutdown().await;
}

#[tokio::test]
async fn upstream_sees_rewritten_headers() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let c = TestClient::new();
    let r = c
        .get_with(
            app.proxy_addr,
            "/h?q=1",
            &[
                ("host", "shop.example"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "spoofed.example"),
                ("connection", "keep-alive, x-private"),
                ("x-private", "secret"),
                ("keep-alive", "timeout=5"),
                ("te", "gzip"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("x-app", "kept"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let seen = stable.last().unwrap();
    let h = &seen.headers;
    assert_eq!(seen.path, "/h");
    assert_eq!(h["host"], "shop.example");
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert_eq!(h["x-app"], "kept");
    for gone in ["x-private", "keep-alive", "te", "proxy-authorization"] {
        assert!(!h.contains_key(gone), "{gone} forwarded");
    }
    let id = h["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32);
    // A client's request id passes through.
    c.get_with(app.proxy_addr, "/", &[("x-request-id", "abc-123")])
        .await
        .unwrap();
    assert_eq!(stable.last().unwrap().headers["x-request-id"], "abc-123");
    app.shutdown().await;
}

#[tokio::test]
async fn response_hop_by_hop_headers_are_removed() {
    let stable = TestServer::named("stable")
        .route("/", |_| async {
            let mut r = resp::text(200, "x");
            r.headers_mut()
                .insert("connection", "x-internal".parse().unwrap());
            r.headers_mut().insert("x-internal", "1".parse().unwrap());
            r.headers_mut().insert("x-public", "1".parse().unwrap());
            r
        })
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let r = TestClient::new().get(app.proxy_addr, "/").await.unwrap();
    assert!(r.header("x-internal").is_none());
    assert_eq!(r.header("x-public"), Some("1"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_streamed_both_ways() {
    // Download: the upstream sends the rest only after the client saw chunk one.
    let seen_first = Arc::new(Notify::new());
    let n = seen_first.clone();
    let stable = TestServer::named("stable")
        .route("/download", move |_| {
            let n = n.clone();
            async move {
                let (tx, rx) = mpsc::channel(4);
                tokio::spawn(async move {
                    tx.send(Ok(Bytes::from_static(b"first"))).await.unwrap();
                    n.notified().await;
                    tx.send(Ok(Bytes::from_static(b"-rest"))).await.unwrap();
                });
                Response::new(resp::channel_body(rx))
            }
        })
        // Upload: the upstream answers after the first chunk, before the rest exists.
        .route("/upload", |req: Request<Incoming>| async move {
            let mut body = req.into_body();
            let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
            let (tx, rx) = mpsc::channel(4);
            tx.send(Ok(first)).await.unwrap();
            tokio::spawn(async move {
                while let Some(Ok(f)) = body.frame().await {
                    if let Ok(d) = f.into_data() {
                        if tx.send(Ok(d)).await.is_err() {
                            break;
                        }
                    }
                }
            });
            Response::new(resp::channel_body(rx))
        })
        .echo("/echo")
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;

    let stream = TcpStream::connect(app.proxy_addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake::<_, StreamBody<_>>(TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);

    // download
    let (_tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    let empty = StreamBody::new(tokio_stream_from(rx));
    drop(_tx);
    send.ready().await.unwrap();
    let resp = send
        .send_request(
            Request::get("/download")
                .header("host", "x")
                .body(empty)
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first");
    seen_first.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"-rest");

    // upload: the response's first chunk arrives while our body is still open
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tx.send(Ok(Frame::data(Bytes::from_static(b"up-1"))))
        .await
        .unwrap();
    send.ready().await.unwrap();
    let resp = send
        .send_request(
            Request::post("/upload")
                .header("host", "x")
                .header("transfer-encoding", "chunked")
                .body(StreamBody::new(tokio_stream_from(rx)))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"up-1");
    tx.send(Ok(Frame::data(Bytes::from_static(b"up-2"))))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"up-2");

    // A large body through the echo route, produced and checked chunk by chunk.
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    let total = 64usize;
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
    let c2 = chunk.clone();
    tokio::spawn(async move {
        for _ in 0..total {
            if tx.send(Ok(Frame::data(c2.clone()))).await.is_err() {
                break;
            }
        }
    });
    send.ready().await.unwrap();
    let resp = send
        .send_request(
            Request::post("/echo")
                .header("host", "x")
                .header("transfer-encoding", "chunked")
                .body(StreamBody::new(tokio_stream_from(rx)))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut got = 0usize;
    while let Some(f) = body.frame().await {
        let d = f.unwrap().into_data().unwrap();
        assert!(d.iter().all(|b| *b == 7));
        got += d.len();
    }
    assert_eq!(got, total << 20);
    app.shutdown().await;
}

fn tokio_stream_from<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

#[tokio::test]
async fn failures_map_to_502_503_504_and_are_counted() {
    let stable = TestServer::named("stable")
        .route("/hang", |_| resp::hang())
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(
        &yaml("timeouts: { request: 200ms, connect: 200ms }\nretry: { attempts: 0 }\nrouting: { override: { header: x-canary } }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let c = TestClient::new();
    // 504: upstream never answers.
    for _ in 0..3 {
        let r = c.get(app.proxy_addr, "/hang").await.unwrap();
        assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
        assert!(!r.body.is_empty());
    }
    assert_eq!(count(&app, Role::Stable, 504), 3);

    // 503: no healthy endpoint.
    let snap = app.snapshot();
    for e in &snap.backend(Role::Canary).endpoints.endpoints {
        e.healthy.store(false, Ordering::Relaxed);
    }
    for _ in 0..2 {
        let r = c
            .get_with(app.proxy_addr, "/", &[("x-canary", "always")])
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.text(), "no healthy upstream\n");
    }
    assert_eq!(count(&app, Role::Canary, 503), 2);
    for e in &snap.backend(Role::Canary).endpoints.endpoints {
        e.healthy.store(true, Ordering::Relaxed);
    }

    // 502: the upstream is gone.
    let weighted = app.snapshot().backend(Role::Stable).stats.reading();
    drop(stable);
    let r = c.get(app.proxy_addr, "/").await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    // (A kept-alive connection closing under us is also a 502.)
    assert!(
        ["upstream connect failed\n", "upstream connection error\n"].contains(&r.text().as_str()),
        "{}",
        r.text()
    );
    for _ in 0..4 {
        assert_eq!(c.get(app.proxy_addr, "/").await.unwrap().status, 502);
    }
    assert_eq!(count(&app, Role::Stable, 502), 5);
    let now = app.snapshot().backend(Role::Stable).stats.reading();
    let d = now.delta(&weighted);
    assert_eq!((d.requests, d.errors), (5, 5));
    app.shutdown().await;
}

#[tokio::test]
async fn body_failure_after_headers_keeps_status_and_counts_an_error() {
    let stable = TestServer::named("stable")
        .route("/reset", |_| async { resp::reset_mid_body("partial") })
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    // 5xx only: a 200 counts as an error only because its body failed.
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let r = TestClient::new().get(app.proxy_addr, "/reset").await;
    assert!(r.is_err(), "client must see a truncated body: {r:?}");
    let stats = app.snapshot().backend(Role::Stable).stats.clone();
    assert!(eventually(Duration::from_secs(2), || stats.reading().requests == 1).await);
    assert_eq!(count(&app, Role::Stable, 200), 1);
    assert_eq!(stats.reading().errors, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn client_gone_before_headers_is_499_not_an_error() {
    let stable = TestServer::named("stable")
        .route("/hang", |_| resp::hang())
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    s.write_all(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || stable.hits() == 1).await);
    drop(s);
    let stats = app.snapshot().backend(Role::Stable).stats.clone();
    assert!(
        eventually(Duration::from_secs(2), || count(&app, Role::Stable, 499)
            == 1)
        .await
    );
    assert_eq!(stats.reading().errors, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn connect_failure_is_retried_on_another_endpoint() {
    let live = TestServer::named("live").start().await;
    let canary = TestServer::named("canary").start().await;
    let cfg = "listen: 127.0.0.1:0\nupstreams:\n  stable: { endpoints: [\"{dead}\", \"{live}\"] }\n  canary: { endpoints: [\"{canary}\"] }\n";
    let app = start_proxy(cfg, &[("live", &live), ("canary", &canary)]).await;
    let c = TestClient::new();
    for _ in 0..10 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "live"));
    }
    // PUT is idempotent: its body is given back and re-sent.
    for _ in 0..4 {
        let r = c
            .send(
                Request::put(format!("http://{}/", app.proxy_addr))
                    .body(Full::new(Bytes::from_static(b"payload")))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK);
    }
    // POST is not retried.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = c
            .send(
                Request::post(format!("http://{}/", app.proxy_addr))
                    .body(Full::new(Bytes::from_static(b"x")))
                    .unwrap(),
            )
            .await
            .unwrap();
        statuses.push(r.status.as_u16());
    }
    assert!(statuses.contains(&502), "{statuses:?}");
    app.shutdown().await;

    // Without retries a GET to the dead endpoint fails.
    let app = start_proxy(
        &format!("{cfg}retry: {{ attempts: 0 }}\n"),
        &[("live", &live), ("canary", &canary)],
    )
    .await;
    let mut s = Vec::new();
    for _ in 0..4 {
        s.push(c.get(app.proxy_addr, "/").await.unwrap().status.as_u16());
    }
    assert!(s.contains(&502), "{s:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn connect_failure_is_retried_onto_an_endpoint_of_the_other_scheme() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (tls_addr, tls_task) = tls_upstream(&ck).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let plain = TestServer::named("plain").start().await;
    let canary = TestServer::named("canary").start().await;
    let dead_port = dead_addr().await.port();
    let cfg = |endpoints: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n  stable: {{ version: v1, endpoints: [{endpoints}], ca: {} }}\n  canary: {{ version: v2, endpoints: [\"{{canary}}\"] }}\n",
            ca.display()
        )
    };
    let c = TestClient::new();
    let put = |addr: std::net::SocketAddr| {
        Request::put(format!("http://{addr}/"))
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap()
    };
    // A dead plain-http endpoint (our codec's connector) and a live https
    // one (hyper's client): every bodiless GET that lands on the dead one
    // first is given back and sent again over TLS; so is a PUT with a body.
    let app = start_proxy(
        &cfg(&format!(
            "\"{{dead}}\", \"https://localhost:{}\"",
            tls_addr.port()
        )),
        &[("canary", &canary)],
    )
    .await;
    for i in 0..8 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (200, "secure"),
            "GET {i}"
        );
        let r = c.send(put(app.proxy_addr)).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (200, "secure"),
            "PUT {i}"
        );
    }
    app.shutdown().await;

    // The other way round: a dead https endpoint, a live plain-http one.
    let app = start_proxy(
        &cfg(&format!("\"https://localhost:{dead_port}\", \"{{plain}}\"")),
        &[("plain", &plain), ("canary", &canary)],
    )
    .await;
    for i in 0..8 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (200, "plain"),
            "GET {i}"
        );
        let r = c.send(put(app.proxy_addr)).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (200, "plain"),
            "PUT {i}"
        );
    }
    assert_eq!(plain.hits(), 16);
    app.shutdown().await;
    tls_task.abort();
}

/// Log lines written while the returned guard lives on this thread (every
/// task of a current-thread test runtime runs here).
fn capture_warnings() -> (
    Arc<std::sync::Mutex<Vec<u8>>>,
    tracing::subscriber::DefaultGuard,
) {
    #[derive(Clone)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Sink(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn upstream_failures_log_one_warning_per_endpoint_per_second() {
    let (logs, _guard) = capture_warnings();
    let lines = |needle: &str| -> Vec<String> {
        String::from_utf8_lossy(&logs.lock().unwrap())
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(needle))
            .map(str::to_string)
            .collect()
    };
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(
        "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nupstreams:\n  stable: { endpoints: [\"{dead}\"] }\n  canary: { endpoints: [\"{canary}\"] }\n",
        &[("canary", &canary)],
    )
    .await;
    let dead = app.snapshot().backend(Role::Stable).endpoints.endpoints[0]
        .label
        .clone();
    let c = TestClient::new();
    let t = Instant::now();
    for _ in 0..5 {
        assert_eq!(c.get(app.proxy_addr, "/").await.unwrap().status, 502);
    }
    assert!(t.elapsed() < Duration::from_millis(900), "too slow to test");
    let first = lines(&dead);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0].contains("upstream request failed")
            && first[0].contains("status=502")
            && first[0].contains("connect failed")
            && first[0].contains("suppressed=0"),
        "{}",
        first[0]
    );
    // A second later the next failure is written, with the count held back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.get(app.proxy_addr, "/").await.unwrap().status, 502);
    let all = lines(&dead);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[1].contains("suppressed=4"), "{}", all[1]);
    app.shutdown().await;
}

#[tokio::test]
async fn health_checks_evict_and_restore_an_endpoint() {
    let healthy = Arc::new(AtomicBool::new(true));
    let h = healthy.clone();
    let flaky = TestServer::named("flaky")
        .route("/health", move |_| {
            let ok = h.load(Ordering::SeqCst);
            async move { resp::text(if ok { 200 } else { 500 }, "") }
        })
        .start()
        .await;
    let steady = TestServer::named("steady").start().await;
    let canary = TestServer::named("canary").start().await;
    let cfg = "listen: 127.0.0.1:0\nupstreams:\n  stable:\n    endpoints: [\"{flaky}\", \"{steady}\"]\n    health_check: { path: /health, interval: 50ms, timeout: 40ms, unhealthy_after: 2, healthy_after: 2 }\n  canary: { endpoints: [\"{canary}\"] }\n";
    let app = start_proxy(
        cfg,
        &[("flaky", &flaky), ("steady", &steady), ("canary", &canary)],
    )
    .await;
    let pool = app.snapshot().backend(Role::Stable).endpoints.clone();
    assert!(
        pool.endpoints.iter().all(|e| e.is_healthy()),
        "start healthy"
    );
    healthy.store(false, Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(3), || !pool.endpoints[0].is_healthy()).await);
    let c = TestClient::new();
    for _ in 0..6 {
        assert_eq!(c.get(app.proxy_addr, "/").await.unwrap().text(), "steady");
    }
    healthy.store(true, Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(3), || pool.endpoints[0].is_healthy()).await);
    let mut bodies = Vec::new();
    for _ in 0..4 {
        bodies.push(c.get(app.proxy_addr, "/").await.unwrap().text());
    }
    assert!(bodies.iter().any(|b| b == "flaky"), "{bodies:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let r = TestClient::h2c().get(app.proxy_addr, "/x").await.unwrap();
    assert_eq!(
        (r.status, r.version),
        (StatusCode::OK, http::Version::HTTP_2)
    );
    assert_eq!(r.text(), "stable");
    let seen = stable.last().unwrap();
    // :authority became Host for the HTTP/1.1 upstream.
    assert_eq!(seen.headers["host"], app.proxy_addr.to_string().as_str());
    assert_eq!(seen.version, http::Version::HTTP_11);
    app.shutdown().await;
}

#[tokio::test]
async fn tls_listener_serves_h1_and_h2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, cert, key) = self_signed(dir.path(), "localhost", "cert");
    let (stable, canary) = stable_canary().await;
    let tls = format!(
        "tls: {{ listen: 127.0.0.1:0, cert: {}, key: {} }}",
        cert.display(),
        key.display()
    );
    let app = start_proxy(&yaml(&tls), &[("stable", &stable), ("canary", &canary)]).await;
    let addr = app.tls_addr.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    for (alpn, want) in [
        (b"h2".to_vec(), http::Version::HTTP_2),
        (b"http/1.1".to_vec(), http::Version::HTTP_11),
    ] {
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn];
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let req = Request::get("https://localhost/tls")
            .header("host", "localhost")
            .body(Full::<Bytes>::default())
            .unwrap();
        let resp = if want == http::Version::HTTP_2 {
            let (mut s, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            s.send_request(req).await.unwrap()
        } else {
            let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            s.send_request(req).await.unwrap()
        };
        assert_eq!((resp.status(), resp.version()), (StatusCode::OK, want));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"stable");
        assert_eq!(stable.last().unwrap().headers["x-forwarded-proto"], "https");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn mismatched_certificate_and_key_fail_start() {
    let dir = tempfile::tempdir().unwrap();
    let a = rcgen::generate_simple_self_signed(vec!["a".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, a.cert.pem()).unwrap();
    std::fs::write(&key, b.key_pair.serialize_pem()).unwrap();
    let err = canary_proxy::certs::load_certified_key(&cert, &key).unwrap_err();
    assert!(err.to_string().starts_with("tls.key:"), "{err}");
    let err =
        canary_proxy::certs::load_certified_key(&dir.path().join("nope.pem"), &key).unwrap_err();
    assert!(err.to_string().starts_with("tls.cert:"), "{err}");
    let text = |key: &std::path::Path| {
        format!(
            "listen: 127.0.0.1:0\ntls: {{ listen: 127.0.0.1:0, cert: {}, key: {} }}\nupstreams: {{ stable: {{ endpoints: [\"http://127.0.0.1:1\"] }}, canary: {{ endpoints: [\"http://127.0.0.1:1\"] }} }}\n",
            cert.display(),
            key.display()
        )
    };
    // Config validation loads the pair as the start does: refused there first.
    let err = canary_proxy::config::parse(&text(&key), &|_| None).unwrap_err();
    assert!(err.to_string().starts_with("tls.key:"), "{err}");
    // A start given an unchecked config refuses it too.
    let own_key = dir.path().join("own.pem");
    std::fs::write(&own_key, a.key_pair.serialize_pem()).unwrap();
    let mut cfg = canary_proxy::config::parse(&text(&own_key), &|_| None).unwrap();
    if let Some(t) = cfg.tls.as_mut() {
        t.key = key.clone();
    }
    let err = canary_proxy::app::App::start(cfg, None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("tls.key"), "{err}");
}

#[tokio::test]
async fn websocket_upgrade_is_passed_through() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let stable = TestServer::named("stable")
        .websocket_echo("/ws")
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.proxy_addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let m = ws.next().await.unwrap().unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    ws.close(None).await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || count(&app, Role::Stable, 101)
            == 1)
        .await
    );
    app.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let started = Arc::new(Notify::new());
    let s = started.clone();
    let stable = TestServer::named("stable")
        .route("/slow", move |_| {
            s.notify_one();
            resp::delayed(Duration::from_millis(300), resp::text(200, "done"))
        })
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(
        &yaml("timeouts: { drain: 5s }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let addr = app.proxy_addr;
    let inflight = tokio::spawn(async move { TestClient::new().get(addr, "/slow").await });
    started.notified().await;
    let t = Instant::now();
    app.shutdown().await;
    let r = inflight.await.unwrap().unwrap();
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "done"));
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn drain_is_bounded() {
    let stable = TestServer::named("stable")
        .route("/hang", |_| resp::hang())
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(
        &yaml("timeouts: { drain: 200ms }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let addr = app.proxy_addr;
    let inflight = tokio::spawn(async move { TestClient::new().get(addr, "/hang").await });
    assert!(eventually(Duration::from_secs(2), || stable.hits() == 1).await);
    let t = Instant::now();
    app.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(inflight.await.unwrap().is_err());
}

async fn raw(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn huge_headers_get_431_and_ambiguous_framing_is_refused() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("limits: { max_header_bytes: 16384 }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let big = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let r = raw(app.proxy_addr, big.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    // Conflicting Content-Lengths: refused.
    let r = raw(
        app.proxy_addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_eq!(stable.hits(), 0);

    // Content-Length + Transfer-Encoding (a smuggling vector): 400, the
    // connection closes, and neither it nor the request smuggled behind its
    // body reaches the upstream (`attacks::content_length_with_transfer_encoding_gets_400_and_closes`
    // covers the orders and pipelining).
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    s.write_all(b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 30\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("connection closed after the response")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert_eq!(stable.hits(), 0);
    app.shutdown().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off_but_idle_keep_alive_is_not() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("timeouts: { header_read: 300ms, idle: 5s }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    // Slowloris: a header line that never ends.
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            // Keep trickling: each byte is "activity" that must not extend the deadline.
            if s.write_all(b"a").await.is_err() {
                return 0;
            }
            match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
                Ok(Ok(n)) => return n,
                Ok(Err(_)) => return 0,
                Err(_) => {}
            }
        }
    })
    .await
    .expect("slowloris connection was not closed");
    assert!(n == 0 || !String::from_utf8_lossy(&buf[..n]).contains("200"));
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );

    // A kept-alive connection quiet for longer than header_read survives.
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    app.shutdown().await;
}

#[tokio::test]
async fn max_connections_stops_accepting_at_the_limit() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(
        &yaml("limits: { max_connections: 1 }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let mut first = TcpStream::connect(app.proxy_addr).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The second connection sits in the kernel backlog: no answer while the first lives.
    let mut second = TcpStream::connect(app.proxy_addr).await.unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf))
            .await
            .is_err()
    );
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(3), second.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    app.shutdown().await;
}

/// `canary-proxy run`: exit 2 naming the bad certificate; SIGTERM → drain → exit 0.
#[test]
fn run_exit_codes() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_canary-proxy");
    let dir = tempfile::tempdir().unwrap();
    let a = rcgen::generate_simple_self_signed(vec!["a".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, a.cert.pem()).unwrap();
    std::fs::write(&key, b.key_pair.serialize_pem()).unwrap();
    let base = "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nupstreams: { stable: { endpoints: [\"http://127.0.0.1:1\"] }, canary: { endpoints: [\"http://127.0.0.1:1\"] } }\n";
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "{base}tls: {{ listen: 127.0.0.1:0, cert: {}, key: {} }}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls.key"));

    let good = dir.path().join("good.yaml");
    std::fs::write(&good, base).unwrap();
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&good)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("proxy listening"));
    assert!(ready, "no readiness line");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "run did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_weight_change_applies_to_the_next_request_on_the_same_connection() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    let ask = async |s: &mut TcpStream| {
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(ask(&mut s).await.ends_with("stable"));
    app.controller
        .call(Command::SetWeight(100.0))
        .await
        .unwrap();
    assert!(ask(&mut s).await.ends_with("canary"));
    app.shutdown().await;
}

#[tokio::test]
async fn certificate_reload_is_seen_by_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str| self_signed(dir.path(), name, name);
    let (_, c1, k1) = write("one.test");
    let (ck2, c2, k2) = write("two.test");
    let (stable, canary) = stable_canary().await;
    let tls = |c: &std::path::Path, k: &std::path::Path| {
        format!(
            "tls: {{ listen: 127.0.0.1:0, cert: {}, key: {} }}",
            c.display(),
            k.display()
        )
    };
    let text = |c: &std::path::Path, k: &std::path::Path| {
        yaml(&tls(c, k))
            .replace("{stable}", &stable.url())
            .replace("{canary}", &canary.url())
    };
    let path = dir.path().join("config.yaml");
    let app = start_from_file(&text(&c1, &k1), &path).await;
    // A mismatched pair is rejected and changes nothing.
    std::fs::write(&path, text(&c2, &k1)).unwrap();
    let e = app.controller.call(Command::Reload).await.unwrap_err();
    assert!(e.to_string().contains("tls.key"), "{e}");
    std::fs::write(&path, text(&c2, &k2)).unwrap();
    app.controller.call(Command::Reload).await.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck2.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(app.tls_addr.unwrap()).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect("two.test".try_into().unwrap(), tcp)
        .await
        .expect("handshake with the reloaded certificate");
    app.shutdown().await;
}

/// A client's `Forwarded` and `X-Real-IP` used to reach the upstream as sent,
/// so an upstream trusting either took the client's word for its address. The
/// upstream echoes the headers it received: none of the client's values.
#[tokio::test]
async fn client_forwarded_and_real_ip_never_reach_the_upstream() {
    let echo_headers = |req: Request<Incoming>| async move {
        let mut lines = String::new();
        for (k, v) in req.headers() {
            lines.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        resp::text(200, lines)
    };
    let stable = TestServer::named("stable")
        .fallback(echo_headers)
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    for client in [TestClient::new(), TestClient::h2c()] {
        let r = client
            .get_with(
                app.proxy_addr,
                "/who",
                &[
                    ("forwarded", "for=203.0.113.7;proto=https;by=203.0.113.9"),
                    ("x-real-ip", "203.0.113.7"),
                    ("x-forwarded-for", "198.51.100.1"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let seen = r.text();
        let got: Vec<&str> = seen.lines().collect();
        assert!(
            !seen.contains("203.0.113"),
            "client values forwarded:\n{seen}"
        );
        assert!(!got.iter().any(|l| l.starts_with("forwarded:")), "{seen}");
        assert!(got.contains(&"x-real-ip: 127.0.0.1"), "{seen}");
        // X-Forwarded-For keeps its append semantics: the chain, then the peer.
        assert!(
            got.contains(&"x-forwarded-for: 198.51.100.1, 127.0.0.1"),
            "{seen}"
        );
        let h = stable.last().unwrap().headers;
        assert_eq!(h.get_all("x-real-ip").iter().count(), 1);
    }
    app.shutdown().await;
}
