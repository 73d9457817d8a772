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
