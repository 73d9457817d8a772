//! A bounded, paced in-process HTTP load: a few loops each sending one request
//! at a time on a shared keep-alive client, counting what the clients saw per
//! version (read from the upstream's JSON answer).
use crate::telemetry::histogram::{AtomicHistogram, HistogramCounts};
use crate::Role;
use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct RoleStats {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub latency: AtomicHistogram,
}

/// What the clients saw, cumulative.
pub struct LoadStats {
    start: Instant,
    /// `[stable, canary]`: responses that named their role.
    pub roles: [RoleStats; 2],
    /// Responses with no role (proxy-generated 502/503/504) and transport errors.
    pub unattributed_failures: AtomicU64,
    /// Microseconds after `start` (+1, 0 = never) of the first canary failure.
    first_canary_error_us: AtomicU64,
    /// Microseconds after `start` (+1) of the latest canary answer.
    last_canary_us: AtomicU64,
}

/// One point-in-time copy of `LoadStats`, for rates over an interval.
#[derive(Clone)]
pub struct Sample {
    pub at: Instant,
    pub requests: [u64; 2],
    pub errors: [u64; 2],
    pub latency: [HistogramCounts; 2],
    pub unattributed: u64,
}

impl LoadStats {
    fn new() -> Self {
        LoadStats {
            start: Instant::now(),
            roles: Default::default(),
            unattributed_failures: AtomicU64::new(0),
            first_canary_error_us: AtomicU64::new(0),
            last_canary_us: AtomicU64::new(0),
        }
    }

    fn since_start_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64 + 1
    }

    fn at(&self, us: u64) -> Option<Instant> {
        (us > 0).then(|| self.start + Duration::from_micros(us - 1))
    }

    pub fn first_canary_error(&self) -> Option<Instant> {
        self.at(self.first_canary_error_us.load(Relaxed))
    }

    pub fn last_canary_answer(&self) -> Option<Instant> {
        self.at(self.last_canary_us.load(Relaxed))
    }

    pub fn total(&self) -> u64 {
        self.roles
            .iter()
            .map(|r| r.requests.load(Relaxed))
            .sum::<u64>()
            + self.unattributed_failures.load(Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.roles
            .iter()
            .map(|r| r.errors.load(Relaxed))
            .sum::<u64>()
            + self.unattributed_failures.load(Relaxed)
    }

    pub fn sample(&self) -> Sample {
        let mut latency: [HistogramCounts; 2] = Default::default();
        for (i, r) in self.roles.iter().enumerate() {
            r.latency.read_into(&mut latency[i]);
        }
        Sample {
            at: Instant::now(),
            requests: [0, 1].map(|i| self.roles[i].requests.load(Relaxed)),
            errors: [0, 1].map(|i| self.roles[i].errors.load(Relaxed)),
            latency,
            unattributed: self.unattributed_failures.load(Relaxed),
        }
    }

    fn record(&self, role: Option<Role>, ok: bool, latency: Duration) {
        let Some(role) = role else {
            self.unattributed_failures.fetch_add(1, Relaxed);
            return;
        };
        let r = &self.roles[role.index()];
        r.requests.fetch_add(1, Relaxed);
        r.latency.record(latency);
        if !ok {
            r.errors.fetch_add(1, Relaxed);
        }
        if role == Role::Canary {
            let now = self.since_start_us();
            self.last_canary_us.fetch_max(now, Relaxed);
            if !ok {
                let _ = self
                    .first_canary_error_us
                    .compare_exchange(0, now, Relaxed, Relaxed);
            }
        }
    }
}

/// Per-version figures between two samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub rps: f64,
    pub error_pct: Option<f64>,
    pub p99: Option<Duration>,
}

impl Sample {
    pub fn rates_since(&self, earlier: &Sample, role: Role) -> Rates {
        let i = role.index();
        let dt = self.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        let n = self.requests[i].saturating_sub(earlier.requests[i]);
        let e = self.errors[i].saturating_sub(earlier.errors[i]);
        Rates {
            rps: n as f64 / dt,
            error_pct: (n > 0).then(|| 100.0 * e as f64 / n as f64),
            p99: self.latency[i].delta(&earlier.latency[i]).quantile(0.99),
        }
    }
}

/// A running load. The rate can be changed while it runs.
pub struct Load {
    pub stats: Arc<LoadStats>,
    rps: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// `workers` loops share `rps` between them; each waits for its answer
    /// before the next request, so the load is bounded by `workers` in flight.
    pub fn start(target: Uri, rps: u32, workers: usize) -> Load {
        let stats = Arc::new(LoadStats::new());
        let rate = Arc::new(AtomicU32::new(rps));
        let stop = Arc::new(AtomicBool::new(false));
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let workers = workers.max(1);
        let tasks = (0..workers)
            .map(|w| {
                let (client, target, stats, rate, stop) = (
                    client.clone(),
                    target.clone(),
                    stats.clone(),
                    rate.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    // Stagger the loops so requests are spread over the period.
                    let period = |r: u32| Duration::from_secs_f64(workers as f64 / r.max(1) as f64);
                    let mut next = tokio::time::Instant::now()
                        + period(rate.load(Relaxed)).mul_f64(w as f64 / workers as f64);
                    while !stop.load(Relaxed) {
                        tokio::time::sleep_until(next).await;
                        one_request(&client, &target, &stats).await;
                        next += period(rate.load(Relaxed));
                        let now = tokio::time::Instant::now();
                        if next < now {
                            // Fell behind (slow answers): don't burst to catch up.
                            next = now;
                        }
                    }
                })
            })
            .collect();
        Load {
            stats,
            rps: rate,
            stop,
            tasks,
        }
    }

    pub fn set_rps(&self, rps: u32) {
        self.rps.store(rps, Relaxed);
    }

    /// Stops the loops; in-flight requests are bounded by the request timeout.
    pub async fn stop(self) {
        self.stop.store(true, Relaxed);
        for t in self.tasks {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(1), t).await;
        }
    }
}

#[derive(serde::Deserialize)]
struct Answer {
    role: Option<String>,
}

async fn one_request(
    client: &Client<HttpConnector, Empty<Bytes>>,
    target: &Uri,
    stats: &LoadStats,
) {
    let t0 = Instant::now();
    let req = match http::Request::get(target.clone()).body(Empty::new()) {
        Ok(r) => r,
        Err(_) => return,
    };
    let result = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let resp = client.request(req).await.map_err(|_| ())?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|_| ())?
            .to_bytes();
        Ok::<_, ()>((status, body))
    })
    .await;
    let latency = t0.elapsed();
    match result {
        Ok(Ok((status, body))) => {
            let role = serde_json::from_slice::<Answer>(&body)
                .ok()
                .and_then(|a| a.role)
                .and_then(|r| match r.as_str() {
                    "stable" => Some(Role::Stable),
                    "canary" => Some(Role::Canary),
                    _ => None,
                });
            let ok = status.is_success();
            // A proxy-generated 2xx without a role cannot happen; count it as a failure only if it failed.
            match (role, ok) {
                (None, true) => {}
                _ => stats.record(role, ok, latency),
            }
        }
        _ => stats.record(None, false, latency),
    }
}
