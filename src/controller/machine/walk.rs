//! Ticks: the guard, health, the plan's timed steps and gates, and the abort.
use super::{Effects, GateRun, Machine, Mode, Observation, OnResume};
use crate::config::{self, StepKind};
use crate::judge::{CheckResult, Guard, Verdict};
use std::time::Duration;

const UNHEALTHY: &str = "RolloutAborted: metric \"canary-unhealthy\" assessed Failed: every canary endpoint failed its health check; canary unhealthy";

impl Machine {
    pub(super) fn tick(&mut self, o: &Observation, now: Duration, fx: &mut Effects) {
        if o.canary_down != self.evidence.canary_down {
            self.evidence.canary_down = o.canary_down;
            if o.canary_down {
                let msg = "every canary endpoint failed its health check".to_string();
                self.emit(fx, "unhealthy", msg, self.rollout.weight_bp);
            }
        }
        if o.canary_down && self.rollout.weight_bp > 0 && !self.rollout.abort {
            self.abort_now("canary-unhealthy", UNHEALTHY.into(), fx);
            return;
        }
        if self.guard_off().is_none() {
            let e = &mut self.evidence;
            let v = e
                .guard
                .check(&o.canary_tick, &o.canary_window, &o.stable_window);
            let abort = e.guard.should_abort().then(|| {
                let msg =
                    v.abort_message(self.analysis.failure_limit, e.guard.consecutive_failures());
                (failed_metric(&v), msg)
            });
            e.verdict = Some(v);
            e.verdict_at = now;
            if let Some((metric, msg)) = abort {
                self.abort_now(metric, msg, fx);
                return;
            }
        }
        self.plan_tick(o, now, fx);
    }

    fn plan_tick(&mut self, o: &Observation, now: Duration, fx: &mut Effects) {
        if self.rollout.abort {
            return;
        }
        let Some(plan) = self.settings.plan.as_ref() else {
            return;
        };
        let Mode::Plan(p) = &mut self.rollout.mode else {
            return;
        };
        let elapsed = now.saturating_sub(p.step_started);
        match plan.kind(p.index) {
            Some(StepKind::Pause(Some(d))) if p.hold.is_none() && elapsed >= d => {
                p.index += 1;
                self.run_plan(now, fx);
            }
            Some(StepKind::Gate(_)) => self.gate_tick(o, elapsed, now, fx),
            _ => {}
        }
    }

    /// A gate judges the requests since it began, even while held (a Failed
    /// verdict still aborts); it passes or gives up only when not held.
    fn gate_tick(&mut self, o: &Observation, elapsed: Duration, now: Duration, fx: &mut Effects) {
        let Mode::Plan(p) = &mut self.rollout.mode else {
            return;
        };
        let Some(g) = self.evidence.gate.as_mut() else {
            return;
        };
        g.since.add(&o.canary_tick);
        let v = g.guard.check(&o.canary_tick, &g.since, &o.stable_window);
        g.last = v.result;
        if g.guard.should_abort() {
            let msg = v.abort_message(g.analysis.failure_limit, g.guard.consecutive_failures());
            self.abort_now(failed_metric(&v), msg, fx);
            return;
        }
        if p.hold.is_some() {
            return;
        }
        if elapsed >= g.duration
            && g.since.requests >= g.analysis.min_requests
            && v.result == CheckResult::Passed
        {
            let msg = format!(
                "analysis gate passed on {} canary requests",
                g.since.requests
            );
            p.index += 1;
            self.evidence.gate = None;
            self.emit(fx, "step", msg, self.rollout.weight_bp);
            self.run_plan(now, fx);
        } else if elapsed >= g.timeout {
            let msg = format!(
                "analysis gate inconclusive after {} ({} canary requests, last check {:?}); paused: promote or resume to go on, abort to roll back",
                config::format_duration(g.timeout),
                g.since.requests,
                v.result
            );
            p.hold = Some(OnResume::Next);
            self.emit(fx, "inconclusive", msg, self.rollout.weight_bp);
        }
    }

    /// Walks instantaneous steps from the current position until one that
    /// waits, or the end.
    pub(super) fn run_plan(&mut self, now: Duration, fx: &mut Effects) {
        loop {
            let Some(plan) = self.settings.plan.as_ref() else {
                return;
            };
            let Mode::Plan(p) = &mut self.rollout.mode else {
                return;
            };
            match plan.kind(p.index) {
                None => {
                    p.hold = None;
                    self.evidence.gate = None;
                    let msg = format!("rollout complete at weight {}%", self.weight());
                    self.emit(fx, "completed", msg, self.rollout.weight_bp);
                    return;
                }
                Some(StepKind::SetWeight { weight, .. }) => {
                    let desc = plan.describe(p.index);
                    p.index += 1;
                    let prev = self.rollout.weight_bp;
                    self.rollout.weight_bp = config::weight_to_bp(weight);
                    self.emit(fx, "step", desc, prev);
                }
                Some(_) => {
                    self.enter_current(now, true, fx);
                    return;
                }
            }
        }
    }

    /// Starts the waiting step at the current position (a pause or a gate).
    /// `pause: {}` holds until promote or resume.
    pub(super) fn enter_current(&mut self, now: Duration, announce: bool, fx: &mut Effects) {
        let Some(plan) = self.settings.plan.as_ref() else {
            return;
        };
        let Mode::Plan(p) = &self.rollout.mode else {
            return;
        };
        let index = p.index;
        let gate = match plan.kind(index) {
            Some(StepKind::Gate(patch)) => {
                let analysis = self.analysis_at(index).merged(patch);
                let duration = patch.duration.map(|d| d.get()).unwrap_or_default();
                Some(GateRun {
                    guard: Guard::new(&analysis),
                    timeout: patch.gate_timeout().unwrap_or(duration * 5),
                    duration,
                    analysis,
                    since: Default::default(),
                    last: CheckResult::Inconclusive,
                })
            }
            _ => None,
        };
        let indefinite = plan.indefinite_pause_at(index);
        let desc = plan.describe(index);
        self.evidence.gate = gate;
        if let Mode::Plan(p) = &mut self.rollout.mode {
            p.step_started = now;
            if indefinite {
                p.hold = Some(OnResume::Next);
            }
        }
        if announce {
            let kind = if self.paused() { "paused" } else { "step" };
            self.emit(fx, kind, desc, self.rollout.weight_bp);
        }
    }

    /// The effective analysis at plan position `index`.
    fn analysis_at(&self, index: usize) -> crate::config::Analysis {
        match self.plan().and_then(|pl| pl.override_patch(index)) {
            Some(patch) => self.settings.analysis.merged(patch),
            None => self.settings.analysis.clone(),
        }
    }

    /// Weight 0 at once, phase `Degraded`; the plan keeps its position.
    pub(super) fn abort_now(&mut self, metric: &'static str, message: String, fx: &mut Effects) {
        let prev = self.rollout.weight_bp;
        self.rollout.weight_bp = 0;
        self.rollout.abort = true;
        self.rollout.message = message.clone();
        if let Mode::Plan(p) = &mut self.rollout.mode {
            p.hold = None;
        }
        self.evidence.gate = None;
        fx.aborts += 1;
        self.emit(fx, "aborted", message, prev);
        if let Some(n) = fx.events.last_mut() {
            n.metric = Some(metric);
        }
    }
}

/// The metric of the first failed assessment, for the abort log line.
fn failed_metric(v: &Verdict) -> &'static str {
    v.failed_metric().map_or("guard", |m| m.metric)
}
