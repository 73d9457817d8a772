//! The controller: the single writer of the snapshot, the phase and the state
//! file. Its one task orders ticks, admin commands and reloads, feeds them to
//! the rollout state machine ([`machine`]), and carries out what the machine
//! decides ([`Ctl::carry_out`]): new snapshot and gauges, state file, events,
//! webhooks, the published view.
pub(crate) mod events;
pub(crate) mod history;
pub(crate) mod machine;
pub(crate) mod plan;
mod reload;
pub(crate) mod state_file;
pub(crate) mod status;
pub(crate) mod webhook;

pub(crate) use machine::Rejection;

use crate::config::{self, Analysis, Config};
use crate::snapshot::{ErrorStatuses, Live, Snapshot};
use crate::telemetry::window::Windows;
use crate::telemetry::{Reading, Registry};
use crate::Role;
use arc_swap::ArcSwap;
use events::Events;
use history::{History, Sample};
use machine::{Effects, Input, Machine, Notice, Observation, Settings, Unfit};
use serde_json::{json, Value};
use status::StatusView;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
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

/// Why a controller call failed; the admin API picks the status code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Not allowed in the rollout's current state.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A reload refused: the file is invalid, or changes what needs a restart.
    #[error("{0}")]
    Config(String),
    #[error("started without a config file: nothing to reload")]
    NoConfigFile,
    #[error("controller stopped")]
    Stopped,
}

/// What reaches the actor: a command, or a reload whose file was already read
/// and validated off the runtime (a large config takes seconds to check).
enum Msg {
    Command(machine::Command),
    Reload(Box<Result<Config, String>>),
}

type Request = (Msg, oneshot::Sender<Result<Value, CallError>>);

/// Per-version sliding windows `[stable, canary]`. Owned by the controller;
/// the mutex is shared only with `/v1/metrics` reads (never the request path).
pub(crate) type SharedWindows = Arc<Mutex<[Windows; 2]>>;

/// The per-second history; written once a second by the controller, read by
/// `GET /api/v1/history` (never the request path).
type SharedHistory = Arc<Mutex<History>>;

#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Request>,
    config_path: Option<Arc<PathBuf>>,
    view: Arc<ArcSwap<StatusView>>,
    windows: SharedWindows,
    history: SharedHistory,
}

impl ControllerHandle {
    pub async fn call(&self, cmd: Command) -> Result<Value, CallError> {
        use machine::Command as M;
        let msg = match cmd {
            Command::Reload => {
                let path = self.config_path.clone().ok_or(CallError::NoConfigFile)?;
                // Parsing and validation run on the blocking pool, never on a
                // worker that serves requests.
                let parsed = tokio::task::spawn_blocking(move || {
                    config::load(&path).map_err(|e| e.messages().join("; "))
                })
                .await
                .map_err(|_| CallError::Stopped)?;
                Msg::Reload(Box::new(parsed))
            }
            Command::SetWeight(w) => Msg::Command(M::SetWeight(w)),
            Command::Promote { full } => Msg::Command(M::Promote { full }),
            Command::Abort => Msg::Command(M::Abort),
            Command::Retry => Msg::Command(M::Retry),
            Command::Pause => Msg::Command(M::Pause),
            Command::Resume => Msg::Command(M::Resume),
        };
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((msg, tx))
            .await
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// The latest published status, events and analysis (never waits on the task).
    pub fn view(&self) -> Arc<StatusView> {
        self.view.load_full()
    }

    /// Evidence of `role` over the last `d` (≤ 1 h) and the time it really covers.
    pub fn span(&self, role: Role, d: Duration) -> Option<(Reading, Duration)> {
        lock(&self.windows)[role.index()].span_covered(d)
    }

    /// The per-second samples stamped after `after` (unix ms), oldest first;
    /// all of them (up to `history::CAPACITY`) without `after`.
    pub fn history(&self, after: Option<u64>) -> Vec<Sample> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .since(after)
    }
}

