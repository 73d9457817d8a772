//! The controller: the single writer of the snapshot, the phase and the state
//! file. Plan steps, the guard, admin commands and reloads all go through its
//! one task, which orders and persists them.
//!
//! Every change goes through [`Ctl::commit`]: new snapshot (if weight, abort
//! or error statuses changed), gauges, state file, event, webhook, view.
pub mod events;
pub mod plan;
pub mod state_file;
pub mod status;
pub mod webhook;

use crate::config::{self, Analysis, Config, StepKind};
use crate::judge::{CheckResult, Guard, Verdict};
use crate::snapshot::{ErrorStatuses, Live, Snapshot};
use crate::telemetry::window::Windows;
use crate::telemetry::{Reading, Registry};
use crate::{Phase, Role};
use arc_swap::ArcSwap;
use events::Events;
use plan::{Gate, Plan};
use serde_json::{json, Value};
use state_file::State;
use status::StatusView;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use webhook::Notifier;

#[derive(Debug, Clone)]
pub enum Command {
    /// Percent, already validated (0..=100, 2 decimals).
    SetWeight(f64),
    Promote {
        full: bool,
    },
    Abort,
    Retry,
    Pause,
    Resume,
    Reload,
}

/// An admin-visible failure: HTTP status and message (`{"error": message}`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(409, message)
    }
}

type Request = (Command, oneshot::Sender<Result<Value, ApiError>>);

/// Per-version sliding windows `[stable, canary]`. Owned by the controller;
/// the mutex is shared only with `/v1/metrics` reads (never the request path).
pub type SharedWindows = Arc<Mutex<[Windows; 2]>>;

#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Request>,
    view: Arc<ArcSwap<StatusView>>,
    windows: SharedWindows,
}

