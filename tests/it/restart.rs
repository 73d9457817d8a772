//! The real binary as a child process: `kill -9` during a rollout and after an
//! abort, restarts over a damaged state file, SIGHUP reloads under load.

use crate::support::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `canary-proxy run`, killed with SIGKILL when dropped.
struct Proc {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
    /// Every stderr line (JSON log records) so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(config: &Path) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_canary-proxy"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn canary-proxy");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l = log.clone();
        // Drains stderr for the child's whole life (a full pipe would block it).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let f = &v["fields"];
                    if f["message"] == "proxy listening" {
                        let a = |k: &str| f[k].as_str().and_then(|s| s.parse().ok());
                        let _ = tx.send((a("proxy_addr"), a("admin_addr")));
                    }
                }
                l.lock().unwrap().push(line);
            }
        });
        let (proxy, admin) = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((Some(p), Some(a))) => (p, a),
            other => {
                let _ = child.kill();
                panic!("no readiness line ({other:?}): {:?}", log.lock().unwrap());
            }
        };
        Proc {
            child,
            proxy,
            admin,
            log,
        }
    }

    fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} failed");
    }

    /// SIGKILL: no drain, no final state write.
    fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    async fn status(&self) -> Value {
        admin_at(self.admin, "GET", "/api/v1/status", None, None)
            .await
            .1
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

async fn wait_for(p: &Proc, cond: impl Fn(&Value) -> bool) -> Value {
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

    let p = Proc::start(&path);
    wait_for(&p, |s| s["canary_weight"] == 10.0 && s["step_index"] == 1).await;
    admin_at(p.admin, "POST", "/api/v1/promote", None, None).await;
    let before = wait_for(&p, |s| s["canary_weight"] == 30.0 && s["step_index"] == 3).await;
    p.kill9();

    let p = Proc::start(&path);
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

    let p = Proc::start(&path);
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
    let p = Proc::start(&path);
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
    let p = Proc::start(&path);

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
