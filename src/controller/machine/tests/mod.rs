//! The machine on a simulated clock: no runtime, no sleeps. Minutes of
//! rollout run in milliseconds.
mod commands;
mod guard;
mod plan;
mod restore;

use super::*;
use crate::controller::state_file::State;
use crate::telemetry::histogram::bucket_index;

/// The guard's tick.
const TICK: Duration = Duration::from_millis(250);

/// A config with only the error-rate limit (`max: 5%`), plus `extra`.
fn settings(extra: &str) -> Settings {
    let yaml = format!(
        "listen: 127.0.0.1:0\n\
         upstreams:\n  stable: {{ endpoints: [\"http://127.0.0.1:1\"] }}\n  canary: {{ version: v2, endpoints: [\"http://127.0.0.1:2\"] }}\n\
         analysis: {{ error_rate: {{ max: 5.0, max_increase: null }}, latency: {{ max_p99: null, max_p99_ratio: null }} }}\n\
         {extra}"
    );
    match crate::config::parse(&yaml, &|_| None) {
        Ok(c) => Settings::from_config(&c),
        Err(e) => panic!("test config: {:?}\n{yaml}", e.messages()),
    }
}

fn plan(steps: &str) -> Settings {
    settings(&format!("rollout:\n  steps:\n{steps}"))
}

/// `n` requests at 20 ms, `errors` of them errors.
fn reading(n: u64, errors: u64) -> Reading {
    let mut r = Reading {
        requests: n,
        errors,
        ..Reading::default()
    };
    r.latency.buckets[bucket_index(20_000_000)] += n;
    r.latency.sum_ns = n * 20_000_000;
    r
}

/// A driver: the machine, its clock, the evidence it is fed and every event.
struct Sim {
    m: Machine,
    now: Duration,
    canary_window: Reading,
    stable_window: Reading,
    canary_down: bool,
    events: Vec<Notice>,
}

impl Sim {
    fn start(s: Settings) -> Sim {
        let (m, fx) = Machine::start(s, Duration::ZERO);
        assert!(fx.publish && fx.persist);
        Sim::with(m, fx)
    }

    fn restore(s: Settings, saved: &State) -> Result<Sim, Unfit> {
        let (m, fx) = Machine::restore(s, saved, Duration::ZERO)?;
        assert!(fx.publish && fx.persist);
        Ok(Sim::with(m, fx))
    }

    fn with(m: Machine, fx: Effects) -> Sim {
        Sim {
            m,
            now: Duration::ZERO,
            canary_window: Reading::default(),
            stable_window: reading(100_000, 0),
            canary_down: false,
            events: fx.events,
        }
    }

    fn input(&mut self, i: Input) -> Result<Effects, Rejection> {
        let fx = self.m.handle(i, self.now)?;
        self.events.extend(fx.events.iter().cloned());
        Ok(fx)
    }

    fn cmd(&mut self, c: Command) -> Result<Effects, Rejection> {
        self.input(Input::Command(c))
    }

    /// A command that must be refused, and must change nothing.
    fn refused(&mut self, c: Command) -> Rejection {
        let before = (
            self.m.rollout().clone(),
            self.m.phase(),
            self.m.analysis().clone(),
        );
        let n = self.events.len();
        let r = match self.cmd(c) {
            Err(r) => r,
            Ok(fx) => panic!("{c:?} accepted: {:?}", fx.kinds()),
        };
        let after = (
            self.m.rollout().clone(),
            self.m.phase(),
            self.m.analysis().clone(),
        );
        assert_eq!(after, before, "{c:?} refused but changed the state");
        assert_eq!(self.events.len(), n);
        r
    }

    /// One guard interval with `n` weighted canary requests, `errors` of them errors.
    fn tick(&mut self, n: u64, errors: u64) -> Effects {
        self.now += TICK;
        let tick = reading(n, errors);
        self.canary_window.add(&tick);
        let o = Observation {
            canary_tick: tick,
            canary_window: self.canary_window.clone(),
            stable_window: self.stable_window.clone(),
            canary_down: self.canary_down,
        };
        match self.input(Input::Tick(o)) {
            Ok(fx) => fx,
            Err(r) => panic!("tick refused: {r}"),
        }
    }

    /// Ticks for `d` at `rps` canary requests per second with `err_pct` % errors;
    /// stops early at an abort. Returns the kinds of the events on the way.
    fn run(&mut self, d: Duration, rps: u64, err_pct: u64) -> Vec<&'static str> {
        let n = rps * TICK.as_millis() as u64 / 1000;
        let mut kinds = Vec::new();
        let end = self.now + d;
        while self.now < end && !self.m.aborted() {
            kinds.extend(self.tick(n, n * err_pct / 100).kinds());
        }
        kinds
    }

    /// Time passes with no traffic.
    fn idle(&mut self, d: Duration) -> Vec<&'static str> {
        self.run(d, 0, 0)
    }

    fn weight(&self) -> f64 {
        self.m.weight()
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.events.iter().map(|n| n.kind).collect()
    }

    fn last(&self) -> &Notice {
        match self.events.last() {
            Some(n) => n,
            None => panic!("no events"),
        }
    }

    /// `(phase, weight, step_index)`.
    fn at(&self) -> (Phase, f64, Option<usize>) {
        (self.m.phase(), self.weight(), self.m.step_index())
    }

    /// The status's own invariants hold in every state.
    fn consistent(&self) {
        let m = &self.m;
        assert_eq!(m.paused(), m.phase() == Phase::Paused);
        assert_eq!(m.aborted(), m.phase() == Phase::Degraded);
        if m.aborted() {
            assert_eq!(m.weight_bp(), 0);
        }
        assert_eq!(m.state().check(), Ok(()));
        // The guard is off only for a reason that holds.
        match m.guard_off() {
            Some(GuardOff::Aborted) => assert!(m.aborted()),
            Some(GuardOff::WeightZero) => assert_eq!(m.weight_bp(), 0),
            Some(GuardOff::PlanComplete) => {
                assert_eq!((m.phase(), m.weight_bp()), (Phase::Healthy, FULL_BP))
            }
            None => assert!(m.weight_bp() > 0 && !m.aborted()),
        }
    }
}

const MIN: Duration = Duration::from_secs(60);
const SEC: Duration = Duration::from_secs(1);
