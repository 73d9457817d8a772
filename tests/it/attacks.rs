//! Attacks on the limits: each test runs the attack and shows that a normal
//! client keeps getting answers meanwhile.
use crate::support::*;
use canary_proxy::Role;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    // Parsed on the runtime, one request would wait about the whole reload;
    // what is left on it (applying the new snapshot) is a small part.
    assert!(served >= 10, "{served} requests during a {took:?} reload");
    assert!(
        slowest < took / 2,
        "a request waited {slowest:?} during a {took:?} reload"
    );
    assert_eq!(
        app.snapshot().backends[1].endpoints.endpoints.len(),
        100_000
    );
    app.shutdown().await;
}
/// A normal client beside an attack: GET / every 20 ms over one keep-alive
/// HTTP/1.1 connection pool, counting the answers.
struct Bystander {
    ok: Arc<AtomicUsize>,
    other: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Bystander {
    fn start(addr: SocketAddr) -> Bystander {
        let ok = Arc::new(AtomicUsize::new(0));
        let other = Arc::new(Mutex::new(Vec::new()));
        let (o, x) = (ok.clone(), other.clone());
        let task = tokio::spawn(async move {
            let c = TestClient::new();
            loop {
                match tokio::time::timeout(Duration::from_secs(3), c.get(addr, "/")).await {
                    Ok(Ok(r)) if r.status == 200 => {
                        o.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Ok(r)) => x.lock().unwrap().push(format!("status {}", r.status)),
                    Ok(Err(e)) => x.lock().unwrap().push(e),
                    Err(_) => x.lock().unwrap().push("no answer within 3 s".into()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Bystander { ok, other, task }
    }

    /// Stops and asserts it got only 200s, at least `min` of them.
    fn check(self, min: usize) {
        self.task.abort();
        let other = self.other.lock().unwrap();
        let ok = self.ok.load(Ordering::SeqCst);
        assert!(
            other.is_empty(),
            "the normal client got {other:?} ({ok} × 200)"
        );
        assert!(ok >= min, "the normal client got only {ok} answers");
    }
}

/// Opens an h2c connection whose every stream has a flow-control window of 0
/// and keeps up to `streams` requests for `path` open on it (new ones as the
/// server lets it). Resolves when the proxy closes the connection.
async fn h2_window_zero_client(addr: SocketAddr, path: &'static str, streams: usize) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let opener = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..streams {
            send = match send.ready().await {
                Ok(s) => s,
                Err(_) => break,
            };
            let req = http::Request::get(format!("http://{addr}{path}"))
                .body(())
                .unwrap();
            match send.send_request(req, true) {
                Ok((resp, _)) => held.push(resp),
                Err(_) => break,
            }
        }
        std::future::pending::<()>().await;
        drop(held);
    });
    let _ = conn.await;
    opener.abort();
}

/// Polls `probe` every 10 ms for `within`; returns its largest value.
async fn peak(within: Duration, probe: impl Fn() -> usize) -> usize {
    let end = Instant::now() + within;
    let mut max = 0;
    while Instant::now() < end {
        max = max.max(probe());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    max
}

/// The h2 fan-out: connections × streams for a 64 MiB body with the window
/// at 0, so no byte is ever taken. Each stream holds an upstream connection;
/// `limits.max_h2_streams` bounds how many per client connection, and
/// `timeouts.send` releases them all: the stalled connection is closed
/// between `send` and 1.25 × `send` after its streams stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_stalled_at_window_zero_are_bounded_and_released_after_send() {
    const CONNS: usize = 4;
    const STREAMS: usize = 16;
    let big = Arc::new(AtomicUsize::new(0));
    let b = big.clone();
    let stable = TestServer::named("stable")
        .route("/big", move |_| {
            let r = resp::stream_bytes(64 << 20, &b);
            async move { r }
        })
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let send = Duration::from_millis(1500);
    let app = start_proxy(
        &yaml(&format!(
            "timeouts: {{ send: 1500ms }}\nlimits: {{ max_h2_streams: {STREAMS} }}"
        )),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let normal = Bystander::start(app.proxy_addr);
    let started = Instant::now();
    let attackers: Vec<_> = (0..CONNS)
        .map(|_| tokio::spawn(h2_window_zero_client(app.proxy_addr, "/big", 200)))
        .collect();
    // Every allowed stream gets its upstream connection, and no more.
    // (`big`: upstream responses alive, each on its own upstream connection.)
    let held = peak(send / 2, || big.load(Ordering::SeqCst)).await;
    println!(
        "h2 fan-out: {CONNS} connections × 200 streams asked → {held} upstream connections open"
    );
    assert!(
        held >= CONNS * STREAMS / 2,
        "the attack did not take hold: {held} upstream connections"
    );
    assert!(
        held <= CONNS * STREAMS + 2,
        "{held} upstream connections for {CONNS} h2 connections of {STREAMS} streams"
    );
    // Still held just before `send`: the release is the send timeout's doing.
    let before = big.load(Ordering::SeqCst);
    assert!(before >= CONNS * STREAMS / 2, "released early: {before}");
    // ... and released by send × 1.25 plus a margin for a busy machine.
    for a in attackers {
        tokio::time::timeout(send * 2 + Duration::from_secs(2), a)
            .await
            .expect("the stalled h2 connection was closed")
            .unwrap();
    }
    let closed = started.elapsed();
    println!("h2 fan-out: stalled connections closed after {closed:?} (send {send:?})");
    assert!(closed >= send, "{closed:?}");
    settle(
        Duration::from_secs(2),
        "upstream connections released",
        || big.load(Ordering::SeqCst),
        |n| *n == 0,
    )
    .await;
    normal.check(10);
    app.shutdown().await;
}

/// The HTTP/1.1 form: a client asks for a 64 MiB streaming response and never
/// reads. Once the socket buffers are full, the write waits; after
/// `timeouts.send` without a successful write the connection is closed and
/// the upstream connection released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_that_never_reads_is_cut_off_after_send() {
    let big = Arc::new(AtomicUsize::new(0));
    let b = big.clone();
    let stable = TestServer::named("stable")
        .route("/big", move |_| {
            let r = resp::stream_bytes(64 << 20, &b);
            async move { r }
        })
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let send = Duration::from_secs(1);
    let app = start_proxy(
        &yaml("timeouts: { send: 1s }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let normal = Bystander::start(app.proxy_addr);
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(eventually(Duration::from_secs(2), || big.load(Ordering::SeqCst) == 1).await);
    // Held while the buffers fill and for `send` after.
    tokio::time::sleep(send / 2).await;
    assert_eq!(big.load(Ordering::SeqCst), 1, "released too early");
    settle(
        Duration::from_secs(10),
        "upstream response released",
        || big.load(Ordering::SeqCst),
        |n| *n == 0,
    )
    .await;
    let released = started.elapsed();
    println!("never-reading client cut off after {released:?} (send {send:?})");
    assert!(released >= send, "{released:?}");
    // The client's connection is closed: what it can still read ends (EOF or reset).
    let mut sink = vec![0u8; 1 << 20];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection stayed open");
    normal.check(10);
    app.shutdown().await;
}

/// HAProxy's `maxconn` per endpoint: with `upstreams.stable.max_connections`
/// reached, the next request gets a 503 at once (counted as a 503), a request
/// finds the endpoint that still has room, and everything is served again
/// once the held requests end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_at_max_connections_answers_503_and_recovers() {
    let release = Arc::new(tokio::sync::Notify::new());
    let hang = |name: &'static str, release: Arc<tokio::sync::Notify>| {
        TestServer::named(name).route("/hold", move |_| {
            let r = release.clone();
            async move {
                r.notified().await;
                resp::text(200, "released")
            }
        })
    };
    let a = hang("a", release.clone()).start().await;
    let b = hang("b", release.clone()).start().await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(
        "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nupstreams:\n  stable: { endpoints: [\"{a}\", \"{b}\"], max_connections: 2 }\n  canary: { endpoints: [\"{canary}\"] }\n",
        &[("a", &a), ("b", &b), ("canary", &canary)],
    )
    .await;
    let addr = app.proxy_addr;
    // Four requests held: two per endpoint (the second endpoint takes what the first cannot).
    let held: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { TestClient::new().get(addr, "/hold").await }))
        .collect();
    settle(
        Duration::from_secs(3),
        "both endpoints full",
        || (a.hits(), b.hits()),
        |h| *h == (2, 2),
    )
    .await;
    let t = Instant::now();
    let r = TestClient::new().get(addr, "/").await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "upstream connection limit reached\n");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(count(&app, Role::Stable, 503), 1);
    // Over h2 too, and a POST (not retried on connect failure) is refused the same way.
    let r = TestClient::h2c().get(addr, "/").await.unwrap();
    assert_eq!(r.status, 503);
    // The held requests end: the slots are free again.
    for _ in 0..10 {
        release.notify_waiters();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for h in held {
        assert_eq!(h.await.unwrap().unwrap().status, 200);
    }
    for _ in 0..10 {
        assert_eq!(TestClient::new().get(addr, "/").await.unwrap().status, 200);
    }
    let stats = app.snapshot();
    for e in &stats.backend(Role::Stable).endpoints.endpoints {
        assert_eq!(e.in_use(), 0, "{} still counts connections", e.label);
    }
    app.shutdown().await;
}

/// WebSocket tunnels hold their client connection's slot: with
/// `limits.max_connections: 6`, one keep-alive client and 5 tunnels fill it,
/// further tunnels wait in the backlog (they used to be uncounted: 300 open
/// with a limit of 20), the keep-alive client is served meanwhile; tunnels
/// quiet for `timeouts.tunnel_idle` are closed and free their slots, an
/// active one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnels_count_against_max_connections_and_close_when_idle() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let stable = TestServer::named("stable")
        .websocket_echo("/ws")
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let idle = Duration::from_millis(1500);
    let app = start_proxy(
        &yaml("limits: { max_connections: 6 }\ntimeouts: { tunnel_idle: 1500ms }"),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let addr = app.proxy_addr;
    let url = format!("ws://{addr}/ws");
    // The normal client's keep-alive connection takes the first slot.
    let mut normal = TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut get = async |s: &mut TcpStream| {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .expect("the keep-alive client is answered")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(get(&mut normal).await.starts_with("HTTP/1.1 200"));
    // 12 tunnels asked for at once: 5 get through.
    let opened = Instant::now();
    let tries: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_millis(700),
                    tokio_tungstenite::connect_async(url),
                )
                .await
            })
        })
        .collect();
    let mut tunnels = Vec::new();
    for t in tries {
        if let Ok(Ok((ws, _))) = t.await.unwrap() {
            tunnels.push(ws);
        }
    }
    assert_eq!(tunnels.len(), 5, "tunnels beyond limits.max_connections");
    assert!(get(&mut normal).await.starts_with("HTTP/1.1 200"));
    // One tunnel keeps talking; the other four go quiet and are closed.
    let mut active = tunnels.pop().unwrap();
    let chatter = tokio::spawn(async move {
        for i in 0..35 {
            active
                .send(Message::text(format!("ping {i}")))
                .await
                .unwrap();
            let m = active.next().await.unwrap().unwrap();
            assert_eq!(m.into_text().unwrap().as_str(), format!("ping {i}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        active
    });
    for mut ws in tunnels {
        let end = tokio::time::timeout(idle * 2 + Duration::from_secs(2), ws.next())
            .await
            .expect("an idle tunnel is closed");
        assert!(
            !matches!(end, Some(Ok(Message::Text(_)))),
            "unexpected message {end:?}"
        );
    }
    let closed = opened.elapsed();
    println!("idle tunnels closed {closed:?} after they were asked for (tunnel_idle {idle:?})");
    assert!(closed >= idle, "{closed:?}");
    // The active tunnel lived through it all (3.5 s of traffic, > 2 × tunnel_idle).
    let mut active = chatter.await.unwrap();
    active.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        active
            .next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "still here"
    );
    // The freed slots take new tunnels.
    for _ in 0..3 {
        let (mut ws, _) = tokio::time::timeout(
            Duration::from_secs(3),
            tokio_tungstenite::connect_async(&url),
        )
        .await
        .expect("a freed slot takes a new tunnel")
        .unwrap();
        ws.send(Message::text("new")).await.unwrap();
        assert_eq!(
            ws.next()
                .await
                .unwrap()
                .unwrap()
                .into_text()
                .unwrap()
                .as_str(),
            "new"
        );
    }
    assert!(get(&mut normal).await.starts_with("HTTP/1.1 200"));
    app.shutdown().await;
}

/// RFC 9112 §3.2 on raw sockets: an HTTP/1.1 request without `Host`, with
/// two, or with an invalid one gets a 400 and reaches no upstream; an
/// absolute-form target's authority wins over `Host` and is what the
/// upstream gets as `Host` and `X-Forwarded-Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_single_valid_host_get_400() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let normal = Bystander::start(app.proxy_addr);
    let bad = [
        "GET /bad HTTP/1.1\r\n\r\n",
        "GET /bad HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        "GET /bad HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\n\r\n",
        "GET /bad HTTP/1.1\r\nHost: \r\n\r\n",
        "GET /bad HTTP/1.1\r\nHost: user@a.example\r\n\r\n",
        "GET /bad HTTP/1.1\r\nHost: a.example/path\r\n\r\n",
        "GET /bad HTTP/1.1\r\nHost: a.example:http\r\n\r\n",
        "GET /bad HTTP/1.1\r\nHost: [::1\r\n\r\n",
        "GET http://user@a.example/bad HTTP/1.1\r\nHost: a.example\r\n\r\n",
        "GET /bad HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    ];
    for req in bad {
        let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let answer = read_until_close(&mut s, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.0 400"),
            "{req:?} → {answer:?}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    let reached = stable
        .requests()
        .into_iter()
        .chain(canary.requests())
        .any(|r| r.path == "/bad");
    assert!(!reached, "a bad request reached an upstream");
    // HTTP/1.0 needs no Host.
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    s.write_all(b"GET /ten HTTP/1.0\r\n\r\n").await.unwrap();
    let answer = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    // Absolute form: the target's authority wins.
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    s.write_all(b"GET http://target.example:8080/abs?q=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = stable.last().unwrap();
    assert_eq!(seen.path, "/abs");
    assert_eq!(seen.headers["host"], "target.example:8080");
    assert_eq!(seen.headers["x-forwarded-host"], "target.example:8080");
    normal.check(1);
    app.shutdown().await;
}

/// Request smuggling: `Content-Length` with `Transfer-Encoding`, in either
/// order, alone or pipelined behind ordinary requests, gets a 400, the
/// connection is closed, and nothing of it (nor what is smuggled behind it)
/// reaches an upstream. hyper alone would let chunked win and forward it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_gets_400_and_closes() {
    let (stable, canary) = stable_canary().await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let normal = Bystander::start(app.proxy_addr);
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let attacks = [
        format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
    ];
    for a in &attacks {
        let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
        s.write_all(a.as_bytes()).await.unwrap();
        let answer = read_until_close(&mut s, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{a:?} → {answer:?}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    }
    let paths = || -> Vec<String> {
        stable
            .requests()
            .into_iter()
            .chain(canary.requests())
            .map(|r| r.path)
            .filter(|p| p != "/") // the normal client's
            .collect()
    };
    assert!(paths().is_empty(), "{:?}", paths());
    // Pipelined behind a bodiless GET and a Content-Length POST: those two
    // are answered, the third is refused, nothing after it is read.
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    let pipelined = format!(
        "GET /first HTTP/1.1\r\nHost: x\r\n\r\nPOST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbodyPOST /third HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    s.write_all(pipelined.as_bytes()).await.unwrap();
    let answer = read_until_close(&mut s, Duration::from_secs(5)).await;
    let statuses: Vec<&str> = answer.split("HTTP/1.1 ").skip(1).map(|r| &r[..3]).collect();
    assert_eq!(statuses, ["200", "200", "400"], "{answer}");
    assert_eq!(paths(), ["/first", "/second"]);
    // A chunked request alone is forwarded.
    let mut s = TcpStream::connect(app.proxy_addr).await.unwrap();
    s.write_all(b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    normal.check(1);
    app.shutdown().await;
}

/// Writes a config for the real binary with `stable`/`canary` as upstreams.
fn binary_config(
    dir: &std::path::Path,
    stable: &Upstream,
    canary: &Upstream,
) -> std::path::PathBuf {
    let path = dir.join("proxy.yaml");
    let text = yaml("")
        .replace("{stable}", &stable.url())
        .replace("{canary}", &canary.url());
    std::fs::write(&path, text).unwrap();
    path
}

/// An h2 rapid-reset storm (CVE-2023-44487): each connection opens streams
/// and resets them at once until the proxy sends GOAWAY `ENHANCE_YOUR_CALM`.
/// Each such connection used to write one WARN line (6 MB of log in 12 s);
/// now the real binary, with its default log filter, writes one line a
/// second saying how many it held back, and every closed connection is
/// accounted for. A normal client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_rapid_reset_storm_writes_one_log_line_a_second() {
    const STORM: usize = 30;
    let (stable, canary) = stable_canary().await;
    let dir = tempfile::tempdir().unwrap();
    let bin = Binary::start(&binary_config(dir.path(), &stable, &canary), None);
    let addr = bin.proxy;
    let normal = Bystander::start(addr);
    // One abusive connection: resets streams until the proxy closes it.
    let abuse = move || async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut send, conn): (h2::client::SendRequest<bytes::Bytes>, _) =
            h2::client::handshake(tcp).await.unwrap();
        let conn = tokio::spawn(conn);
        for i in 0..5000 {
            if i % 20 == 0 {
                // Share the test's runtime with the normal client.
                tokio::task::yield_now().await;
            }
            send = match send.ready().await {
                Ok(s) => s,
                Err(_) => break,
            };
            let req = http::Request::get(format!("http://{addr}/"))
                .body(())
                .unwrap();
            match send.send_request(req, false) {
                Ok((_resp, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
                Err(_) => break,
            }
        }
        let end = tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("the proxy closes an abusive connection")
            .unwrap();
        // GOAWAY, then the close: the client may see either first.
        assert!(end.is_err(), "{end:?}");
    };
    let started = Instant::now();
    let storm: Vec<_> = (0..STORM).map(|_| tokio::spawn(abuse())).collect();
    for s in storm {
        s.await.unwrap();
    }
    let took = started.elapsed();
    // A second later one more: its line carries the count held back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    abuse().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let warns = bin.lines_at("WARN");
    println!(
        "rapid reset: {} connections in {took:?} → {} WARN lines",
        STORM + 1,
        warns.len()
    );
    assert!(
        warns.len() as u64 <= took.as_secs() + 3,
        "{} lines for {} connections: {warns:#?}",
        warns.len(),
        STORM + 1
    );
    // Each closed connection is in a line or in a line's count.
    let mut accounted = 0;
    for w in &warns {
        let v: serde_json::Value = serde_json::from_str(w).unwrap();
        assert_eq!(
            v["fields"]["message"], "h2 client connection closed for a protocol violation",
            "{w}"
        );
        accounted += 1 + v["fields"]["suppressed"].as_u64().unwrap();
    }
    assert_eq!(accounted, STORM as u64 + 1, "{warns:#?}");
    normal.check(10);
}

/// Out of descriptors: the real binary under `RLIMIT_NOFILE` 64 with 150
/// client connections held open. Accept fails with `EMFILE`; the loop backs
/// off (50 ms) instead of spinning on the error (CPU time stays low), writes
/// one WARN line a second at most, and serves again once the connections
/// go away. (No client can be served while every descriptor is taken — the
/// proxy needs one per upstream connection too — so the normal client here
/// is the one after the attack.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    let (stable, canary) = stable_canary().await;
    let dir = tempfile::tempdir().unwrap();
    let bin = Binary::start(&binary_config(dir.path(), &stable, &canary), Some(64));
    let addr = bin.proxy;
    assert_eq!(TestClient::new().get(addr, "/").await.unwrap().status, 200);
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Exhausted: accept is failing.
    let exhausted = eventually(Duration::from_secs(5), || {
        bin.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("accept failed"))
    })
    .await;
    assert!(
        exhausted,
        "no accept failure: {:?}",
        bin.log.lock().unwrap()
    );
    let (cpu0, t0) = (bin.cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu, wall) = (bin.cpu_time() - cpu0, t0.elapsed());
    let lines = bin
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    println!("EMFILE: {cpu:?} CPU in {wall:?}, {lines} accept-failure lines");
    assert!(cpu < wall / 4, "spinning: {cpu:?} CPU in {wall:?}");
    assert!(lines <= 4, "{lines} accept-failure lines in ~2 s");
    // The attacker leaves: served again.
    drop(held);
    let back = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(2), TestClient::new().get(addr, "/")).await
            {
                if r.status == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(back.is_ok(), "not serving after the descriptors came back");
}
