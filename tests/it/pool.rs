//! The upstream connection pool (src/upstream/pool.rs): keep-alive reuse, and a
//! connection is never reused unless its previous response was read to the end.

use crate::support::*;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

async fn pair_with(stable: TestServer) -> (Upstream, Upstream) {
    (
        stable.start().await,
        TestServer::named("canary").start().await,
    )
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let (stable, canary) = pair_with(TestServer::named("stable")).await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let c = TestClient::new();
    for _ in 0..50 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "stable"));
    }
    assert_eq!(stable.hits(), 50);
    assert_eq!(stable.connections(), 1, "keep-alive connection reused");
    app.shutdown().await;
}

#[tokio::test]
async fn connection_close_from_upstream_is_not_reused() {
    let stable = TestServer::named("stable").route("/", |_req| async {
        let mut r = resp::text(200, "closing");
        r.headers_mut()
            .insert("connection", http::HeaderValue::from_static("close"));
        r
    });
    let (stable, canary) = pair_with(stable).await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;
    let c = TestClient::new();
    for _ in 0..10 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "closing"));
    }
    assert_eq!(stable.connections(), 10);
    app.shutdown().await;
}

#[tokio::test]
async fn connection_with_an_unfinished_body_is_never_reused() {
    // `/stream` sends one chunk and then holds the body open: the client reads
    // the headers and the chunk, then goes away.
    let (hold_tx, mut hold_rx) = mpsc::unbounded_channel::<mpsc::Sender<_>>();
    let hold = std::sync::Mutex::new(Some(hold_tx));
    let stable = TestServer::named("stable").route("/stream", move |_req| {
        let keep = hold.lock().unwrap().clone();
        async move {
            let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            tx.send(Ok(Bytes::from_static(b"first chunk")))
                .await
                .unwrap();
            if let Some(k) = keep {
                let _ = k.send(tx); // keep the body open
            }
            let mut r = Response::new(resp::channel_body(rx));
            *r.status_mut() = StatusCode::OK;
            r
        }
    });
    let (stable, canary) = pair_with(stable).await;
    let app = start_proxy(&yaml(""), &[("stable", &stable), ("canary", &canary)]).await;

    let client = TestClient::new();
    let resp = client
        .raw(app.proxy_addr, "/stream")
        .await
        .expect("response headers");
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(
        first.into_data().unwrap(),
        Bytes::from_static(b"first chunk")
    );
    let _open = hold_rx.recv().await.expect("body held open");
    drop(body); // client leaves mid-body

    // The next request must get a clean answer on a fresh upstream connection,
    // never the rest of the abandoned body.
    let r = TestClient::new().get(app.proxy_addr, "/").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "stable"));
    assert_eq!(stable.connections(), 2);
    app.shutdown().await;
}

/// A hand-written HTTP/1.1 upstream: answers each connection's requests with
/// `answers` in turn (raw bytes), then closes without saying so first.
async fn raw_upstream(answers: Vec<&'static [u8]>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                for answer in answers {
                    // One read is one request head here (bodiless GET/HEAD).
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => {}
                        _ => return,
                    }
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

async fn proxy_to_raw(raw: std::net::SocketAddr) -> (canary_proxy::app::App, Upstream) {
    let canary = TestServer::named("canary").start().await;
    let config = yaml("").replace("{stable}", &format!("http://{raw}"));
    let app = start_proxy(&config, &[("canary", &canary)]).await;
    (app, canary)
}

#[tokio::test]
async fn upstream_that_closes_silently_after_each_answer_never_fails_a_request() {
    // No `Connection: close`: the proxy pools the connection, and the next
    // request finds it closed (when taken, or just after being resent).
    let (raw, accepted) =
        raw_upstream(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]).await;
    let (app, _canary) = proxy_to_raw(raw).await;
    let c = TestClient::new();
    for i in 0..30 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (StatusCode::OK, "ok"),
            "request {i}"
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 30);
    app.shutdown().await;
}

#[tokio::test]
async fn chunked_head_and_no_content_answers_keep_the_connection() {
    let (raw, accepted) = raw_upstream(vec![
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    ])
    .await;
    let (app, _canary) = proxy_to_raw(raw).await;
    let c = TestClient::new();
    let r = c.get(app.proxy_addr, "/").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "abcde"));
    let r = c.get(app.proxy_addr, "/").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (StatusCode::NO_CONTENT, ""));
    let r = c.get(app.proxy_addr, "/").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "hello"));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for all three"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_upstream_answers_are_502_or_truncated_never_reused() {
    let (raw, accepted) = raw_upstream(vec![
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
    ])
    .await;
    let (app, _canary) = proxy_to_raw(raw).await;
    let c = TestClient::new();
    for _ in 0..3 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    app.shutdown().await;

    // A malformed chunked body: the client never gets a complete answer
    // (the connection is cut, mid-body or before the head was flushed).
    let (raw, _) = raw_upstream(vec![
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n",
    ])
    .await;
    let (app, _canary) = proxy_to_raw(raw).await;
    let outcome = match TestClient::new().raw(app.proxy_addr, "/").await {
        Ok(resp) => resp.into_body().collect().await.map(|_| ()).map_err(|_| ()),
        Err(_) => Err(()),
    };
    assert!(
        outcome.is_err(),
        "a broken chunked body must not look complete"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn health_probes_reuse_one_keep_alive_connection_shared_with_traffic() {
    // Probes take the path client traffic to a plain-http endpoint takes:
    // our codec on the pooled connections, the body read to the end. (One
    // runtime thread here, so one per-thread pool.)
    let stable = TestServer::named("stable")
        .route("/health", |_| async { resp::text(200, "ok") })
        .start()
        .await;
    let canary = TestServer::named("canary").start().await;
    let app = start_proxy(
        &yaml("").replace(
            "endpoints: [\"{stable}\"] }",
            "endpoints: [\"{stable}\"], health_check: { path: /health, interval: 300ms, timeout: 250ms } }",
        ),
        &[("stable", &stable), ("canary", &canary)],
    )
    .await;
    let probes = || {
        stable
            .requests()
            .iter()
            .filter(|r| r.path == "/health")
            .count()
    };
    // Between two probes (the first goes out at start, then every 300ms).
    assert!(eventually(Duration::from_secs(5), || probes() >= 2).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = TestClient::new();
    for _ in 0..3 {
        let r = c.get(app.proxy_addr, "/").await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "stable"));
    }
    assert!(eventually(Duration::from_secs(5), || probes() >= 4).await);
    let seen = stable.requests();
    assert_eq!(seen[0].headers["user-agent"], "canary-proxy-health");
    assert_eq!(seen[0].headers["host"], stable.addr.to_string().as_str());
    assert_eq!(
        stable.connections(),
        1,
        "one connection for every probe and request"
    );
    app.shutdown().await;
}
