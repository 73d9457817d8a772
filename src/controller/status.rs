//! The read-only view the controller publishes after every tick and change, so
//! the admin API's GETs never wait on the controller task.
use super::events::Event;
use super::Phase;
use crate::judge::{CheckResult, Verdict};
use crate::telemetry::figures::{version_figures, VersionFigures};
use crate::telemetry::window::Windows;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct StatusView {
    /// The `/api/v1/status` body.
    pub status: Value,
    /// The `/api/v1/analysis` body.
    pub analysis: Value,
    /// Newest last.
    pub events: Arc<Vec<Event>>,
    /// Configured version labels `[stable, canary]` (for `/v1/metrics?version=`).
    pub versions: [String; 2],
}

/// A version object of `/api/v1/status` and of webhook payloads.
#[derive(Debug, Clone, Serialize)]
pub struct VersionObject {
    pub version: String,
    #[serde(flatten)]
    pub figures: VersionFigures,
}

pub fn version_object(version: &str, w: &Windows) -> VersionObject {
    VersionObject {
        version: version.to_string(),
        figures: version_figures(w.window(), w.window_covered()),
    }
}

pub struct Parts<'a> {
    pub phase: Phase,
    pub abort: bool,
    pub message: &'a str,
    pub canary_weight: f64,
    pub step_index: Option<usize>,
    pub steps: usize,
    pub plan: Value,
    pub paused: bool,
    pub verdict: Option<&'a Verdict>,
    pub stable: VersionObject,
    pub canary: VersionObject,
}

pub fn status_json(p: &Parts) -> Value {
    json!({
        "phase": p.phase,
        "abort": p.abort,
        "message": p.message,
        "canary_weight": p.canary_weight,
        "step_index": p.step_index,
        "steps": p.steps,
        "plan": p.plan,
        "paused": p.paused,
        "verdict": p.verdict,
        "stable": p.stable,
        "canary": p.canary,
    })
}

/// `/api/v1/analysis` for an Argo Rollouts `web` provider (SPEC §4).
pub fn analysis_json(p: &Parts) -> Value {
    let (c, s) = (&p.canary.figures, &p.stable.figures);
    let latency_delta = match (c.p99_ms, s.p99_ms) {
        (Some(c), Some(s)) if s > 0.0 => (c / s - 1.0).max(0.0),
        _ => 0.0,
    };
    let error_delta = ((c.error_rate - s.error_rate) / 100.0).max(0.0);
    let failed = p.verdict.is_some_and(|v| v.result == CheckResult::Failed);
    let weight = if failed || p.abort {
        0.0
    } else {
        argo_weight(latency_delta, error_delta)
    };
    json!({
        "weight": weight,
        "status": if weight > 0.0 { "proceed" } else { "abort" },
        "errorRate": c.error_rate,
        "p99LatencyMs": c.p99_ms,
        "errorDelta": round4(error_delta),
        "latencyDelta": round4(latency_delta),
    })
}

/// The SPEC §4 interpolation: 5..=100, lower as latency or errors exceed stable's.
pub fn argo_weight(latency_delta: f64, error_delta: f64) -> f64 {
    let latency_penalty = (-latency_delta * 10.0).exp();
    let error_penalty = 1.0 - error_delta * 20.0;
    let safety = (latency_penalty * error_penalty.max(0.2)).max(0.1);
    let w = ((5.0 + safety * 95.0) * 10.0).round() / 10.0;
    w.clamp(5.0, 100.0)
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argo_weight_interpolates() {
        assert_eq!(argo_weight(0.0, 0.0), 100.0);
        // 10% slower: exp(-1) → 5 + 0.3679·95 = 39.9
        assert_eq!(argo_weight(0.1, 0.0), 39.9);
        // 5 points more errors: penalty 0 → floored at 0.2 → 24.0
        assert_eq!(argo_weight(0.0, 0.05), 24.0);
        // both bad: safety floor 0.1 → 14.5
        assert_eq!(argo_weight(1.0, 0.05), 14.5);
    }
}
