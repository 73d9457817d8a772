//! One guarded run on a simulated clock: per check, Poisson arrivals, binomial
//! errors and a multinomial latency histogram for each version, sliding
//! windows, and the real `judge::Guard`.
use super::dist::{binomial, BucketSampler};
use crate::config::Analysis;
use crate::judge::Guard;
use crate::telemetry::Reading;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};

/// One version's behaviour.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Error probability per request.
    pub error_p: f64,
    pub latency: BucketSampler,
}

/// Everything a run needs, shared by all runs.
pub struct Scenario {
    pub analysis: Analysis,
    /// Requests per second to each version.
    pub canary_rps: f64,
    pub stable_rps: f64,
    pub stable: Behaviour,
    /// The canary before the fault (as stable) and after it.
    pub canary_before: Behaviour,
    pub canary_after: Behaviour,
    pub fault_at_s: f64,
    pub duration_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunResult {
    /// Simulated time of the abort, seconds from the start.
    pub aborted_at: Option<f64>,
    /// From the first canary request after the fault to the abort.
    pub detection_s: Option<f64>,
    /// Canary errors from the fault to the abort.
    pub blast_radius: u64,
}

/// A sliding window: a ring of per-check readings and their running sum.
struct Window {
    slots: Vec<Reading>,
    next: usize,
    sum: Reading,
}

impl Window {
    fn new(len: usize) -> Self {
        Window {
            slots: vec![Reading::default(); len.max(1)],
            next: 0,
            sum: Reading::default(),
        }
    }

    /// Evicts the oldest slot and returns it cleared, to be filled as the new tick.
    fn open(&mut self) -> &mut Reading {
        let old = &mut self.slots[self.next];
        self.sum.requests -= old.requests;
        self.sum.errors -= old.errors;
        for (s, o) in self
            .sum
            .latency
            .buckets
            .iter_mut()
            .zip(old.latency.buckets.iter_mut())
        {
            *s -= *o;
            *o = 0;
        }
        self.sum.latency.sum_ns -= old.latency.sum_ns;
        old.latency.sum_ns = 0;
        old.requests = 0;
        old.errors = 0;
        old
    }

    /// Adds the tick filled after `open` into the sum; returns its index.
    fn close(&mut self) -> usize {
        let i = self.next;
        self.sum.add(&self.slots[i]);
        self.next = (i + 1) % self.slots.len();
        i
    }
}

/// The per-run seed: a SplitMix64 step of the base seed and the run index, so
/// runs are independent of how they are spread over threads.
pub fn run_seed(seed: u64, run: u64) -> u64 {
    let mut z = seed ^ run.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn poisson(mean: f64) -> Option<Poisson<f64>> {
    (mean > 0.0).then(|| Poisson::new(mean).ok()).flatten()
}

pub(super) fn run(sc: &Scenario, seed: u64) -> RunResult {
    let mut rng = SmallRng::seed_from_u64(seed);
    let dt = sc.analysis.interval.get().as_secs_f64();
    let ticks = (sc.duration_s / dt).ceil() as u64;
    let window_ticks = (sc.analysis.window.get().as_secs_f64() / dt).round() as usize;
    let fault_tick = (sc.fault_at_s / dt).ceil() as u64;
    let canary_arrivals = poisson(sc.canary_rps * dt);
    let stable_arrivals = poisson(sc.stable_rps * dt);
    let mut guard = Guard::new(&sc.analysis);
    let mut canary = Window::new(window_ticks);
    let mut stable = Window::new(window_ticks);
    let mut first_bad: Option<f64> = None;
    let mut blast = 0u64;
    for t in 0..ticks {
        let bad = t >= fault_tick;
        let b = if bad {
            &sc.canary_after
        } else {
            &sc.canary_before
        };
        let n = canary_arrivals
            .as_ref()
            .map_or(0, |p| p.sample(&mut rng) as u64);
        let tick = canary.open();
        tick.requests = n;
        tick.errors = binomial(n, b.error_p, &mut rng);
        b.latency.sample(n, &mut rng, &mut tick.latency);
        if bad {
            blast += tick.errors;
            if first_bad.is_none() && n > 0 {
                // the earliest of n uniform arrivals in the tick
                let u: f64 = rng.random();
                first_bad = Some((t as f64 + 1.0 - u.powf(1.0 / n as f64)) * dt);
            }
        }
        let tick_i = canary.close();
        let n = stable_arrivals
            .as_ref()
            .map_or(0, |p| p.sample(&mut rng) as u64);
        let s = stable.open();
        s.requests = n;
        s.errors = binomial(n, sc.stable.error_p, &mut rng);
        sc.stable.latency.sample(n, &mut rng, &mut s.latency);
        stable.close();
        guard.check(&canary.slots[tick_i], &canary.sum, &stable.sum);
        if guard.should_abort() {
            let at = (t + 1) as f64 * dt;
            return RunResult {
                aborted_at: Some(at),
                detection_s: first_bad.map(|f| at - f),
                blast_radius: blast,
            };
        }
    }
    RunResult {
        aborted_at: None,
        detection_s: None,
        blast_radius: blast,
    }
}
