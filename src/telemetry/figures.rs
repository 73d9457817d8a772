//! The per-version figures of `/api/v1/status`, from a window reading.
use super::apm::round2;
use super::Reading;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionFigures {
    pub requests: u64,
    pub errors: u64,
    /// Percent; 0 without requests.
    pub error_rate: f64,
    /// Quantiles as bucket upper bounds (within 9.05% above the true value),
    /// the same reading the judge uses; `null` without timed requests.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Requests per second over `span`.
    pub rps: f64,
}

/// Figures of `window`, which covers `span` (use `Windows::window_covered`).
pub fn version_figures(window: &Reading, span: Duration) -> VersionFigures {
    let ms = |q: f64| {
        window
            .latency
            .quantile(q)
            .map(|d| round2(d.as_secs_f64() * 1e3))
    };
    let secs = span.as_secs_f64();
    VersionFigures {
        requests: window.requests,
        errors: window.errors,
        error_rate: round2(window.error_rate_pct().unwrap_or(0.0)),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        rps: if secs > 0.0 {
            round2(window.requests as f64 / secs)
        } else {
            0.0
        },
    }
}
