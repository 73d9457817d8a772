//! The rollout state machine: `(state, input, now) -> (state, effects)`.
//!
//! Pure: no clock of its own (every input carries `now`, a monotonic
//! [`Duration`] since an origin the driver picks), no I/O, no shared handles.
//! The driver (the controller task) feeds it ticks with the evidence, admin
//! commands and config changes, and carries out the [`Effects`] it returns.
//!
//! The state is split in two: [`Rollout`] (weight, abort, plan position;
//! serializable, what a state file or a shared store holds) and the evidence
//! the guard has accumulated (statistics, last verdict, a gate in progress),
//! which each driver rebuilds rather than persists.
mod commands;
mod effects;
mod reconfigure;
mod rejection;
mod restore;
mod walk;

#[cfg(test)]
mod tests;

pub(crate) use effects::{Effects, Notice};
pub(crate) use rejection::Rejection;
pub(crate) use restore::Unfit;

use super::plan::Plan;
use super::state_file::State;
use crate::config::{self, Analysis, Config};
use crate::judge::{CheckResult, Guard, Verdict};
use crate::telemetry::Reading;
use crate::Phase;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the machine takes from the config file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// The canary version: it names the rollout, and a new one starts over.
    pub version: String,
    /// The global analysis block; step overrides merge over it.
    pub analysis: Analysis,
    pub plan: Option<Plan>,
    /// `routing.canary_weight`: the starting weight, and the manual-mode
    /// weight when a reload changes it.
    pub manual_weight_bp: u32,
}

impl Settings {
    pub(crate) fn from_config(c: &Config) -> Settings {
        Settings {
            version: c
                .upstreams
                .canary
                .version
                .clone()
                .unwrap_or_else(|| "canary".into()),
            analysis: c.analysis.clone(),
            plan: c.rollout.as_ref().map(|r| Plan::new(r.steps.clone())),
            manual_weight_bp: config::weight_to_bp(c.routing.canary_weight),
        }
    }
}

/// The rollout's own state, without evidence. The phase is derived from it
/// (see [`Machine::phase`]), so the two can never disagree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Rollout {
    pub weight_bp: u32,
    pub abort: bool,
    /// Why it aborted; empty otherwise.
    pub message: String,
    pub mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// The operator owns the weight; the guard runs while it is above 0.
    /// `after_plan`: a plan completed and the operator then set the weight,
    /// so the plan's last analysis override stays in force until a retry.
    Manual { after_plan: bool },
    /// Walking the configured plan.
    Plan(Position),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// 0-based index of the step being waited on (a pause or a gate); the
    /// plan's length once it has finished. Events count from 1 ("step i+1/n").
    pub index: usize,
    /// When the current step began, on the machine's clock.
    pub step_started: Duration,
    /// Set exactly while the phase is `Paused`: what `resume` will do.
    pub hold: Option<OnResume>,
}

impl Position {
    fn at(index: usize, now: Duration) -> Position {
        Position {
            index,
            step_started: now,
            hold: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnResume {
    /// Finish the current step (an operator paused a timed pause or a gate).
    Continue,
    /// Go on with the next step (`pause: {}`, `PUT weight`, an inconclusive gate).
    Next,
}

/// The evidence of one tick, as the driver measured it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observation {
    /// Weighted canary requests since the previous tick.
    pub canary_tick: Reading,
    /// Weighted canary and stable requests over `analysis.window`.
    pub canary_window: Reading,
    pub stable_window: Reading,
    /// Every canary endpoint has failed its health check.
    pub canary_down: bool,
}

/// An admin command, already validated as input (a weight in 0..=100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Command {
    SetWeight(f64),
    Promote { full: bool },
    Abort,
    Retry,
    Pause,
    Resume,
}

#[derive(Debug, Clone)]
pub(crate) enum Input {
    Tick(Observation),
    Command(Command),
    /// A reloaded config (`source` names it in the event).
    Reconfigure {
        settings: Settings,
        source: String,
    },
}

/// Why the guard is not judging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardOff {
    Aborted,
    WeightZero,
    /// The plan finished at 100%: the canary is the new version.
    PlanComplete,
}

