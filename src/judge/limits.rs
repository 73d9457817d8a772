//! The four limits (`error_rate.max`, `error_rate.max_increase`, `latency.max_p99`,
//! `latency.max_p99_ratio`), each turned into a stream of binomial "bad
//! events" per check for the sequential test, and a confidence bound over the
//! window for Passed.
use super::cusum::{ladder, ladder_len, Crossing, Cusum};
use super::stats::wilson;
use super::{CheckResult, MetricVerdict};
use crate::config::Analysis;
use crate::telemetry::histogram::{bucket_index, HistogramCounts, BOUNDS_NS};
use crate::telemetry::Reading;

/// A latency limit is exceeded when more than this fraction of requests is
/// slower than the threshold ("p99 above L" is "more than 1% slower than L").
pub(super) const SLOW_LIMIT: f64 = 0.01;
/// Half of it: the null hypothesis of the sequential latency test.
pub(super) const SLOW_NULL: f64 = SLOW_LIMIT / 2.0;
/// Normal score of the stable p99 upper bound that sets the ratio threshold:
/// the threshold errs high (fewer false aborts) while stable is thin.
const STABLE_P99_Z: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metric {
    ErrorRate,
    ErrorRateIncrease,
    LatencyP99,
    LatencyP99Ratio,
}

impl Metric {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Metric::ErrorRate => "error-rate",
            Metric::ErrorRateIncrease => "error-rate-increase",
            Metric::LatencyP99 => "latency-p99",
            Metric::LatencyP99Ratio => "latency-p99-ratio",
        }
    }
}

/// The inputs of one check, shared by every limit.
pub(super) struct Inputs<'a> {
    pub tick: &'a Reading,
    pub canary: &'a Reading,
    pub stable: &'a Reading,
    /// Normal score of the configured confidence (one-sided).
    pub z: f64,
    pub min_requests: u64,
    /// CUSUM threshold `A`.
    pub threshold: f64,
    /// Sample counts of the three latency histograms (summed once per check).
    pub tick_lat_n: u64,
    pub canary_lat_n: u64,
    pub stable_lat_n: u64,
}

/// One configured limit and its sequential statistic.
#[derive(Debug, Clone)]
pub(super) struct Limit {
    pub metric: Metric,
    /// As configured: percent, points, ms or ratio.
    pub limit: f64,
    cusum: Cusum,
    /// Number of alternatives tested (at their most: stable error rate 0).
    rungs: usize,
    alts: Vec<f64>,
}

impl Limit {
    /// The configured limits of `a`. A non-finite or non-positive value is
    /// kept as an unusable limit: always Inconclusive, never Failed or Passed.
    pub(super) fn configured(a: &Analysis) -> Vec<Limit> {
        let mut out = Vec::new();
        let mut push = |metric, limit: Option<f64>| {
            if let Some(l) = limit {
                let rungs = match metric {
                    Metric::ErrorRate | Metric::ErrorRateIncrease => ladder_len(l / 100.0),
                    Metric::LatencyP99 | Metric::LatencyP99Ratio => ladder_len(SLOW_LIMIT),
                };
                out.push(Limit {
                    metric,
                    limit: l,
                    cusum: Cusum::new(rungs),
                    rungs,
                    alts: Vec::with_capacity(rungs),
                });
            }
        };
        push(Metric::ErrorRate, a.error_rate.max);
        push(Metric::ErrorRateIncrease, a.error_rate.max_increase);
        push(
            Metric::LatencyP99,
            a.latency.max_p99.map(|d| d.get().as_secs_f64() * 1e3),
        );
        push(Metric::LatencyP99Ratio, a.latency.max_p99_ratio);
        out
    }

    /// Number of alternatives the statistic tests (for the union bound).
    pub(super) fn alternatives(&self) -> usize {
        self.rungs.max(1)
    }

    pub(super) fn reset(&mut self) {
        self.cusum.reset();
    }

    pub(super) fn reads_latency(&self) -> bool {
        matches!(self.metric, Metric::LatencyP99 | Metric::LatencyP99Ratio)
    }

    fn usable(&self) -> bool {
        self.limit.is_finite() && self.limit > 0.0
    }

