//! The status page's history: one sample per wall-clock second, kept in a
//! fixed ring (the last [`CAPACITY`] seconds), so a page opened late (say just
//! after an abort) still draws what led up to it.
//!
//! The controller feeds it the per-tick deltas it already takes for its
//! windows (`Windows::last_tick`), on its own clock: [`History::tick`] is
//! given the time, never reads one. A sample covers the ticks since the
//! previous sample (about one second; longer when the controller was late
//! or `analysis.interval` is above a second), and is stamped with the wall
//! second it closed at, so consecutive stamps are whole seconds apart.
use crate::config::bp_to_weight;
use crate::telemetry::apm::round2;
use crate::telemetry::Reading;
use crate::Phase;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Duration;

/// Spacing of samples.
pub(crate) const RESOLUTION: Duration = Duration::from_secs(1);
/// Samples kept: 15 minutes at [`RESOLUTION`].
pub(crate) const CAPACITY: usize = 900;

/// One version's figures over one sample's span (weighted traffic only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionSample {
    pub requests: u64,
    /// Requests per second over the span.
    pub rps: f64,
    /// Percent; `None` without requests.
    pub error_rate: Option<f64>,
    /// The span's p99 in ms (bucket upper bound, as in the status); `None`
    /// without timed requests.
    pub p99_ms: Option<f64>,
}

impl VersionSample {
    fn of(r: &Reading, span: Duration) -> VersionSample {
        let secs = span.as_secs_f64().max(1e-3);
        VersionSample {
            requests: r.requests,
            rps: round2(r.requests as f64 / secs),
            error_rate: r.error_rate_pct().map(round2),
            p99_ms: r
                .latency
                .quantile(0.99)
                .map(|d| round2(d.as_secs_f64() * 1e3)),
        }
    }
}

/// One point of `GET /api/v1/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Unix time in ms: the wall second at which the sample closed.
    pub t: u64,
    /// How long the sample really covers (about 1000).
    pub span_ms: u64,
    /// The canary weight (percent) and the phase at the end of the span.
    pub canary_weight: f64,
    pub phase: Phase,
    pub stable: VersionSample,
    pub canary: VersionSample,
}

/// The ring and the sample being filled.
pub(crate) struct History {
    /// Unix ms of the driver's clock origin (`now` = 0).
    origin_unix_ms: u64,
    capacity: usize,
    ring: VecDeque<Sample>,
    /// Wall second (unix s) the open sample belongs to.
    second: u64,
    /// When the open sample began, on the driver's clock.
    began: Duration,
    acc: [Reading; 2],
}

impl History {
    /// `origin_unix_ms`: the wall time at the driver's clock origin.
    pub(crate) fn new(origin_unix_ms: u64) -> History {
        History::with_capacity(origin_unix_ms, CAPACITY)
    }