fn lock(w: &SharedWindows) -> MutexGuard<'_, [Windows; 2]> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the controller task. It stops when `shutdown` turns true.
pub(crate) fn spawn(
    config: Config,
    config_path: Option<PathBuf>,
    live: Live,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) -> ControllerHandle {
    let (tx, mut rx) = mpsc::channel::<Request>(64);
    let view = Arc::new(ArcSwap::from_pointee(StatusView::default()));
    let windows = Arc::new(Mutex::new(new_windows(&config.analysis)));
    let origin = (Instant::now(), SystemTime::now());
    let history = Arc::new(Mutex::new(History::new(unix_ms(origin.1))));
    let handle = ControllerHandle {
        tx,
        config_path: config_path.clone().map(Arc::new),
        view: view.clone(),
        windows: windows.clone(),
        history: history.clone(),
    };
    let shared = Shared {
        view,
        windows,
        history,
    };
    let mut ctl = Ctl::new(config, config_path, live, registry, shared, origin);
    tokio::spawn(async move {
        let mut period = ctl.machine.analysis().interval.get();
        let mut ticker = new_ticker(period);
        loop {
            tokio::select! {
                _ = ticker.tick() => ctl.tick(),
                req = rx.recv() => match req {
                    Some((msg, reply)) => {
                        let r = match msg {
                            Msg::Command(cmd) => ctl.command(cmd),
                            Msg::Reload(parsed) => ctl.reload(*parsed),
                        };
                        let _ = reply.send(r);
                    }
                    None => break,
                },
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
            }
            let want = ctl.machine.analysis().interval.get();
            if want != period {
                period = want;
                ticker = new_ticker(period);
            }
        }
    });
    handle
}

fn unix_ms(t: SystemTime) -> u64 {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the controller task shares with its handle.
struct Shared {
    view: Arc<ArcSwap<StatusView>>,
    windows: SharedWindows,
    history: SharedHistory,
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

/// Restores the state file (same canary version) or starts fresh.
fn start_machine(config: &Config) -> (Machine, Effects) {
    let settings = Settings::from_config(config);
    let saved = config
        .state_file
        .as_ref()
        .and_then(|path| match state_file::read(path) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "state file ignored; starting from the config");
                None
            }
        });
    if let Some(saved) = saved {
        match Machine::restore(settings.clone(), &saved, Duration::ZERO) {
            Ok(started) => {
                tracing::info!(
                    phase = started.0.phase().as_str(),
                    weight = started.0.weight(),
                    "state restored"
                );
                return started;
            }
            Err(Unfit::OtherVersion { saved, configured }) => tracing::info!(
                state = %saved, config = %configured,
                "state file is for another canary version; starting a new rollout"
            ),
            Err(e) => tracing::error!(error = %e, "state file ignored; starting from the config"),
        }
    }
    Machine::start(settings, Duration::ZERO)
}

struct Ctl {
    config: Config,
    config_path: Option<PathBuf>,
    /// The snapshot this controller publishes (its only writer).
    live: Live,
    registry: Arc<Registry>,
    view: Arc<ArcSwap<StatusView>>,
    windows: SharedWindows,
    history: SharedHistory,
    machine: Machine,
    events: Events,
    notifier: Notifier,
    /// Last cumulative readings `[stable, canary]`.
    cumulative: [Reading; 2],
    /// The machine's clock is the time since `origin.0`, which was `origin.1`
    /// on the wall clock.
    origin: (Instant, SystemTime),
}

impl Ctl {
    fn new(
        config: Config,
        config_path: Option<PathBuf>,
        live: Live,
        registry: Arc<Registry>,
        shared: Shared,
        origin: (Instant, SystemTime),
    ) -> Ctl {
        let Shared {
            view,
            windows,
            history,
        } = shared;
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
        let (machine, started) = start_machine(&config);
        let mut ctl = Ctl {
            notifier: Notifier::new(&config.notify.webhooks),
            events: Events::default(),
            origin,
            machine,
            cumulative,
            config,
            config_path,
            live,
            registry,
            view,
            windows,
            history,
        };
        ctl.carry_out(started);
        ctl
    }

