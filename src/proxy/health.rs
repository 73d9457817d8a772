//! Active health checks (`upstreams.X.health_check`): one task per version
//! that follows the current snapshot's endpoint set (a reload may replace it), probes
//! every endpoint each `interval`, and flips `Endpoint.healthy` after
//! `unhealthy_after` consecutive failures / `healthy_after` successes.
//!
//! Probes go through `upstream::send`, like client traffic: a plain-http
//! endpoint is probed on the same pooled keep-alive connections, by the same
//! codec, as the requests it serves.
use crate::config::HealthCheck;
use crate::snapshot::Live;
use crate::upstream::client::VersionClient;
use crate::upstream::endpoints::{Endpoint, EndpointSet};
use crate::upstream::{self, Attempt, UpstreamRequest};
use crate::Role;
use http::uri::PathAndQuery;
use http::{Request, Uri};
use http_body_util::BodyExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a version without `health_check` looks again (a reload may add one).
const NO_CHECK_POLL: Duration = Duration::from_secs(1);
/// Most of a probe's response body read; past it the probe still counts, but
/// its connection is closed rather than drained.
const MAX_PROBE_BODY: usize = 64 * 1024;

#[derive(Clone, Copy, Default)]
struct Streak {
    failures: u32,
    successes: u32,
}

pub(crate) fn spawn(live: Live, role: Role, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut set: Option<Arc<EndpointSet>> = None;
        let mut streaks: Vec<Streak> = Vec::new();
        loop {
            let backend = live.load().backend(role).clone();
            let current = backend.endpoints.clone();
            if !set.as_ref().is_some_and(|p| Arc::ptr_eq(p, &current)) {
                streaks = vec![Streak::default(); current.endpoints.len()];
                set = Some(current.clone());
            }
            let wait = match &backend.health_check {
                None => {
                    // Checks switched off by a reload: nothing can bring an
                    // evicted endpoint back, so put every endpoint in rotation.
                    for e in &current.endpoints {
                        e.healthy.store(true, Relaxed);
                    }
                    NO_CHECK_POLL
                }
                Some(hc) => {
                    let client = &backend.client;
                    let results = futures_util::future::join_all(
                        current.endpoints.iter().map(|e| probe(client, e, hc)),
                    )
                    .await;
                    for ((e, ok), s) in current.endpoints.iter().zip(results).zip(&mut streaks) {
                        update(role, e, s, ok, hc);
                    }
                    hc.interval.get()
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = super::server::stopped(&mut shutdown) => return,
            }
        }
    })
}

fn update(role: Role, e: &Endpoint, s: &mut Streak, ok: bool, hc: &HealthCheck) {
    if ok {
        s.failures = 0;
        s.successes = s.successes.saturating_add(1);
        if !e.is_healthy() && s.successes >= hc.healthy_after.max(1) {
            e.healthy.store(true, Relaxed);
            tracing::info!(%role, endpoint = %e.label, "endpoint healthy again");
        }
    } else {
        s.successes = 0;
        s.failures = s.failures.saturating_add(1);
        if e.is_healthy() && s.failures >= hc.unhealthy_after.max(1) {
            e.healthy.store(false, Relaxed);
            tracing::warn!(%role, endpoint = %e.label, failures = s.failures, "endpoint unhealthy: out of rotation");
        }
    }
}

/// One probe: `GET path` answered 2xx/3xx (body read) within `timeout`.
/// The body is read to its end so the connection goes back to the pool.
async fn probe(client: &VersionClient, e: &Arc<Endpoint>, hc: &HealthCheck) -> bool {
    let Ok(path) = PathAndQuery::try_from(hc.path.as_str()) else {
        return false;
    };
    let Ok(req) = Request::get(Uri::from(path))
        .header(http::header::USER_AGENT, "canary-proxy-health")
        .body(())
    else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + hc.timeout.get();
    let attempt = Attempt {
        deadline,
        give_back: false,
        probe: true,
    };
    let exchange = async {
        let req = UpstreamRequest::bodiless(req.into_parts().0);
        let resp = upstream::send(client, e, req, attempt).await.ok()?;
        let ok = resp.status().is_success() || resp.status().is_redirection();
        let mut body = resp.into_body();
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.ok()?.data_ref() {
                read += data.len();
                if read > MAX_PROBE_BODY {
                    break;
                }
            }
        }
        Some(ok)
    };
    matches!(
        tokio::time::timeout_at(deadline, exchange).await,
        Ok(Some(true))
    )
}
