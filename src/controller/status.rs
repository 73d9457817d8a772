//! The read-only view the controller publishes after every tick and change, so
//! the admin API's GETs never wait on the controller task.
use super::events::Event;
use super::machine::GuardOff;
use crate::judge::{argo_weight, Verdict};
use crate::telemetry::figures::{version_figures, VersionFigures};
use crate::telemetry::window::Windows;
use crate::telemetry::Reading;
use crate::Phase;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct StatusView {
    /// The `/api/v1/status` body.
    pub status: Value,
    /// The `/api/v1/analysis` body.
    pub analysis: Value,
    /// Newest last.
    pub events: Arc<Vec<Arc<Event>>>,
    /// Configured version labels `[stable, canary]` (for `/v1/metrics?version=`).
    pub versions: [String; 2],
}

/// A version object of `/api/v1/status` and of webhook payloads.
#[derive(Debug, Clone, Serialize)]
pub struct VersionObject {
    pub version: String,
    #[serde(flatten)]
    pub figures: VersionFigures,
}

pub fn version_object(version: &str, w: &Windows) -> VersionObject {
    VersionObject {
        version: version.to_string(),
        figures: version_figures(w.window(), w.window_covered()),
    }
}

pub struct Parts<'a> {
    pub phase: Phase,
    pub abort: bool,
    pub message: &'a str,
    pub canary_weight: f64,
    /// `"plan"` or `"manual"`.
    pub mode: &'static str,
    /// The plan position, 0-based (events say "step i+1/n"); `None` in manual mode.
    pub step_index: Option<usize>,
    pub steps: usize,
    pub plan: Value,
    /// `true` exactly when `phase` is `Paused`.
    pub paused: bool,
    /// The analysis gate in progress (`null` when none).
    pub gate: Value,
    pub verdict: Option<&'a Verdict>,
    /// When `verdict` was computed, RFC 3339.
    pub verdict_at: Option<String>,
    /// Why the guard is not judging; `None` while it runs.
    pub guard_off: Option<GuardOff>,
    pub stable: VersionObject,
    pub canary: VersionObject,
    pub stable_window: Reading,
    pub canary_window: Reading,
}

pub fn status_json(p: &Parts) -> Value {
    json!({
        "phase": p.phase,
        "abort": p.abort,
        "message": p.message,
        "canary_weight": p.canary_weight,
        "mode": p.mode,
        "step_index": p.step_index,
        "steps": p.steps,
        "plan": p.plan,
        "paused": p.paused,
        "gate": p.gate,
        "verdict": verdict_json(p.verdict, p.verdict_at.as_deref()),
        "guard": {
            "running": p.guard_off.is_none(),
            "reason": p.guard_off.map(GuardOff::reason),
        },
        "stable": p.stable,
        "canary": p.canary,
    })
}

/// The last verdict with `at`, the time it was computed: a verdict that is no
/// longer refreshed (the guard stopped) must not read as current.
fn verdict_json(v: Option<&Verdict>, at: Option<&str>) -> Value {
    let mut j = serde_json::to_value(v).unwrap_or(Value::Null);
    if let (Value::Object(m), Some(at)) = (&mut j, at) {
        m.insert("at".into(), Value::String(at.into()));
    }
    j
}

/// `/api/v1/analysis` for an Argo Rollouts `web` provider.
pub fn analysis_json(p: &Parts) -> Value {
    let a = argo_weight(
        &p.canary_window,
        &p.stable_window,
        p.verdict.map(|v| v.result),
        p.abort,
    );
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    // `weight` above is the Argo web provider's safety score; this is the live weight.
    if let Value::Object(m) = &mut v {
        m.insert("canary_weight".into(), json!(p.canary_weight));
    }
    v
}
