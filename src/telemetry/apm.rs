//! `/v1/metrics`: the query shape an APM-backed Argo Rollouts
//! analysis already uses. Pure functions; the admin API wires the route and
//! takes the reading from the controller's windows.
use super::window::MAX_SPAN;
use super::Reading;
use serde::Serialize;
use std::time::Duration;

/// `{"errorRate": 2.68, "responseTime": 45.2, "throughput": 150}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ApmMetrics {
    /// Percent of requests that were errors (the guard's definition: `analysis.error_statuses`).
    #[serde(rename = "errorRate")]
    pub error_rate: f64,
    /// Mean latency in milliseconds.
    #[serde(rename = "responseTime")]
    pub response_time: f64,
    /// Requests per minute.
    pub throughput: f64,
}

/// The figures of `reading`, which covers `span`. Without requests (or with a
/// zero span) every figure is 0, never NaN (JSON has no NaN).
pub fn apm_metrics(reading: &Reading, span: Duration) -> ApmMetrics {
    let secs = span.as_secs_f64();
    ApmMetrics {
        error_rate: round2(reading.error_rate_pct().unwrap_or(0.0)),
        response_time: round2(reading.latency.mean_ms().unwrap_or(0.0)),
        throughput: if secs > 0.0 {
            round2(reading.requests as f64 * 60.0 / secs)
        } else {
            0.0
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("invalid window {0:?}: {1}")]
    Invalid(String, String),
    #[error("window {0:?} is longer than the 1h served")]
    TooLong(String),
    #[error("window must be longer than 0")]
    Zero,
}

/// Parses the `window` query parameter (`30s`, `5m`, `1h`); at most one hour.
pub fn parse_window(s: &str) -> Result<Duration, WindowError> {
    let d = crate::config::parse_duration(s).map_err(|e| WindowError::Invalid(s.into(), e))?;
    if d.is_zero() {
        return Err(WindowError::Zero);
    }
    if d > MAX_SPAN {
        return Err(WindowError::TooLong(s.into()));
    }
    Ok(d)
}

pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