    fn now(&self) -> Duration {
        self.origin.0.elapsed()
    }

    /// A time on the machine's clock, as RFC 3339.
    fn wall(&self, at: Duration) -> String {
        events::rfc3339(self.origin.1 + at)
    }

    fn feed(&mut self, input: Input) -> Result<(), Rejection> {
        let fx = self.machine.handle(input, self.now())?;
        self.carry_out(fx);
        Ok(())
    }

    /// Does what the machine decided, the snapshot first (an abort reaches
    /// the request path before anything slower), then the view.
    fn carry_out(&mut self, fx: Effects) {
        if fx.rebuild_windows {
            let mut w = lock(&self.windows);
            *w = new_windows(self.machine.analysis());
            for r in Role::ALL {
                w[r.index()].rebase(&self.cumulative[r.index()]);
            }
        }
        if fx.reset_canary_window {
            let canary = self.canary_reading();
            let mut w = lock(&self.windows);
            w[1].reset();
            w[1].rebase(&canary);
            self.cumulative[1] = canary;
        }
        if fx.publish {
            self.publish_snapshot();
        }
        if fx.aborts > 0 {
            self.registry
                .gauges
                .aborts
                .fetch_add(u64::from(fx.aborts), Relaxed);
        }
        if fx.persist {
            self.write_state();
        }
        for n in fx.events {
            self.record(n);
        }
        self.publish_view();
    }

    // ---- carrying out ----------------------------------------------------

    fn canary_reading(&self) -> Reading {
        let snap = self.live.load();
        snap.backend(Role::Canary).stats.reading()
    }

    fn publish_snapshot(&self) {
        let (weight_bp, abort) = (self.machine.weight_bp(), self.machine.aborted());
        let cur = self.live.load();
        let statuses = ErrorStatuses::parse(&self.machine.analysis().error_statuses);
        let mut next = None;
        if cur.weight_bp != weight_bp || cur.aborted != abort {
            next = Some(cur.with_weight(weight_bp, abort));
        }
        if cur.settings.error_statuses != statuses {
            let base = next.as_ref().unwrap_or(&cur);
            next = Some(base.with_error_statuses(statuses));
        }
        if let Some(n) = next {
            self.live.store(Arc::new(n));
        }
        let g = &self.registry.gauges;
        g.weight_bp.store(weight_bp, Relaxed);
        g.phase.store(self.machine.phase().index(), Relaxed);
    }

    fn write_state(&self) {
        if let Some(path) = &self.config.state_file {
            if let Err(e) = state_file::write(path, &self.machine.state()) {
                tracing::error!(error = %e, "state not persisted");
            }
        }
    }