impl ControllerHandle {
    pub async fn call(&self, cmd: Command) -> Result<Value, ApiError> {
        let (tx, rx) = oneshot::channel();
        let gone = || ApiError::new(503, "controller stopped");
        self.tx.send((cmd, tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// The latest published status, events and analysis (never waits on the task).
    pub fn view(&self) -> Arc<StatusView> {
        self.view.load_full()
    }

    /// Evidence of `role` over the last `d` (≤ 1 h) and the time it really covers.
    pub fn span(&self, role: Role, d: Duration) -> Option<(Reading, Duration)> {
        lock(&self.windows)[role.index()].span_covered(d)
    }
}

fn lock(w: &SharedWindows) -> MutexGuard<'_, [Windows; 2]> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the controller task. It stops when `shutdown` turns true.
pub fn spawn(
    config: Config,
    config_path: Option<PathBuf>,
    live: Live,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) -> ControllerHandle {
    let (tx, mut rx) = mpsc::channel::<Request>(64);
    let view = Arc::new(ArcSwap::from_pointee(StatusView::default()));
    let windows = Arc::new(Mutex::new(new_windows(&config.analysis)));
    let handle = ControllerHandle {
        tx,
        view: view.clone(),
        windows: windows.clone(),
    };
    let mut ctl = Ctl::new(config, config_path, live, registry, view, windows);
    ctl.start();
    tokio::spawn(async move {
        let mut period = ctl.analysis.interval.get();
        let mut ticker = new_ticker(period);
        loop {
            tokio::select! {
                _ = ticker.tick() => ctl.tick(),
                req = rx.recv() => match req {
                    Some((cmd, reply)) => {
                        let r = ctl.command(cmd);
                        let _ = reply.send(r);
                    }
                    None => break,
                },
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
            }
            let want = ctl.analysis.interval.get();
            if want != period {
                period = want;
                ticker = new_ticker(period);
            }
        }
    });
    handle
}

fn new_ticker(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_millis(1));
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

fn new_windows(a: &Analysis) -> [Windows; 2] {
    [
        Windows::new(a.interval.get(), a.window.get()),
        Windows::new(a.interval.get(), a.window.get()),
    ]
}

fn canary_version(c: &Config) -> String {
    c.upstreams
        .canary
        .version
        .clone()
        .unwrap_or_else(|| "canary".into())
}

struct Ctl {
    config: Config,
    config_path: Option<PathBuf>,
    /// The snapshot this controller publishes (its only writer).
    live: Live,
    registry: Arc<Registry>,
    view: Arc<ArcSwap<StatusView>>,
    windows: SharedWindows,
    phase: Phase,
    weight_bp: u32,
    abort: bool,
    message: String,
    plan: Option<Plan>,
    /// The global analysis block merged with the current step's override.
    analysis: Analysis,
    guard: Guard,
    verdict: Option<Verdict>,
    events: Events,
    notifier: Notifier,
    /// Last cumulative readings `[stable, canary]`.
    cumulative: [Reading; 2],
    canary_down: bool,
}

impl Ctl {
    fn new(
        config: Config,
        config_path: Option<PathBuf>,
        live: Live,
        registry: Arc<Registry>,
        view: Arc<ArcSwap<StatusView>>,
        windows: SharedWindows,
    ) -> Ctl {
        let snap = live.load();
        let cumulative = [
            snap.backend(Role::Stable).stats.reading(),
            snap.backend(Role::Canary).stats.reading(),
        ];
        {
            let mut w = lock(&windows);
            for r in Role::ALL {
                w[r.index()].rebase(&cumulative[r.index()]);
            }
        }
        Ctl {
            plan: config.rollout.as_ref().map(|r| Plan::new(r.steps.clone())),
            analysis: config.analysis.clone(),
            guard: Guard::new(&config.analysis),
            notifier: Notifier::new(&config.notify.webhooks),
            weight_bp: snap.weight_bp,
            phase: Phase::Healthy,
            abort: false,
            message: String::new(),
            verdict: None,
            events: Events::default(),
            cumulative,
            canary_down: false,
            config,
            config_path,
            live,
            registry,
            view,
            windows,
        }
    }

    fn weight(&self) -> f64 {
        config::bp_to_weight(self.weight_bp)
    }

    /// Restores the state file (same canary version) or starts fresh.
    fn start(&mut self) {
        let restored = self.restore();
        let version = canary_version(&self.config);
        match (&self.plan, restored) {
            (_, true) => {
                let msg = format!(
                    "resumed {version} from the state file: phase {}, weight {}%",
                    self.phase.as_str(),
                    self.weight()
                );
                self.commit("started", msg, self.weight_bp);
            }
            (Some(p), false) => {
                let msg = format!(
                    "rollout of {version} started: plan of {} steps",
                    p.steps.len()
                );
                self.phase = Phase::Progressing;
                self.commit("started", msg, self.weight_bp);
                self.run_plan();
            }
            (None, false) => {
                self.phase = Phase::Healthy;
                let msg = format!("{version} in manual mode at weight {}%", self.weight());
                self.commit("started", msg, self.weight_bp);
            }
        }
    }

    fn restore(&mut self) -> bool {
        let Some(path) = self.config.state_file.clone() else {
            return false;
        };
        let state = match state_file::read(&path) {
            Ok(Some(s)) => s,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(error = %e, "state file ignored; starting from the config");
                return false;
            }
        };
        let version = canary_version(&self.config);
        if state.version != version {
            tracing::info!(
                state = %state.version, config = %version,
                "state file is for another canary version; starting a new rollout"
            );
            return false;
        }
        if !(0.0..=100.0).contains(&state.canary_weight) {
            tracing::error!(path = %path.display(), "state file has an invalid weight; ignored");
            return false;
        }
        self.weight_bp = config::weight_to_bp(state.canary_weight);
        self.abort = state.abort;
        self.message = state.message;
        self.phase = if state.abort {
            Phase::Degraded
        } else {
            state.phase
        };
        if let Some(p) = self.plan.as_mut() {
            p.index = state.step_index.unwrap_or(0).min(p.steps.len());
            p.hold = state.paused;
            p.resume_advances = state.paused;
            p.step_started = Instant::now();
            if !self.abort && p.finished() {
                self.phase = Phase::Healthy;
            }
        }
        self.apply_override();
        // A gate restarts from its beginning: its evidence was in memory.
        if !self.abort {
            self.enter_current(false);
        }
        tracing::info!(path = %path.display(), phase = self.phase.as_str(), weight = self.weight(), "state restored");
        true
    }

    // ---- publishing ------------------------------------------------------

    /// Makes the current state visible everywhere and records `kind` (an event
    /// kind, or "" for none) with `message`.
    fn commit(&mut self, kind: &'static str, message: String, previous_bp: u32) {
        self.publish_snapshot();
        self.write_state();
        if !kind.is_empty() {
            let ev = self.events.push(kind, message.clone(), self.weight());
            tracing::info!(
                event = kind,
                weight = self.weight(),
                phase = self.phase.as_str(),
                "{message}"
            );
            let v = self.parts_objects();
            let payload = json!({
                "event": kind,
                "phase": self.phase,
                "message": message,
                "canary_weight": self.weight(),
                "previous_weight": config::bp_to_weight(previous_bp),
                "version": canary_version(&self.config),
                "timestamp": ev.time,
                "stable": v.0,
                "canary": v.1,
            });
            self.notifier.send(kind, &payload);
        }
        self.publish_view();
    }

    fn publish_snapshot(&self) {
        let cur = self.live.load();
        let statuses = ErrorStatuses::parse(&self.analysis.error_statuses);
        let mut next = None;
        if cur.weight_bp != self.weight_bp || cur.aborted != self.abort {
            next = Some(cur.with_weight(self.weight_bp, self.abort));
        }
        if cur.settings.error_statuses != statuses {
            let base = next.as_ref().unwrap_or(&cur);
            next = Some(base.with_error_statuses(statuses));
        }
        if let Some(n) = next {
            self.live.store(Arc::new(n));
        }
        let g = &self.registry.gauges;
        g.weight_bp.store(self.weight_bp, Relaxed);
        g.phase.store(self.phase.index(), Relaxed);
    }

    fn state(&self) -> State {
        State {
            version: canary_version(&self.config),
            phase: self.phase,
            canary_weight: self.weight(),
            step_index: self.plan.as_ref().map(|p| p.index),
            abort: self.abort,
            message: self.message.clone(),
            paused: self.plan.as_ref().is_some_and(|p| p.hold),
        }
    }

    fn write_state(&self) {
        if let Some(path) = &self.config.state_file {
            if let Err(e) = state_file::write(path, &self.state()) {
                tracing::error!(error = %e, "state not persisted");
            }
        }
    }

    fn parts_objects(&self) -> (status::VersionObject, status::VersionObject) {
        let snap = self.live.load();
        let w = lock(&self.windows);
        (
            status::version_object(&snap.backend(Role::Stable).version, &w[0]),
            status::version_object(&snap.backend(Role::Canary).version, &w[1]),
        )
    }

    fn publish_view(&self) {
        let (stable, canary) = self.parts_objects();
        let (stable_window, canary_window) = {
            let w = lock(&self.windows);
            (w[0].window().clone(), w[1].window().clone())
        };
        let versions = [stable.version.clone(), canary.version.clone()];
        let parts = status::Parts {
            phase: self.phase,
            abort: self.abort,
            message: &self.message,
            canary_weight: self.weight(),
            step_index: self.plan.as_ref().map(|p| p.index),
            steps: self.plan.as_ref().map_or(0, |p| p.steps.len()),
            plan: self.plan.as_ref().map_or(json!([]), |p| p.steps_json()),
            paused: self.plan.as_ref().is_some_and(|p| p.hold),
            gate: self.gate_json(),
            verdict: self.verdict.as_ref(),
            stable,
            canary,
            stable_window,
            canary_window,
        };
        let prev = self.view.load();
        let events = if prev.events.len() == self.events.len()
            && prev.events.last().map(|e| &**e) == self.events.last()
        {
            prev.events.clone()
        } else {
            Arc::new(self.events.list())
        };
        self.view.store(Arc::new(StatusView {
            status: status::status_json(&parts),
            analysis: status::analysis_json(&parts),
            events,
            versions,
        }));
    }

    fn gate_json(&self) -> Value {
        let Some(p) = self.plan.as_ref() else {
            return Value::Null;
        };
        let Some(g) = p.gate.as_ref() else {
            return Value::Null;
        };
        let since = self.cumulative[1].delta(&g.canary_base);
        json!({
            "elapsed_ms": p.step_started.elapsed().as_millis() as u64,
            "duration_ms": g.duration.as_millis() as u64,
            "timeout_ms": g.timeout.as_millis() as u64,
            "requests": since.requests,
            "min_requests": g.analysis.min_requests,
            "result": g.last,
        })
    }

    fn reply(&self) -> Result<Value, ApiError> {
        Ok(self.view.load().status.clone())
    }

    // ---- the guard -------------------------------------------------------

    fn guard_active(&self) -> bool {
        self.weight_bp > 0 && !self.abort && self.plan.as_ref().is_none_or(|p| !p.finished())
    }

    fn tick(&mut self) {
        let snap = self.live.load_full();
        let (canary_tick, canary_window, stable_window) = {
            let mut w = lock(&self.windows);
            for r in Role::ALL {
                let cum = snap.backend(r).stats.reading();
                w[r.index()].tick(&cum);
                self.cumulative[r.index()] = cum;
            }
            (
                w[1].last_tick().clone(),
                w[1].window().clone(),
                w[0].window().clone(),
            )
        };

        let down = !snap.backend(Role::Canary).endpoints.any_healthy();
        if down != self.canary_down {
            self.canary_down = down;
            if down {
                self.commit(
                    "unhealthy",
                    "every canary endpoint failed its health check".into(),
                    self.weight_bp,
                );
            }
        }
        if down && self.weight_bp > 0 && !self.abort {
            self.abort_now(
                "canary-unhealthy",
                "RolloutAborted: metric \"canary-unhealthy\" assessed Failed: every canary endpoint failed its health check; canary unhealthy".into(),
            );
            return;
        }

        if self.guard_active() {
            let v = self
                .guard
                .check(&canary_tick, &canary_window, &stable_window);
            let abort = self.guard.should_abort();
            let msg = abort.then(|| {
                v.abort_message(
                    self.analysis.failure_limit,
                    self.guard.consecutive_failures(),
                )
            });
            let metric = failed_metric(&v);
            self.verdict = Some(v);
            if let Some(msg) = msg {
                self.abort_now(metric, msg);
                return;
            }
        }
        self.plan_tick(&canary_tick, &stable_window);
        self.publish_view();
    }

    fn abort_now(&mut self, metric: &str, message: String) {
        let prev = self.weight_bp;
        self.weight_bp = 0;
        self.abort = true;
        self.phase = Phase::Degraded;
        self.message = message.clone();
        if let Some(p) = self.plan.as_mut() {
            p.gate = None;
            p.hold = false;
            p.resume_advances = false;
        }
        self.registry.gauges.aborts.fetch_add(1, Relaxed);
        tracing::warn!(
            metric,
            previous_weight = config::bp_to_weight(prev),
            "canary aborted: {message}"
        );
        self.commit("aborted", message, prev);
    }

    // ---- the plan --------------------------------------------------------

    fn plan_tick(&mut self, canary_tick: &Reading, stable_window: &Reading) {
        if self.abort {
            return;
        }
        let cumulative = self.cumulative[1].clone();
        let Some(p) = self.plan.as_mut() else { return };
        if p.finished() {
            return;
        }
        let elapsed = p.step_started.elapsed();
        match p.current() {
            Some(StepKind::Pause(Some(d))) if !p.hold && elapsed >= d => {
                p.index += 1;
                self.run_plan();
            }
            Some(StepKind::Gate(_)) => {
                let hold = p.hold;
                let Some(g) = p.gate.as_mut() else { return };
                let since = cumulative.delta(&g.canary_base);
                let v = g.guard.check(canary_tick, &since, stable_window);
                g.last = v.result;
                if g.guard.should_abort() {
                    let msg =
                        v.abort_message(g.analysis.failure_limit, g.guard.consecutive_failures());
                    let metric = failed_metric(&v);
                    self.abort_now(metric, msg);
                    return;
                }
                if hold {
                    return;
                }
                if elapsed >= g.duration
                    && since.requests >= g.analysis.min_requests
                    && v.result == CheckResult::Passed
                {
                    let msg = format!("analysis gate passed on {} canary requests", since.requests);
                    p.index += 1;
                    p.gate = None;
                    self.commit("step", msg, self.weight_bp);
                    self.run_plan();
                } else if elapsed >= g.timeout && !g.inconclusive {
                    g.inconclusive = true;
                    let msg = format!(
                        "analysis gate inconclusive after {} ({} canary requests, last check {:?}); paused: promote or resume to go on, abort to roll back",
                        config::format_duration(g.timeout),
                        since.requests,
                        v.result
                    );
                    p.hold = true;
                    p.resume_advances = true;
                    self.phase = Phase::Paused;
                    self.commit("inconclusive", msg, self.weight_bp);
                }
            }
            _ => {}
        }
    }

    /// Walks instantaneous steps from `plan.index` until one that waits.
    fn run_plan(&mut self) {
        loop {
            let Some(p) = self.plan.as_mut() else { return };
            if p.finished() {
                p.gate = None;
                p.hold = false;
                self.phase = Phase::Healthy;
                let msg = format!("rollout complete at weight {}%", self.weight());
                self.commit("completed", msg, self.weight_bp);
                return;
            }
            match p.current() {
                Some(StepKind::SetWeight { weight, .. }) => {
                    let desc = p.describe(p.index);
                    p.index += 1;
                    let prev = self.weight_bp;
                    self.weight_bp = config::weight_to_bp(weight);
                    self.phase = Phase::Progressing;
                    self.apply_override();
                    self.commit("step", desc, prev);
                }
                _ => {
                    self.enter_current(true);
                    return;
                }
            }
        }
    }

    /// Starts the waiting step at `plan.index` (a pause or a gate).
    fn enter_current(&mut self, announce: bool) {
        let base = self.cumulative[1].clone();
        let analysis = self.analysis.clone();
        let Some(p) = self.plan.as_mut() else { return };
        p.step_started = Instant::now();
        p.gate = None;
        let desc = p.describe(p.index);
        let phase = match p.current() {
            Some(StepKind::Gate(patch)) => {
                p.gate = Some(Gate::new(&analysis, patch, &base));
                Phase::Progressing
            }
            Some(StepKind::Pause(None)) => Phase::Paused,
            Some(_) => Phase::Progressing,
            None => Phase::Healthy,
        };
        self.phase = if p.hold { Phase::Paused } else { phase };
        if announce {
            let kind = if self.phase == Phase::Paused {
                "paused"
            } else {
                "step"
            };
            self.commit(kind, desc, self.weight_bp);
        }
    }

    /// The effective analysis: the global block merged with the step override
    /// in force; the guard keeps its evidence but judges by the new limits.
    fn apply_override(&mut self) {
        let a = match self.plan.as_ref().and_then(|p| p.override_patch()) {
            Some(patch) => self.config.analysis.merged(patch),
            None => self.config.analysis.clone(),
        };
        if a != self.analysis {
            if a.interval != self.analysis.interval || a.window != self.analysis.window {
                let mut w = lock(&self.windows);
                *w = new_windows(&a);
                for r in Role::ALL {
                    w[r.index()].rebase(&self.cumulative[r.index()]);
                }
            }
            self.guard.set_limits(&a);
            self.analysis = a;
        }
    }

    // ---- commands --------------------------------------------------------

    fn command(&mut self, cmd: Command) -> Result<Value, ApiError> {
        match cmd {
            Command::SetWeight(w) => self.set_weight(w),
            Command::Promote { full } => self.promote(full),
            Command::Abort => {
                if !self.abort {
                    self.verdict = None;
                    self.abort_now("manual", "manual abort".into());
                }
                self.reply()
            }
            Command::Retry => self.retry(),
            Command::Pause => self.pause(),
            Command::Resume => self.resume(),
            Command::Reload => self.reload(),
        }
    }

    fn set_weight(&mut self, w: f64) -> Result<Value, ApiError> {
        if self.abort {
            return Err(ApiError::conflict(
                "the canary is aborted: POST /api/v1/retry first",
            ));
        }
        let prev = self.weight_bp;
        self.weight_bp = config::weight_to_bp(w);
        let mut msg = format!("weight set to {w}% by the operator");
        if let Some(p) = self.plan.as_mut().filter(|p| !p.finished()) {
            p.hold = true;
            p.resume_advances = true;
            p.gate = None;
            self.phase = Phase::Paused;
            msg.push_str("; plan paused until resume");
        }
        self.commit("weight", msg, prev);
        self.reply()
    }

    fn plan_or_409(&self) -> Result<(), ApiError> {
        if self.plan.is_none() {
            return Err(ApiError::conflict("no rollout plan (manual mode)"));
        }
        if self.abort {
            return Err(ApiError::conflict(
                "the canary is aborted: POST /api/v1/retry first",
            ));
        }
        Ok(())
    }

    fn promote(&mut self, full: bool) -> Result<Value, ApiError> {
        self.plan_or_409()?;
        let Some(p) = self.plan.as_mut() else {
            return Err(ApiError::conflict("no rollout plan (manual mode)"));
        };
        if p.finished() && (!full || self.weight_bp == 10_000) {
            return Err(ApiError::conflict("the rollout is already complete"));
        }
        p.hold = false;
        p.resume_advances = false;
        p.gate = None;
        let prev = self.weight_bp;
        if full {
            p.index = p.steps.len();
            self.weight_bp = 10_000;
            self.commit("promoted", "promoted to 100% (full)".into(), prev);
        } else {
            let desc = p.describe(p.index);
            p.index += 1;
            self.commit("promoted", format!("promoted past {desc}"), prev);
        }
        self.run_plan();
        self.reply()
    }

    fn pause(&mut self) -> Result<Value, ApiError> {
        self.plan_or_409()?;
        let Some(p) = self.plan.as_mut() else {
            return Err(ApiError::conflict("no rollout plan (manual mode)"));
        };
        if p.finished() {
            return Err(ApiError::conflict("the rollout is already complete"));
        }
        if !p.hold {
            p.hold = true;
            self.phase = Phase::Paused;
            let msg = format!("paused by the operator at {}", p.describe(p.index));
            self.commit("paused", msg, self.weight_bp);
        }
        self.reply()
    }

    fn resume(&mut self) -> Result<Value, ApiError> {
        self.plan_or_409()?;
        let Some(p) = self.plan.as_mut() else {
            return Err(ApiError::conflict("no rollout plan (manual mode)"));
        };
        if p.finished() {
            return Err(ApiError::conflict("the rollout is already complete"));
        }
        if !p.hold && !p.at_indefinite_pause() {
            return self.reply(); // already progressing
        }
        let advance = p.resume_advances || p.at_indefinite_pause();
        p.hold = false;
        p.resume_advances = false;
        let desc = p.describe(p.index);
        if advance {
            p.index += 1;
            p.gate = None;
            self.phase = Phase::Progressing;
            self.commit("resumed", format!("resumed after {desc}"), self.weight_bp);
            self.run_plan();
        } else {
            self.phase = Phase::Progressing;
            self.commit("resumed", format!("resumed at {desc}"), self.weight_bp);
        }
        self.reply()
    }

    fn retry(&mut self) -> Result<Value, ApiError> {
        if !self.abort {
            return Err(ApiError::conflict("retry is only allowed after an abort"));
        }
        self.abort = false;
        self.message.clear();
        self.verdict = None;
        self.guard.reset();
        lock(&self.windows)[1].reset();
        if let Some(p) = self.plan.as_mut() {
            p.index = 0;
            p.hold = false;
            p.resume_advances = false;
            p.gate = None;
            self.apply_override();
            self.phase = Phase::Progressing;
            self.commit(
                "retried",
                "retry: the plan starts again from step 1".into(),
                0,
            );
            self.run_plan();
        } else {
            self.apply_override();
            self.weight_bp = 0;
            self.phase = Phase::Healthy;
            self.commit("retried", "retry: abort cleared at weight 0".into(), 0);
        }
        self.reply()
    }

    fn reload(&mut self) -> Result<Value, ApiError> {
        let Some(path) = self.config_path.clone() else {
            return Err(ApiError::new(
                400,
                "started without a config file: nothing to reload",
            ));
        };
        let new = config::load(&path).map_err(|e| {
            let msg = format!("config rejected: {}", e.messages().join("; "));
            tracing::error!("reload: {msg}");
            ApiError::new(400, msg)
        })?;
        let old = &self.config;
        let mut errs = Vec::new();
        if new.listen != old.listen {
            errs.push("listen: changing a listener needs a restart".to_string());
        }
        if new.tls.as_ref().map(|t| &t.listen) != old.tls.as_ref().map(|t| &t.listen) {
            errs.push("tls.listen: changing a listener needs a restart".into());
        }
        if new.admin.listen != old.admin.listen {
            errs.push("admin.listen: changing a listener needs a restart".into());
        }
        if new.workers != old.workers {
            errs.push("workers: changing the worker count needs a restart".into());
        }
        let version_changed = canary_version(&new) != canary_version(old);
        let running = self.plan.as_ref().is_some_and(|p| !p.finished()) && !self.abort;
        let steps = |c: &Config| c.rollout.as_ref().map(|r| r.steps.clone());
        if running && !version_changed && steps(&new) != steps(old) {
            errs.push("rollout.steps: cannot change the steps of a running plan (restart, or abort first)".into());
        }
        if !errs.is_empty() {
            let msg = format!("config rejected: {}", errs.join("; "));
            tracing::error!("reload: {msg}");
            return Err(ApiError::new(400, msg));
        }
        // Certificates and CA files are read here: a bad one rejects the
        // reload before anything changed.
        let cur = self.live.load_full();
        let snap = Snapshot::build(&new, &self.registry, Some(&cur), self.weight_bp, self.abort)
            .map_err(|e| {
                let msg = format!("config rejected: {e}");
                tracing::error!("reload: {msg}");
                ApiError::new(400, msg)
            })?;

        let prev = self.weight_bp;
        let old = std::mem::replace(&mut self.config, new);
        self.notifier.set_hooks(&self.config.notify.webhooks);
        let manual_weight_changed = self.config.routing.canary_weight != old.routing.canary_weight;
        let plan_changed = steps(&self.config) != steps(&old);

        // The routing snapshot for the new config, keeping weight and abort.
        self.live.store(Arc::new(snap));

        let mut note = String::new();
        if version_changed {
            // A new canary: new evidence, and the rollout starts over.
            let snap = self.live.load();
            self.cumulative[1] = snap.backend(Role::Canary).stats.reading();
            {
                let mut w = lock(&self.windows);
                w[1].reset();
                w[1].rebase(&self.cumulative[1]);
            }
            self.verdict = None;
            self.abort = false;
            self.message.clear();
            self.plan = self
                .config
                .rollout
                .as_ref()
                .map(|r| Plan::new(r.steps.clone()));
            self.apply_override();
            self.guard = Guard::new(&self.analysis);
            note = format!("; new canary version {}", canary_version(&self.config));
            if self.plan.is_none() {
                self.weight_bp = config::weight_to_bp(self.config.routing.canary_weight);
                self.phase = Phase::Healthy;
            } else {
                self.weight_bp = 0;
                self.phase = Phase::Progressing;
            }
        } else {
            if plan_changed {
                let finished = self.plan.as_ref().is_some_and(|p| p.finished()) && !self.abort;
                self.plan = self.config.rollout.as_ref().map(|r| {
                    let mut p = Plan::new(r.steps.clone());
                    if finished {
                        p.index = p.steps.len();
                    }
                    p
                });
                if self.plan.is_none() && !self.abort {
                    self.phase = Phase::Healthy;
                }
            }
            if self.plan.is_none() && !self.abort && manual_weight_changed {
                self.weight_bp = config::weight_to_bp(self.config.routing.canary_weight);
            }
            self.apply_override();
            // Reloaded thresholds, same evidence.
            self.guard.set_limits(&self.analysis);
        }
        let msg = format!("config reloaded from {}{note}", path.display());
        self.commit("reloaded", msg, prev);
        if version_changed && self.plan.is_some() {
            self.run_plan();
        }
        self.reply()
    }
}

/// The metric of the first failed assessment, for the abort log line.
fn failed_metric(v: &Verdict) -> &'static str {
    v.failed_metric().map_or("guard", |m| m.metric)
}
