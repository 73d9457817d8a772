//! `GET /api/v1/analysis` for an Argo Rollouts `web` metric provider:
//! a weight from the latency/error-delta interpolation.
use super::CheckResult;
use crate::telemetry::Reading;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArgoAnalysis {
    /// 5..=100, or 0 when the last verdict is Failed or the canary is aborted.
    pub weight: f64,
    /// `proceed` or `abort` (exactly when `weight` is 0).
    pub status: &'static str,
    /// Canary error rate over the window, percent.
    pub error_rate: f64,
    /// Canary p99 over the window, ms.
    pub p99_latency_ms: f64,
    /// `max(0, canary − stable error rate)`, as a fraction.
    pub error_delta: f64,
    /// `max(0, canary p99 / stable p99 − 1)`.
    pub latency_delta: f64,
}

/// The latency/error-delta interpolation over the canary and stable windows. Missing
/// data contributes no delta.
pub(crate) fn argo_weight(
    canary: &Reading,
    stable: &Reading,
    last: Option<CheckResult>,
    aborted: bool,
) -> ArgoAnalysis {
    let rate = |r: &Reading| {
        (r.requests > 0 && r.errors <= r.requests).then(|| r.errors as f64 / r.requests as f64)
    };
    let p99 = |r: &Reading| r.latency.quantile(0.99).map(|d| d.as_secs_f64() * 1e3);
    let (c_rate, s_rate) = (rate(canary), rate(stable));
    let (c_p99, s_p99) = (p99(canary), p99(stable));
    let error_delta = match (c_rate, s_rate) {
        (Some(c), Some(s)) => (c - s).max(0.0),
        _ => 0.0,
    };
    let latency_delta = match (c_p99, s_p99) {
        (Some(c), Some(s)) if s > 0.0 => (c / s - 1.0).max(0.0),
        _ => 0.0,
    };
    let latency_penalty = (-latency_delta * 10.0).exp();
    let error_penalty = 1.0 - error_delta * 20.0;
    let safety = (latency_penalty * error_penalty.max(0.2)).max(0.1);
    let mut weight = round1(5.0 + safety * 95.0).clamp(5.0, 100.0);
    if aborted || last == Some(CheckResult::Failed) {
        weight = 0.0;
    }
    ArgoAnalysis {
        weight,
        status: if weight == 0.0 { "abort" } else { "proceed" },
        error_rate: c_rate.map_or(0.0, |r| r * 100.0),
        p99_latency_ms: c_p99.unwrap_or(0.0),
        error_delta,
        latency_delta,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