impl GuardOff {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            GuardOff::Aborted => "aborted",
            GuardOff::WeightZero => "weight 0",
            GuardOff::PlanComplete => "plan complete",
        }
    }
}

/// An analysis gate in progress, for the status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct GateStatus {
    pub elapsed_ms: u64,
    pub duration_ms: u64,
    pub timeout_ms: u64,
    pub requests: u64,
    pub min_requests: u64,
    pub result: CheckResult,
}

/// An analysis gate in progress: its own guard over the requests since it began.
struct GateRun {
    guard: Guard,
    analysis: Analysis,
    duration: Duration,
    timeout: Duration,
    /// Weighted canary evidence since the gate began.
    since: Reading,
    last: CheckResult,
}

/// What the guard has seen. Rebuilt, never persisted.
struct Evidence {
    guard: Guard,
    verdict: Option<Verdict>,
    /// When `verdict` was computed, on the machine's clock.
    verdict_at: Duration,
    gate: Option<GateRun>,
    canary_down: bool,
}

impl Evidence {
    fn new(analysis: &Analysis) -> Evidence {
        Evidence {
            guard: Guard::new(analysis),
            verdict: None,
            verdict_at: Duration::ZERO,
            gate: None,
            canary_down: false,
        }
    }
}

pub(crate) struct Machine {
    settings: Settings,
    rollout: Rollout,
    evidence: Evidence,
    /// The effective analysis: the global block merged with the override in force.
    analysis: Analysis,
}

const FULL_BP: u32 = 10_000;

/// The state before an input, to diff against after it: the rollout, its
/// phase and the error statuses in force.
type Observed = (Rollout, Phase, Vec<String>);

impl Machine {
    fn blank(settings: Settings) -> Machine {
        Machine {
            evidence: Evidence::new(&settings.analysis),
            analysis: settings.analysis.clone(),
            rollout: Rollout {
                weight_bp: settings.manual_weight_bp,
                abort: false,
                message: String::new(),
                mode: Mode::Manual { after_plan: false },
            },
            settings,
        }
    }

    /// One input. A rejected command or config change changes nothing.
    pub(crate) fn handle(&mut self, input: Input, now: Duration) -> Result<Effects, Rejection> {
        let before = self.observed();
        let mut fx = Effects::default();
        match input {
            Input::Tick(o) => self.tick(&o, now, &mut fx),
            Input::Command(c) => self.command(c, now, &mut fx)?,
            Input::Reconfigure { settings, source } => {
                self.reconfigure(settings, &source, now, &mut fx)?
            }
        }
        self.settle(before, &mut fx);
        Ok(fx)
    }

    // ---- reading the state ---------------------------------------------

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn rollout(&self) -> &Rollout {
        &self.rollout
    }

    pub(crate) fn plan(&self) -> Option<&Plan> {
        self.settings.plan.as_ref()
    }

    pub(crate) fn phase(&self) -> Phase {
        if self.rollout.abort {
            return Phase::Degraded;
        }
        match &self.rollout.mode {
            Mode::Manual { .. } => Phase::Healthy,
            Mode::Plan(p) if self.finished(p) => Phase::Healthy,
            Mode::Plan(p) if p.hold.is_some() => Phase::Paused,
            Mode::Plan(_) => Phase::Progressing,
        }
    }

    pub(crate) fn weight_bp(&self) -> u32 {
        self.rollout.weight_bp
    }

    pub(crate) fn weight(&self) -> f64 {
        config::bp_to_weight(self.rollout.weight_bp)
    }

    pub(crate) fn aborted(&self) -> bool {
        self.rollout.abort
    }

    pub(crate) fn message(&self) -> &str {
        &self.rollout.message
    }

    /// The plan position (0-based); `None` in manual mode.
    pub(crate) fn step_index(&self) -> Option<usize> {
        match &self.rollout.mode {
            Mode::Plan(p) => Some(p.index),
            Mode::Manual { .. } => None,
        }
    }

