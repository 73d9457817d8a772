//! The judge: pure statistics. Readings and limits in, a verdict with the
//! numbers behind it out. No I/O and no clock, so the live guard, the tests and
//! the simulator run the same code. The method is described in `docs/judge.md`.
mod argo;
mod cusum;
mod guard;
mod limits;
mod message;
mod stats;

pub(crate) use argo::argo_weight;
pub(crate) use guard::Guard;
pub(crate) use stats::wilson;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum CheckResult {
    Passed,
    Failed,
    Inconclusive,
}

impl CheckResult {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CheckResult::Passed => "Passed",
            CheckResult::Failed => "Failed",
            CheckResult::Inconclusive => "Inconclusive",
        }
    }
}

/// One configured limit's assessment in one check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct MetricVerdict {
    /// `error-rate`, `error-rate-increase`, `latency-p99`, `latency-p99-ratio`.
    pub metric: &'static str,
    pub result: CheckResult,
    /// Measured value: percent (`error-rate`), points (`error-rate-increase`),
    /// ms (`latency-p99`) or canary/stable p99 ratio (`latency-p99-ratio`);
    /// `None` without data. Over the window, or when Failed over the run of
    /// evidence the decision rests on.
    pub value: Option<f64>,
    /// The configured limit, in the same unit.
    pub limit: f64,
    /// Canary requests the value rests on.
    pub evidence: u64,
    /// Stable's figure: error rate percent (`error-rate-increase`) or p99 ms
    /// (`latency-p99-ratio`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// Latency limits when Failed: percent of the canary requests in the
    /// failing run slower than the latency threshold (the limit is 1%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Verdict {
    pub result: CheckResult,
    pub metrics: Vec<MetricVerdict>,
}

impl Verdict {
    pub(crate) fn inconclusive() -> Self {
        Verdict {
            result: CheckResult::Inconclusive,
            metrics: Vec::new(),
        }
    }

    /// The first limit that failed, if any.
    pub(crate) fn failed_metric(&self) -> Option<&MetricVerdict> {
        self.metrics
            .iter()
            .find(|m| m.result == CheckResult::Failed)
    }
}

#[cfg(test)]
mod tests;
