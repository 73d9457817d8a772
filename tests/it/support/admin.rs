//! Helpers for the controller and admin tests: admin API calls, a steady load
//! through the proxy, and a webhook receiver.
use crate::support::*;
use bytes::Bytes;
use canary_proxy::app::App;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// `canary_weight` of a status (or -1 when absent).
pub fn weight(s: &Value) -> f64 {
    s["canary_weight"].as_f64().unwrap_or(-1.0)
}

/// One admin call: `(status, JSON body or the raw text as a string)`.
pub async fn admin(
    app: &App,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    admin_at(app.admin_addr, method, path, body, token).await
}

pub async fn admin_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .unwrap();
    let r = TestClient::new().send(req).await.expect("admin reachable");
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::String(r.text()));
    (r.status.as_u16(), v)
}

pub async fn status(app: &App) -> Value {
    let (code, v) = admin(app, "GET", "/api/v1/status", None, None).await;
    assert_eq!(code, 200);
    v
}

pub async fn events(app: &App) -> Vec<Value> {
    let (code, v) = admin(app, "GET", "/api/v1/events", None, None).await;
    assert_eq!(code, 200);
    v.as_array().cloned().unwrap_or_default()
}

pub fn kinds(ev: &[Value]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .collect()
}

/// Polls the status until `cond` holds (or `within` passes); returns the last status.
pub async fn wait_status(app: &App, within: Duration, cond: impl Fn(&Value) -> bool) -> Value {
    let end = tokio::time::Instant::now() + within;
    loop {
        let s = status(app).await;
        if cond(&s) || tokio::time::Instant::now() >= end {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Closed-loop load through the proxy: `workers` clients, each sending GET /
/// back to back with a small pause, until dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: SocketAddr, workers: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..workers)
            .map(|_| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let c = TestClient::new();
                    while !stop.load(Ordering::Relaxed) {
                        let _ = c.get(addr, "/").await;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load { stop, tasks }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// An upstream whose `/` answers 500 once `failing` is set.
pub async fn switchable(name: &'static str) -> (Upstream, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let up = TestServer::named(name)
        .fallback(move |_req| {
            let bad = f.load(Ordering::Relaxed);
            async move { resp::text(if bad { 500 } else { 200 }, name) }
        })
        .start()
        .await;
    (up, failing)
}

/// A webhook receiver: records every JSON body POSTed to `/hook`.
pub async fn webhook_receiver() -> (Upstream, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let up = TestServer::named("hook")
        .route("/hook", move |req| {
            let g = g.clone();
            async move {
                let body = req.into_body().collect().await.map(|b| b.to_bytes());
                if let Ok(b) = body {
                    if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                        g.lock().unwrap().push(v);
                    }
                }
                resp::text(200, "ok")
            }
        })
        .start()
        .await;
    (up, got)
}
