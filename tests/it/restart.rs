//! The real binary as a child process: `kill -9` during a rollout and after an
//! abort, restarts over a damaged state file, SIGHUP reloads under load.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(stable: &Upstream, canary: &Upstream, state: &Path, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
         upstreams:\n  stable: {{ version: v1, endpoints: [\"{}\"] }}\n  canary: {{ version: v2, endpoints: [\"{}\"] }}\n\
         state_file: {}\n{extra}",
        stable.url(),
        canary.url(),
        state.display()
    )
}

async fn wait_for(p: &Binary, cond: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let s = p.status().await;
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < end, "status never matched: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_rollout_and_after_abort_restarts_where_it_was() {
    let stable = TestServer::named("stable").start().await;
    let canary = TestServer::named("canary").start().await;
    let dir = tempfile::tempdir().unwrap();
    let (path, state) = (dir.path().join("c.yaml"), dir.path().join("state.json"));
    let plan = "rollout:\n  steps:\n    - set_weight: 10\n    - pause: {}\n    - set_weight: 30\n    - pause: {}\n    - set_weight: 100\n";
    std::fs::write(&path, config(&stable, &canary, &state, plan)).unwrap();

    let p = Binary::start(&path, None);
    wait_for(&p, |s| s["canary_weight"] == 10.0 && s["step_index"] == 1).await;
    admin_at(p.admin, "POST", "/api/v1/promote", None, None).await;
    let before = wait_for(&p, |s| s["canary_weight"] == 30.0 && s["step_index"] == 3).await;
    p.kill9();

    let p = Binary::start(&path, None);
    let s = p.status().await;
    assert_eq!(
        (
            &s["canary_weight"],
            &s["step_index"],
            &s["phase"],
            &s["abort"]
        ),
        (
            &before["canary_weight"],
            &before["step_index"],
            &before["phase"],
            &before["abort"]
        ),
        "after kill -9 mid-rollout: {s}"
    );

    let (code, _) = admin_at(p.admin, "POST", "/api/v1/abort", None, None).await;
    assert_eq!(code, 200);
    wait_for(&p, |s| s["abort"] == true && s["canary_weight"] == 0.0).await;
    p.kill9();

    let p = Binary::start(&path, None);
    let s = p.status().await;
    assert_eq!(
        (&s["abort"], &s["canary_weight"]),
        (&Value::Bool(true), &serde_json::json!(0.0)),
        "{s}"
    );
    let hits = canary.hits();
    let c = TestClient::new();
    for _ in 0..100 {
        let r = c.get(p.proxy, "/").await.unwrap();
        assert_eq!(r.text(), "stable");
    }
    assert_eq!(
        canary.hits(),
        hits,
        "aborted canary got traffic after restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_state_file_is_reported_and_the_start_goes_on() {
    let stable = TestServer::named("stable").start().await;
    let canary = TestServer::named("canary").start().await;
    let dir = tempfile::tempdir().unwrap();
    let (path, state) = (dir.path().join("c.yaml"), dir.path().join("state.json"));
    std::fs::write(
        &path,
        config(&stable, &canary, &state, "routing: { canary_weight: 10 }\n"),
    )
    .unwrap();
    // A torn temp file from a crash mid-write, and a corrupt state file.
    std::fs::write(dir.path().join(".state.json.tmp.4242"), "{\"vers").unwrap();
    std::fs::write(&state, "{\"version\": \"v2\", \"phase\": ").unwrap();
    let p = Binary::start(&path, None);
    assert_eq!(
        p.log_count("corrupt state file"),
        1,
        "{:?}",
        p.log.lock().unwrap()
    );
    assert_eq!(p.status().await["canary_weight"], 10.0);
    assert_eq!(
        TestClient::new().get(p.proxy, "/").await.unwrap().status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_by_sighup_and_api_under_load_lose_nothing() {
    let stable = TestServer::named("stable").start().await;
    let canary = TestServer::named("canary").start().await;
    let dir = tempfile::tempdir().unwrap();
    let (path, state) = (dir.path().join("c.yaml"), dir.path().join("state.json"));
    let text = |i: usize| {
        config(
            &stable,
            &canary,
            &state,
            &format!(
                "routing: {{ canary_weight: {}, response_header: x-served-{} }}\ntimeouts: {{ request: {}s }}\n",
                i % 40,
                i % 2,
                5 + i % 3
            ),
        )
    };
    std::fs::write(&path, text(0)).unwrap();
    let p = Binary::start(&path, None);

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, ok, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, sent, ok, failed, addr) = (
                stop.clone(),
                sent.clone(),
                ok.clone(),
                failed.clone(),
                p.proxy,
            );
            tokio::spawn(async move {
                let c = TestClient::new();
                while !stop.load(Ordering::SeqCst) {
                    sent.fetch_add(1, Ordering::SeqCst);
                    match c.get(addr, "/").await {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                        other => {
                            eprintln!("load: failed: {:?}", other.map(|r| r.status));
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    let flowing = |n: u64| {
        let ok = ok.clone();
        async move {
            let base = ok.load(Ordering::SeqCst);
            assert!(
                eventually(Duration::from_secs(10), || ok.load(Ordering::SeqCst)
                    >= base + n)
                .await
            );
        }
    };
    flowing(50).await;
    for i in 1..=50 {
        std::fs::write(&path, text(i)).unwrap();
        if i % 2 == 0 {
            p.signal("-HUP");
            let want = i / 2;
            assert!(
                eventually(Duration::from_secs(5), || p
                    .log_count("config reloaded (SIGHUP)")
                    == want)
                .await,
                "SIGHUP #{want} not applied: {:?}",
                p.log.lock().unwrap().last()
            );
        } else {
            let (code, s) = admin_at(p.admin, "POST", "/api/v1/reload", None, None).await;
            assert_eq!(code, 200, "{s}");
        }
        assert_eq!(p.status().await["canary_weight"], (i % 40) as f64);
        flowing(5).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
    }
    let r = TestClient::new().get(p.proxy, "/").await.unwrap();
    assert!(r.header("x-served-0").is_some(), "{:?}", r.headers);

    // What /metrics says was served (the extra GET above included).
    let m = TestClient::new()
        .get(p.admin, "/metrics")
        .await
        .unwrap()
        .text();
    let counted: u64 = m
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum::<u64>()
        - 1;
    let (sent, ok, failed) = (
        sent.load(Ordering::SeqCst),
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
    );
    println!("reloads_sighup_and_api_x50: sent={sent} ok={ok} failed={failed} counted={counted}");
    assert_eq!(p.log_count("config reload rejected"), 0);
    assert_eq!((failed, ok, counted), (0, sent, sent));
}