    /// `true` exactly when the phase is `Paused`.
    pub(crate) fn paused(&self) -> bool {
        self.phase() == Phase::Paused
    }

    pub(crate) fn manual(&self) -> bool {
        matches!(self.rollout.mode, Mode::Manual { .. })
    }

    /// The analysis in force (global block and step override).
    pub(crate) fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// The last check of the always-on guard and when it was made.
    pub(crate) fn verdict(&self) -> Option<(&Verdict, Duration)> {
        let e = &self.evidence;
        e.verdict.as_ref().map(|v| (v, e.verdict_at))
    }

    /// `None` while the guard judges every tick.
    pub(crate) fn guard_off(&self) -> Option<GuardOff> {
        let r = &self.rollout;
        if r.abort {
            return Some(GuardOff::Aborted);
        }
        if r.weight_bp == 0 {
            return Some(GuardOff::WeightZero);
        }
        // A plan that ends below 100% leaves a canary beside stable: still guarded.
        match &r.mode {
            Mode::Plan(p) if self.finished(p) && r.weight_bp == FULL_BP => {
                Some(GuardOff::PlanComplete)
            }
            _ => None,
        }
    }

    pub(crate) fn gate(&self, now: Duration) -> Option<GateStatus> {
        let (Mode::Plan(p), Some(g)) = (&self.rollout.mode, &self.evidence.gate) else {
            return None;
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Some(GateStatus {
            elapsed_ms: ms(now.saturating_sub(p.step_started)),
            duration_ms: ms(g.duration),
            timeout_ms: ms(g.timeout),
            requests: g.since.requests,
            min_requests: g.analysis.min_requests,
            result: g.last,
        })
    }

    /// The state file's record of this state.
    pub(crate) fn state(&self) -> State {
        State {
            version: self.settings.version.clone(),
            phase: self.phase(),
            canary_weight: self.weight(),
            step_index: self.step_index(),
            abort: self.rollout.abort,
            message: self.rollout.message.clone(),
            paused: self.paused(),
        }
    }

    // ---- shared helpers ------------------------------------------------

    fn finished(&self, p: &Position) -> bool {
        p.index >= self.settings.plan.as_ref().map_or(0, Plan::len)
    }

    /// The analysis in force at `mode`: the global block merged with the
    /// last override up to the position (kept after the plan completes).
    fn target_analysis(&self) -> Analysis {
        let plan = self.settings.plan.as_ref();
        let patch = match &self.rollout.mode {
            Mode::Plan(p) => plan.and_then(|pl| pl.override_patch(p.index)),
            Mode::Manual { after_plan: true } => plan.and_then(|pl| pl.override_patch(pl.len())),
            Mode::Manual { after_plan: false } => None,
        };
        match patch {
            Some(patch) => self.settings.analysis.merged(patch),
            None => self.settings.analysis.clone(),
        }
    }

    fn emit(&self, fx: &mut Effects, kind: &'static str, message: String, previous_bp: u32) {
        fx.events.push(Notice {
            kind,
            message,
            phase: self.phase(),
            weight_bp: self.rollout.weight_bp,
            previous_bp,
            metric: None,
        });
    }

    /// What decides `publish` and `persist`.
    fn observed(&self) -> Observed {
        (
            self.rollout.clone(),
            self.phase(),
            self.analysis.error_statuses.clone(),
        )
    }

    /// After every input: the analysis follows the position (the guard keeps
    /// its evidence but judges by the new limits), and the diff says what the
    /// driver must publish.
    fn settle(&mut self, before: Observed, fx: &mut Effects) {
        let target = self.target_analysis();
        if target != self.analysis {
            if target.interval != self.analysis.interval || target.window != self.analysis.window {
                fx.rebuild_windows = true;
            }
            self.evidence.guard.set_limits(&target);
            self.analysis = target;
        }
        let (rollout, phase, statuses) = before;
        let r = &self.rollout;
        fx.publish |= r.weight_bp != rollout.weight_bp
            || r.abort != rollout.abort
            || self.phase() != phase
            || self.analysis.error_statuses != statuses;
        fx.persist |= *r != rollout;
    }
}