    /// An event: the event list, a log line and the webhooks.
    fn record(&mut self, n: Notice) {
        let weight = config::bp_to_weight(n.weight_bp);
        let previous = config::bp_to_weight(n.previous_bp);
        let ev = self.events.push(n.kind, n.message.clone(), weight);
        if let Some(metric) = n.metric {
            tracing::warn!(
                event = n.kind,
                metric,
                previous_weight = previous,
                "canary aborted: {}",
                n.message
            );
        } else {
            tracing::info!(
                event = n.kind,
                weight,
                phase = n.phase.as_str(),
                "{}",
                n.message
            );
        }
        let v = self.parts_objects();
        let payload = json!({
            "event": n.kind,
            "phase": n.phase,
            "message": n.message,
            "canary_weight": weight,
            "previous_weight": previous,
            "version": self.machine.settings().version,
            "timestamp": ev.time,
            "stable": v.0,
            "canary": v.1,
        });
        self.notifier.send(n.kind, &payload);
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
        let m = &self.machine;
        let verdict = m.verdict();
        let parts = status::Parts {
            phase: m.phase(),
            abort: m.aborted(),
            message: m.message(),
            canary_weight: m.weight(),
            mode: if m.manual() { "manual" } else { "plan" },
            step_index: m.step_index(),
            steps: m.plan().map_or(0, |p| p.len()),
            plan: m.plan().map_or(json!([]), |p| p.steps_json()),
            paused: m.paused(),
            pause: status::pause_status(m, self.now()),
            analysis: m.analysis(),
            gate: m
                .gate(self.now())
                .and_then(|g| serde_json::to_value(g).ok())
                .unwrap_or(Value::Null),
            verdict: verdict.map(|v| v.0),
            verdict_at: verdict.map(|v| self.wall(v.1)),
            guard_off: m.guard_off(),
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

    fn reply(&self) -> Result<Value, CallError> {
        Ok(self.view.load().status.clone())
    }

    // ---- feeding ---------------------------------------------------------

    fn tick(&mut self) {
        let snap = self.live.load_full();
        let (stable_tick, canary_tick, canary_window, stable_window) = {
            let mut w = lock(&self.windows);
            for r in Role::ALL {
                let cum = snap.backend(r).stats.reading();
                w[r.index()].tick(&cum);
                self.cumulative[r.index()] = cum;
            }
            (
                w[0].last_tick().clone(),
                w[1].last_tick().clone(),
                w[1].window().clone(),
                w[0].window().clone(),
            )
        };
        let canary_down = !snap.backend(Role::Canary).endpoints.any_healthy();
        let observed = Observation {
            canary_tick: canary_tick.clone(),
            canary_window,
            stable_window,
            canary_down,
        };
        // A tick is never rejected.
        let _ = self.feed(Input::Tick(observed));
        // The history records the state after the tick (an abort shows at once).
        let (weight, phase) = (self.machine.weight_bp(), self.machine.phase());
        self.history.lock().unwrap_or_else(|e| e.into_inner()).tick(
            self.now(),
            [&stable_tick, &canary_tick],
            weight,
            phase,
        );
    }

    fn command(&mut self, cmd: machine::Command) -> Result<Value, CallError> {
        self.feed(Input::Command(cmd))?;
        self.reply()
    }

    /// Applies a config file read and validated by the caller (`parsed`).
    fn reload(&mut self, parsed: Result<Config, String>) -> Result<Value, CallError> {
        let Some(path) = self.config_path.clone() else {
            return Err(CallError::NoConfigFile);
        };
        let refuse = |msg: String| {
            tracing::error!("reload: {msg}");
            CallError::Config(msg)
        };
        let new = parsed.map_err(|e| refuse(format!("config rejected: {e}")))?;
        let settings = Settings::from_config(&new);
        let mut errs = reload::restart_only(&self.config, &new);
        if let Err(r) = self.machine.admits(&settings) {
            errs.push(r.to_string());
        }
        if !errs.is_empty() {
            return Err(refuse(format!("config rejected: {}", errs.join("; "))));
        }
        // Certificates and CA files are read here: a bad one rejects the
        // reload before anything changed.
        let cur = self.live.load_full();
        let snap = Snapshot::build(
            &new,
            &self.registry,
            Some(&cur),
            self.machine.weight_bp(),
            self.machine.aborted(),
        )
        .map_err(|e| refuse(format!("config rejected: {e}")))?;
        let changes = reload::changes(&self.config, &new);
        self.config = new;
        self.notifier.set_hooks(&self.config.notify.webhooks);

        // The routing snapshot for the new config, keeping weight and abort.
        self.live.store(Arc::new(snap));

        let source = path.display().to_string();
        let mut fx = self
            .machine
            .handle(Input::Reconfigure { settings, source }, self.now())?;
        // The rebuilt snapshot has the global error statuses; a step override must win.
        fx.publish = true;
        // The event (and its log line) says what changed.
        let said = if changes.is_empty() {
            "nothing changed".to_string()
        } else {
            changes.join("; ")
        };
        for n in fx.events.iter_mut().filter(|n| n.kind == "reloaded") {
            n.message = format!("{}: {said}", n.message);
        }
        self.carry_out(fx);
        // The reply is the status plus `changes`.
        let mut reply = self.view.load().status.clone();
        if let Value::Object(m) = &mut reply {
            m.insert("changes".into(), json!(changes));
        }
        Ok(reply)
    }
}