    pub(crate) fn with_capacity(origin_unix_ms: u64, capacity: usize) -> History {
        let capacity = capacity.max(1);
        History {
            origin_unix_ms,
            capacity,
            ring: VecDeque::with_capacity(capacity),
            second: origin_unix_ms / 1000,
            began: Duration::ZERO,
            acc: [Reading::default(), Reading::default()],
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// One controller tick at `now` (the driver's clock): `delta` is the
    /// weighted evidence `[stable, canary]` since the previous tick,
    /// `weight_bp` and `phase` the state after it. Closes the open sample
    /// once `now` is in a later wall second.
    pub(crate) fn tick(
        &mut self,
        now: Duration,
        delta: [&Reading; 2],
        weight_bp: u32,
        phase: Phase,
    ) {
        for (acc, d) in self.acc.iter_mut().zip(delta) {
            acc.add(d);
        }
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let second = self.origin_unix_ms.saturating_add(now_ms) / 1000;
        if second <= self.second {
            return;
        }
        let span = now.saturating_sub(self.began);
        let [stable, canary] = std::mem::take(&mut self.acc);
        let sample = Sample {
            t: second * 1000,
            span_ms: u64::try_from(span.as_millis()).unwrap_or(u64::MAX),
            canary_weight: bp_to_weight(weight_bp),
            phase,
            stable: VersionSample::of(&stable, span),
            canary: VersionSample::of(&canary, span),
        };
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(sample);
        self.second = second;
        self.began = now;
    }

    /// The samples stamped after `after` (unix ms), oldest first; all of them
    /// without `after`.
    pub(crate) fn since(&self, after: Option<u64>) -> Vec<Sample> {
        let start = match after {
            Some(t) => self.ring.partition_point(|s| s.t <= t),
            None => 0,
        };
        self.ring.range(start..).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: u64 = 1_700_000_000_250; // a quarter past a wall second

    fn reading(requests: u64, errors: u64, latency: Duration) -> Reading {
        let mut r = Reading {
            requests,
            errors,
            ..Reading::default()
        };
        let bucket = crate::telemetry::histogram::bucket_index(
            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
        );
        r.latency.buckets[bucket] = requests;
        r
    }

    /// Ticks every `interval` from `from` to `to` on a simulated clock, each
    /// with `per_tick` stable and canary requests.
    fn run(h: &mut History, from: Duration, to: Duration, interval: Duration, w: u32, p: Phase) {
        let stable = reading(10, 0, Duration::from_millis(5));
        let canary = reading(4, 1, Duration::from_millis(40));
        let mut now = from;
        while now <= to {
            h.tick(now, [&stable, &canary], w, p);
            now += interval;
        }
    }

    #[test]
    fn one_sample_per_wall_second() {
        let mut h = History::new(ORIGIN);
        let tick = Duration::from_millis(250);
        run(
            &mut h,
            tick,
            Duration::from_secs(10),
            tick,
            2000,
            Phase::Progressing,
        );
        let s = h.since(None);
        // Wall seconds ..0.5 ..1.0 ... crossed at now = 0.75, 1.75, ..., 9.75.
        assert_eq!(s.len(), 10);
        for pair in s.windows(2) {
            assert_eq!(pair[1].t - pair[0].t, 1000, "{pair:?}");
        }
        assert_eq!(s[0].t, (ORIGIN / 1000 + 1) * 1000);
        // The first sample began at the origin (3 ticks), the rest span a second (4 ticks).
        assert_eq!((s[0].span_ms, s[0].canary.requests), (750, 12));
        let full = &s[1];
        assert_eq!(full.span_ms, 1000);
        assert_eq!(full.stable.requests, 40);
        assert_eq!(full.stable.rps, 40.0);
        assert_eq!(full.canary.rps, 16.0);
        assert_eq!(full.canary.error_rate, Some(25.0));
        assert_eq!(full.stable.error_rate, Some(0.0));
        let p99 = full.canary.p99_ms.unwrap();
        assert!((40.0..=44.0).contains(&p99), "{p99}");
        assert_eq!((full.canary_weight, full.phase), (20.0, Phase::Progressing));
    }

    #[test]
    fn weight_and_phase_are_those_at_the_end_of_the_second() {
        let mut h = History::new(ORIGIN);
        let z = Reading::default();
        let ms = Duration::from_millis;
        h.tick(ms(500), [&z, &z], 5000, Phase::Paused);
        h.tick(ms(760), [&z, &z], 0, Phase::Degraded); // crosses into the next second
        let s = h.since(None);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].canary_weight, s[0].phase), (0.0, Phase::Degraded));
        // No traffic: rates 0, no error rate, no p99.
        assert_eq!(s[0].canary.rps, 0.0);
        assert_eq!((s[0].canary.error_rate, s[0].canary.p99_ms), (None, None));
    }

    #[test]
    fn a_late_tick_closes_one_longer_sample() {
        let mut h = History::new(ORIGIN);
        let r = reading(30, 0, Duration::from_millis(1));
        let ms = Duration::from_millis;
        h.tick(ms(800), [&r, &r], 0, Phase::Healthy);
        h.tick(ms(3800), [&r, &r], 0, Phase::Healthy); // 3 s late
        let s = h.since(None);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].t - s[0].t, 3000);
        assert_eq!(s[1].span_ms, 3000);
        assert_eq!(s[1].stable.rps, 10.0);
    }

    #[test]
    fn the_ring_is_bounded_and_keeps_the_newest() {
        let mut h = History::with_capacity(ORIGIN, 60);
        let tick = Duration::from_millis(100);
        run(
            &mut h,
            tick,
            Duration::from_secs(200),
            tick,
            0,
            Phase::Healthy,
        );
        assert_eq!(h.len(), 60);
        let s = h.since(None);
        assert_eq!(s.len(), 60);
        let newest = s.last().unwrap().t;
        assert_eq!(newest, (ORIGIN + 200_000) / 1000 * 1000);
        assert_eq!(s[0].t, newest - 59_000);

        // The default ring holds 15 minutes and no more, whatever the run.
        let mut h = History::new(ORIGIN);
        let tick = Duration::from_millis(250);
        run(
            &mut h,
            tick,
            Duration::from_secs(20 * 60),
            tick,
            0,
            Phase::Healthy,
        );
        assert_eq!(h.len(), CAPACITY);
        assert!(CAPACITY as u64 * RESOLUTION.as_secs() >= 15 * 60);
    }

    #[test]
    fn since_returns_only_newer_samples() {
        let mut h = History::new(ORIGIN);
        let tick = Duration::from_millis(250);
        run(
            &mut h,
            tick,
            Duration::from_secs(5),
            tick,
            0,
            Phase::Healthy,
        );
        let all = h.since(None);
        assert_eq!(h.since(Some(all[1].t)), all[2..].to_vec());
        assert!(h.since(Some(all.last().unwrap().t)).is_empty());
        assert_eq!(h.since(Some(0)), all);
    }
}
