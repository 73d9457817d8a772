//! The sequential guard for one canary: carries evidence from check to check.
use super::limits::{Inputs, Limit};
use super::stats::normal_quantile;
use super::{CheckResult, Verdict};
use crate::config::Analysis;
use crate::telemetry::Reading;

pub(crate) struct Guard {
    analysis: Analysis,
    limits: Vec<Limit>,
    /// CUSUM threshold `A`; `None` when the settings are unusable (NaN
    /// confidence, zero interval): every check is then Inconclusive.
    threshold: Option<f64>,
    /// One-sided normal score of `confidence`, for the Passed bounds.
    z: f64,
    consecutive: u32,
}

impl Guard {
    pub(crate) fn new(analysis: &Analysis) -> Self {
        let limits = Limit::configured(analysis);
        let threshold = threshold(analysis, &limits);
        Guard {
            analysis: analysis.clone(),
            z: normal_quantile(analysis.confidence),
            limits,
            threshold,
            consecutive: 0,
        }
    }

    /// One check. `canary_tick` is the canary's evidence since the previous
    /// check; the windows span `analysis.window` (for a gate, `canary_window`
    /// is everything since the gate began).
    pub(crate) fn check(
        &mut self,
        canary_tick: &Reading,
        canary_window: &Reading,
        stable_window: &Reading,
    ) -> Verdict {
        let Some(threshold) = self.threshold else {
            self.consecutive = 0;
            return Verdict::inconclusive();
        };
        let latency = self.limits.iter().any(Limit::reads_latency);
        let count = |r: &Reading| if latency { r.latency.count() } else { 0 };
        let inputs = Inputs {
            tick_lat_n: count(canary_tick),
            canary_lat_n: count(canary_window),
            stable_lat_n: count(stable_window),
            tick: canary_tick,
            canary: canary_window,
            stable: stable_window,
            z: self.z,
            min_requests: self.analysis.min_requests,
            threshold,
        };
        let metrics: Vec<_> = self.limits.iter_mut().map(|l| l.assess(&inputs)).collect();
        let result = if metrics.iter().any(|m| m.result == CheckResult::Failed) {
            CheckResult::Failed
        } else if canary_window.requests >= self.analysis.min_requests
            && canary_window.errors <= canary_window.requests
            && metrics.iter().all(|m| m.result == CheckResult::Passed)
        {
            CheckResult::Passed
        } else {
            CheckResult::Inconclusive
        };
        if result == CheckResult::Failed {
            self.consecutive = self.consecutive.saturating_add(1);
        } else {
            self.consecutive = 0;
        }
        Verdict { result, metrics }
    }

    /// Forgets all evidence (retry, new canary version).
    pub(crate) fn reset(&mut self) {
        self.limits.iter_mut().for_each(Limit::reset);
        self.consecutive = 0;
    }

    /// New settings (a step override). The sequential statistics restart only
    /// when something they depend on changed.
    pub(crate) fn set_limits(&mut self, analysis: &Analysis) {
        let a = &self.analysis;
        let same = a.error_rate == analysis.error_rate
            && a.latency == analysis.latency
            && a.interval == analysis.interval
            && a.confidence.to_bits() == analysis.confidence.to_bits();
        if !same {
            *self = Guard::new(analysis);
        } else {
            self.analysis = analysis.clone();
        }
    }

    /// More than `failure_limit` consecutive Failed checks.
    pub(crate) fn should_abort(&self) -> bool {
        self.consecutive > self.analysis.failure_limit
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    #[cfg(test)]
    pub(crate) fn analysis(&self) -> &Analysis {
        &self.analysis
    }
}

/// `A = ln(checks per hour × alternatives / (1 − confidence))`: a union bound
/// over every restart point of an hour, every alternative and every limit.
fn threshold(a: &Analysis, limits: &[Limit]) -> Option<f64> {
    let c = a.confidence;
    let interval = a.interval.get().as_secs_f64();
    if !(c > 0.0 && c < 1.0 && interval > 0.0) {
        return None;
    }
    let checks_per_hour = (3600.0 / interval).ceil().max(1.0);
    let alternatives: usize = limits.iter().map(Limit::alternatives).sum();
    Some((checks_per_hour * alternatives.max(1) as f64 / (1.0 - c)).ln())
}