    /// Feeds this check's evidence and assesses the limit.
    pub(super) fn assess(&mut self, x: &Inputs) -> MetricVerdict {
        if !self.usable() {
            let mut v = self.windowed(x);
            v.result = CheckResult::Inconclusive;
            return v;
        }
        let rungs = self.rungs;
        // the tick's bad-event stream against null p0 and alternatives `alts`
        let stream: Option<(u64, u64, f64)> = match self.metric {
            Metric::ErrorRate => {
                let m = self.limit / 100.0;
                ladder(0.0, m, rungs, &mut self.alts);
                consistent(x.tick).map(|(n, k)| (n, k, m / 2.0))
            }
            Metric::ErrorRateIncrease => {
                let d = self.limit / 100.0;
                match stable_error_upper(x) {
                    Some(b) => {
                        ladder(b, d, rungs, &mut self.alts);
                        consistent(x.tick).map(|(n, k)| (n, k, b + d / 2.0))
                    }
                    None => None,
                }
            }
            Metric::LatencyP99 => {
                ladder(0.0, SLOW_LIMIT, rungs, &mut self.alts);
                let thr = self.limit * 1e6;
                let h = &x.tick.latency;
                Some((x.tick_lat_n, count_certainly_above(h, thr), SLOW_NULL))
            }
            Metric::LatencyP99Ratio => {
                ladder(0.0, SLOW_LIMIT, rungs, &mut self.alts);
                stable_p99_upper_ns(&x.stable.latency, x.stable_lat_n, x.min_requests).map(|p99| {
                    let h = &x.tick.latency;
                    let thr = self.limit * p99;
                    (x.tick_lat_n, count_certainly_above(h, thr), SLOW_NULL)
                })
            }
        };
        if let Some((n, k, p0)) = stream {
            if p0 < 1.0 {
                self.cusum.update(n, k, p0, &self.alts);
            }
        }
        match self.cusum.crossing(x.threshold, x.min_requests) {
            Some(c) => self.failed(x, c),
            None => self.windowed(x),
        }
    }

    /// Verdict for a crossing: the figures of the run that crossed.
    fn failed(&self, x: &Inputs, c: Crossing) -> MetricVerdict {
        let rate = 100.0 * c.k as f64 / c.n as f64;
        let mut v = self.windowed(x);
        v.result = CheckResult::Failed;
        v.evidence = c.n;
        match self.metric {
            Metric::ErrorRate => v.value = Some(rate),
            Metric::ErrorRateIncrease => {
                v.value = Some(rate - v.baseline.unwrap_or(0.0));
            }
            Metric::LatencyP99 | Metric::LatencyP99Ratio => v.slow_pct = Some(rate),
        }
        v
    }

    /// Figures over the window, and Passed when the limit holds at the
    /// configured confidence over it.
    fn windowed(&self, x: &Inputs) -> MetricVerdict {
        let c = x.canary;
        let enough = c.requests >= x.min_requests;
        let mut v = MetricVerdict {
            metric: self.metric.name(),
            result: CheckResult::Inconclusive,
            value: None,
            limit: self.limit,
            evidence: c.requests,
            baseline: None,
            slow_pct: None,
        };
        match self.metric {
            Metric::ErrorRate => {
                v.value = c.error_rate_pct().filter(|_| c.errors <= c.requests);
                if let Some((_, hi)) = consistent(c).and_then(|(n, k)| wilson(k, n, x.z)) {
                    if enough && 100.0 * hi < self.limit {
                        v.result = CheckResult::Passed;
                    }
                }
            }
            Metric::ErrorRateIncrease => {
                let s = x.stable;
                v.baseline = s.error_rate_pct().filter(|_| s.errors <= s.requests);
                if let (Some(cr), Some(sr)) = (c.error_rate_pct(), v.baseline) {
                    v.value = Some(cr - sr);
                }
                let c_hi = consistent(c).and_then(|(n, k)| wilson(k, n, x.z));
                let s_lo = consistent(s)
                    .filter(|(n, _)| *n >= x.min_requests)
                    .and_then(|(n, k)| wilson(k, n, x.z));
                if let (Some((_, hi)), Some((lo, _))) = (c_hi, s_lo) {
                    if enough && 100.0 * (hi - lo) < self.limit {
                        v.result = CheckResult::Passed;
                    }
                }
            }
            Metric::LatencyP99 => {
                let h = &c.latency;
                let n = x.canary_lat_n;
                v.evidence = n;
                v.value = quantile_ns(h, n, 0.99).map(|ns| ns as f64 / 1e6);
                let slow = count_possibly_above(h, self.limit * 1e6);
                if let Some((_, hi)) = wilson(slow, n, x.z) {
                    if n >= x.min_requests && hi < SLOW_LIMIT {
                        v.result = CheckResult::Passed;
                    }
                }
            }
            Metric::LatencyP99Ratio => {
                let h = &c.latency;
                let n = x.canary_lat_n;
                v.evidence = n;
                let sp99 = quantile_ns(&x.stable.latency, x.stable_lat_n, 0.99);
                v.baseline = sp99.map(|ns| ns as f64 / 1e6);
                if let (Some(cp), Some(sp)) = (quantile_ns(h, n, 0.99), sp99) {
                    v.value = Some(cp as f64 / sp as f64);
                }
                let lower =
                    stable_p99_lower_ns(&x.stable.latency, x.stable_lat_n, x.z, x.min_requests);
                if let Some(lo) = lower {
                    let slow = count_possibly_above(h, self.limit * lo);
                    if let Some((_, hi)) = wilson(slow, n, x.z) {
                        if n >= x.min_requests && hi < SLOW_LIMIT {
                            v.result = CheckResult::Passed;
                        }
                    }
                }
            }
        }
        v
    }
}

