//! Active health checks (`upstreams.X.health_check`): one task per version
//! that follows the current snapshot's endpoint set (a reload may replace it), probes
//! every endpoint each `interval`, and flips `Endpoint.healthy` after
//! `unhealthy_after` consecutive failures / `healthy_after` successes.
use crate::config::HealthCheck;
use crate::snapshot::Live;
use crate::upstream::client::{UpstreamBody, UpstreamClient};
use crate::upstream::endpoints::{Endpoint, EndpointSet};
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

#[derive(Clone, Copy, Default)]
struct Streak {
    failures: u32,
    successes: u32,
}

pub fn spawn(live: Live, role: Role, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
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
                    let client = &backend.client.client;
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
async fn probe(client: &UpstreamClient, e: &Endpoint, hc: &HealthCheck) -> bool {
    let Ok(path) = PathAndQuery::try_from(hc.path.as_str()) else {
        return false;
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = e.uri.scheme().cloned();
    parts.authority = e.uri.authority().cloned();
    parts.path_and_query = Some(path);
    let Ok(uri) = Uri::from_parts(parts) else {
        return false;
    };
    let Ok(req) = Request::get(uri)
        .header(http::header::USER_AGENT, "canary-proxy-health")
        .body(UpstreamBody::Empty)
    else {
        return false;
    };
    let exchange = async {
        let resp = client.request(req).await.ok()?;
        let ok = resp.status().is_success() || resp.status().is_redirection();
        // Read the (small) body so the connection goes back to the pool.
        resp.into_body().collect().await.ok()?;
        Some(ok)
    };
    matches!(
        tokio::time::timeout(hc.timeout.get(), exchange).await,
        Ok(Some(true))
    )
}
