//! The demo upstream: a tiny service like the vote app it imitates.
//! `GET|POST /` answers with its role and version, `/health` is for the proxy's
//! health check, and `/api/error-sim` and `/api/fault` inject failures at runtime.
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Largest body accepted on the fault-control routes.
const MAX_CONTROL_BODY: usize = 4096;

/// Fault settings shared by every connection, changed at runtime without a lock.
#[derive(Default)]
struct FaultState {
    /// `f64` bits: fraction of `/` requests answered with 500.
    error_rate: AtomicU64,
    latency_us: AtomicU64,
    /// The vote app's toggle: every `/` request fails while on.
    error_sim: AtomicBool,
    requests: AtomicU64,
    failed: AtomicU64,
}

/// A handle to change an upstream's faults while it runs.
#[derive(Clone, Default)]
pub struct FaultHandle(Arc<FaultState>);

impl FaultHandle {
    /// Fraction (0..=1) of `/` requests that get a 500; clamped.
    pub fn set_error_rate(&self, rate: f64) {
        let r = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.0.error_rate.store(r.to_bits(), Relaxed);
    }
    pub fn error_rate(&self) -> f64 {
        f64::from_bits(self.0.error_rate.load(Relaxed))
    }
    /// Latency added to every `/` request.
    pub fn set_latency(&self, d: Duration) {
        self.0
            .latency_us
            .store(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.0.latency_us.load(Relaxed))
    }
    pub fn set_error_sim(&self, on: bool) {
        self.0.error_sim.store(on, Relaxed);
    }
    pub fn error_sim(&self) -> bool {
        self.0.error_sim.load(Relaxed)
    }
    /// `/` requests served and how many of them were failed on purpose.
    pub fn served(&self) -> (u64, u64) {
        (self.0.requests.load(Relaxed), self.0.failed.load(Relaxed))
    }

    fn should_fail(&self) -> bool {
        let rate = self.error_rate();
        self.error_sim() || (rate > 0.0 && rand::random::<f64>() < rate)
    }
}

/// Who this upstream says it is.
#[derive(Clone, Debug)]
pub struct Identity {
    pub role: String,
    pub version: String,
}

/// A running upstream. Dropping it without `shutdown` leaves the task running
/// until the runtime stops.
pub struct Upstream {
    pub addr: SocketAddr,
    pub fault: FaultHandle,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Binds 127.0.0.1:0 (tests and the embedded demo).
    pub async fn start_local(role: &str, version: &str) -> std::io::Result<Upstream> {
        Self::start(role, version, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start(role: &str, version: &str, listen: SocketAddr) -> std::io::Result<Upstream> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let fault = FaultHandle::default();
        let id = Arc::new(Identity {
            role: role.to_string(),
            version: version.to_string(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, id, fault.clone(), stop_rx));
        Ok(Upstream {
            addr,
            fault,
            stop,
            task,
        })
    }

    /// Stops accepting, lets open requests finish (bounded), returns when done.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn serve(
    listener: TcpListener,
    id: Arc<Identity>,
    fault: FaultHandle,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    // Out of descriptors and the like: back off instead of spinning.
                    Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
                };
                let _ = stream.set_nodelay(true);
                let (id, fault) = (id.clone(), fault.clone());
                let svc = hyper::service::service_fn(move |req| handle(req, id.clone(), fault.clone()));
                let conn = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move { let _ = conn.await; });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn bad_request(msg: impl Into<String>) -> Response<Full<Bytes>> {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({ "error": msg.into() }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    error_rate: Option<f64>,
    latency_ms: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ErrorSimBody {
    enabled: Option<bool>,
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    Limited::new(req.into_body(), MAX_CONTROL_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| bad_request(format!("cannot read body: {e}")))
}

async fn handle(
    req: Request<Incoming>,
    id: Arc<Identity>,
    fault: FaultHandle,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let resp = match (req.method().clone(), path.as_str()) {
        (Method::GET | Method::POST | Method::HEAD, "/") => {
            let delay = fault.latency();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            fault.0.requests.fetch_add(1, Relaxed);
            if fault.should_fail() {
                fault.0.failed.fetch_add(1, Relaxed);
                json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({ "role": id.role, "version": id.version, "error": "simulated failure" }),
                )
            } else {
                json(
                    StatusCode::OK,
                    serde_json::json!({ "role": id.role, "version": id.version }),
                )
            }
        }
        (Method::GET, "/health") => json(StatusCode::OK, serde_json::json!({ "status": "ok" })),
        (Method::GET, "/api/error-sim") => json(
            StatusCode::OK,
            serde_json::json!({ "enabled": fault.error_sim() }),
        ),
        (Method::POST, "/api/error-sim") => match read_body(req).await {
            Err(r) => r,
            Ok(body) => {
                // An empty body toggles (the vote app's button); `{"enabled": b}` sets.
                let parsed = if body.iter().all(u8::is_ascii_whitespace) {
                    Ok(ErrorSimBody::default())
                } else {
                    serde_json::from_slice::<ErrorSimBody>(&body)
                };
                match parsed {
                    Err(e) => bad_request(format!("invalid JSON: {e}")),
                    Ok(b) => {
                        let on = b.enabled.unwrap_or(!fault.error_sim());
                        fault.set_error_sim(on);
                        json(StatusCode::OK, serde_json::json!({ "enabled": on }))
                    }
                }
            }
        },
        (Method::GET, "/api/fault") => fault_json(&fault),
        (Method::PUT, "/api/fault") => match read_body(req).await {
            Err(r) => r,
            Ok(body) => match serde_json::from_slice::<FaultBody>(&body) {
                Err(e) => bad_request(format!("invalid JSON: {e}")),
                Ok(b) => match apply_fault(&fault, &b) {
                    Err(msg) => bad_request(msg),
                    Ok(()) => fault_json(&fault),
                },
            },
        },
        (_, "/" | "/health" | "/api/error-sim" | "/api/fault") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "method not allowed" }),
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "not found" }),
        ),
    };
    Ok(resp)
}

/// Validates the whole body before changing anything (a rejected call changes nothing).
fn apply_fault(fault: &FaultHandle, b: &FaultBody) -> Result<(), String> {
    if let Some(r) = b.error_rate {
        if !(0.0..=1.0).contains(&r) {
            return Err(format!("error_rate must be within 0..1, got {r}"));
        }
    }
    if let Some(ms) = b.latency_ms {
        if !(0.0..=60_000.0).contains(&ms) {
            return Err(format!("latency_ms must be within 0..60000, got {ms}"));
        }
    }
    if let Some(r) = b.error_rate {
        fault.set_error_rate(r);
    }
    if let Some(ms) = b.latency_ms {
        fault.set_latency(Duration::from_secs_f64(ms / 1000.0));
    }
    Ok(())
}

fn fault_json(fault: &FaultHandle) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        serde_json::json!({
            "error_rate": fault.error_rate(),
            "latency_ms": fault.latency().as_secs_f64() * 1000.0,
            "error_sim": fault.error_sim(),
        }),
    )
}