/// `(requests, errors)` when they make sense together.
fn consistent(r: &Reading) -> Option<(u64, u64)> {
    (r.errors <= r.requests).then_some((r.requests, r.errors))
}

/// Upper confidence bound of stable's error rate over the window, so a canary
/// exactly at stable + half the increase sits at or below the null.
fn stable_error_upper(x: &Inputs) -> Option<f64> {
    consistent(x.stable)
        .filter(|(n, _)| *n >= x.min_requests)
        .and_then(|(n, k)| wilson(k, n, x.z))
        .map(|(_, hi)| hi)
}

/// An upper bound of stable's p99 (ns): the bucket holding the order statistic
/// at rank `n·(0.99 + z·σ)`; `None` while stable is too thin to bound it.
fn stable_p99_upper_ns(h: &HistogramCounts, n: u64, min_requests: u64) -> Option<f64> {
    if n < min_requests.max(1) {
        return None;
    }
    let q = 0.99 + STABLE_P99_Z * (0.99 * 0.01 / n as f64).sqrt();
    if q > 1.0 {
        return None;
    }
    quantile_ns(h, n, q).map(|ns| ns as f64)
}

/// A lower bound of stable's p99 (ns), for Passed: the lower edge of the
/// bucket holding rank `n·(0.99 − z·σ)`.
fn stable_p99_lower_ns(h: &HistogramCounts, n: u64, z: f64, min_requests: u64) -> Option<f64> {
    if n < min_requests.max(1) {
        return None;
    }
    let q = 0.99 - z * (0.99 * 0.01 / n as f64).sqrt();
    if q <= 0.0 {
        return None;
    }
    let i = quantile_bucket(h, n, q)?;
    Some(if i == 0 { 0.0 } else { BOUNDS_NS[i - 1] as f64 })
}

/// The bucket holding quantile `q` of the `n` samples in `h` (rank `⌈q·n⌉`).
fn quantile_bucket(h: &HistogramCounts, n: u64, q: f64) -> Option<usize> {
    if n == 0 || !(q > 0.0 && q <= 1.0) {
        return None;
    }
    let rank = ((q * n as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, &c) in h.buckets.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(i);
        }
    }
    None
}

/// Quantile `q` as its bucket's upper bound in ns (the last finite bound for `+Inf`),
/// as `HistogramCounts::quantile` but with the count already known.
fn quantile_ns(h: &HistogramCounts, n: u64, q: f64) -> Option<u64> {
    let i = quantile_bucket(h, n, q)?;
    Some(BOUNDS_NS[i.min(BOUNDS_NS.len() - 1)])
}

/// Samples certainly slower than `thr_ns`: whole buckets above it.
fn count_certainly_above(h: &HistogramCounts, thr_ns: f64) -> u64 {
    if !thr_ns.is_finite() || thr_ns < 0.0 {
        return 0;
    }
    h.count_above(std::time::Duration::from_nanos(thr_ns as u64))
}

/// Samples possibly slower than `thr_ns`: every bucket reaching above it.
fn count_possibly_above(h: &HistogramCounts, thr_ns: f64) -> u64 {
    if !thr_ns.is_finite() {
        return h.count();
    }
    let ns = thr_ns.max(0.0) as u64;
    let i = bucket_index(ns);
    let first = if BOUNDS_NS.get(i) == Some(&ns) {
        i + 1
    } else {
        i
    };
    h.buckets[first.min(h.buckets.len())..].iter().sum()
}
