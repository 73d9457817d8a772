//! The upstream connection pool (src/proxy/pool.rs): keep-alive reuse, and a
//! connection is never reused unless its previous response was read to the end.
mod support;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use support::*;
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
