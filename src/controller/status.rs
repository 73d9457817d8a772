//! The read-only view the controller publishes after every tick and change, so
//! the admin API's GETs never wait on the controller task.
use super::events::Event;
use super::machine::{GuardOff, Machine, Mode};
use crate::config::{Analysis, StepKind};
use crate::judge::{argo_weight, CheckResult, MetricVerdict, Verdict};
use crate::telemetry::figures::{version_figures, VersionFigures};
use crate::telemetry::window::Windows;
use crate::telemetry::Reading;
use crate::Phase;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

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
pub(crate) struct VersionObject {
    pub version: String,
    #[serde(flatten)]
    pub figures: VersionFigures,
    /// The time the figures cover: `analysis.window`, less while the window
    /// is still filling (after a start, a retry or a new canary).
    pub span_ms: u64,
}

pub(crate) fn version_object(version: &str, w: &Windows) -> VersionObject {
    VersionObject {
        version: version.to_string(),
        figures: version_figures(w.window(), w.window_covered()),
        span_ms: ms(w.window_covered()),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A pause step in progress, for the status (`pause`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PauseStatus {
    /// Time since the pause began, on the controller's clock.
    pub elapsed_ms: u64,
    /// The configured pause; `None` for `pause: {}` (until promote).
    pub duration_ms: Option<u64>,
    /// The plan is held (`pause`, `PUT weight`, `pause: {}`): only resume or
    /// promote goes on, whatever the countdown says.
    pub held: bool,
}

/// The pause step the plan is waiting on at `now`, if any.
pub(crate) fn pause_status(m: &Machine, now: Duration) -> Option<PauseStatus> {
    let Mode::Plan(p) = &m.rollout().mode else {
        return None;
    };
    if m.aborted() {
        return None;
    }
    let StepKind::Pause(d) = m.plan()?.kind(p.index)? else {
        return None;
    };
    Some(PauseStatus {
        elapsed_ms: ms(now.saturating_sub(p.step_started)),
        duration_ms: d.map(ms),
        held: p.hold.is_some(),
    })
}

pub(crate) struct Parts<'a> {
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
    /// The pause step in progress.
    pub pause: Option<PauseStatus>,
    /// The analysis in force (global block and step override).
    pub analysis: &'a Analysis,
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

pub(crate) fn status_json(p: &Parts) -> Value {
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
        "pause": p.pause,
        "verdict": verdict_json(p),
        "guard": {
            "running": p.guard_off.is_none(),
            "reason": p.guard_off.map(GuardOff::reason),
        },
        "analysis": {
            "window_ms": ms(p.analysis.window.get()),
            "interval_ms": ms(p.analysis.interval.get()),
            "min_requests": p.analysis.min_requests,
            "confidence": p.analysis.confidence,
            "failure_limit": p.analysis.failure_limit,
        },
        "stable": p.stable,
        "canary": p.canary,
    })
}

/// The last verdict with `at`, the time it was computed (a verdict that is no
/// longer refreshed, the guard stopped, must not read as current), and per
/// limit the span its figures cover and the reason for its result.
fn verdict_json(p: &Parts) -> Value {
    let Some(v) = p.verdict else {
        return Value::Null;
    };
    let mut j = serde_json::to_value(v).unwrap_or(Value::Null);
    if let (Value::Object(m), Some(at)) = (&mut j, p.verdict_at.as_deref()) {
        m.insert("at".into(), Value::String(at.into()));
    }
    if let Some(rows) = j.get_mut("metrics").and_then(Value::as_array_mut) {
        for (row, mv) in rows.iter_mut().zip(&v.metrics) {
            if let Value::Object(o) = row {
                o.insert("span".into(), json!(metric_span(mv)));
                let reason = metric_reason(mv, p.analysis.min_requests, p.stable.figures.requests);
                o.insert("reason".into(), json!(reason));
            }
        }
    }
    j
}

/// What a limit's figures cover: `window`, the last `analysis.window`; `run`,
/// for a Failed limit, the run of evidence that crossed it (the requests since
/// its sequential statistic last stood at zero; for the latency limits the
/// evidence and `slow_pct`, while `value` stays the window's p99).
pub(crate) fn metric_span(m: &MetricVerdict) -> &'static str {
    if m.result == CheckResult::Failed {
        "run"
    } else {
        "window"
    }
}

/// Why a limit got its result, in an operator's words: above all, why an
/// Inconclusive limit is not Failed although its value is over the limit.
/// `stable_requests` is stable's count over the window.
pub(crate) fn metric_reason(m: &MetricVerdict, min_requests: u64, stable_requests: u64) -> String {
    let n = m.evidence;
    let needs_stable = matches!(m.metric, "error-rate-increase" | "latency-p99-ratio");
    match m.result {
        CheckResult::Failed => {
            format!("over the limit with confidence (evidence since the last reset: n={n})")
        }
        CheckResult::Passed => format!("within the limit with confidence: n={n}"),
        CheckResult::Inconclusive => {
            if !(m.limit.is_finite() && m.limit > 0.0) {
                return "the limit is not a positive number: never judged".into();
            }
            if n < min_requests {
                return format!("too few canary requests: n={n} < min_requests {min_requests}");
            }
            if needs_stable && stable_requests < min_requests {
                return format!(
                    "stable baseline too thin: n={stable_requests} < min_requests {min_requests}"
                );
            }
            match m.value {
                None => format!("no measurement yet: n={n}"),
                Some(v) if v > m.limit => format!("over the limit, not yet confident: n={n}"),
                Some(_) => format!("within the limit, not yet confident: n={n}"),
            }
        }
    }
}

/// `/api/v1/analysis` for an Argo Rollouts `web` provider.
pub(crate) fn analysis_json(p: &Parts) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::machine::{Command, Input, Settings};

    fn mv(result: CheckResult, metric: &'static str, value: Option<f64>, n: u64) -> MetricVerdict {
        MetricVerdict {
            metric,
            result,
            value,
            limit: 2.0,
            evidence: n,
            baseline: None,
            slow_pct: None,
        }
    }

    #[test]
    fn every_result_says_why() {
        use CheckResult::*;
        let r = |m: &MetricVerdict| metric_reason(m, 20, 1000);
        assert_eq!(
            r(&mv(Inconclusive, "error-rate", Some(2.87), 453)),
            "over the limit, not yet confident: n=453"
        );
        assert_eq!(
            r(&mv(Inconclusive, "error-rate", Some(1.2), 453)),
            "within the limit, not yet confident: n=453"
        );
        assert_eq!(
            r(&mv(Inconclusive, "error-rate", Some(50.0), 12)),
            "too few canary requests: n=12 < min_requests 20"
        );
        assert_eq!(
            metric_reason(
                &mv(Inconclusive, "error-rate-increase", Some(9.0), 453),
                20,
                3
            ),
            "stable baseline too thin: n=3 < min_requests 20"
        );
        assert_eq!(
            r(&mv(Inconclusive, "latency-p99", None, 40)),
            "no measurement yet: n=40"
        );
        assert_eq!(
            r(&mv(Failed, "error-rate", Some(19.7), 66)),
            "over the limit with confidence (evidence since the last reset: n=66)"
        );
        assert_eq!(
            r(&mv(Passed, "error-rate", Some(0.1), 5000)),
            "within the limit with confidence: n=5000"
        );
        assert_eq!(metric_span(&mv(Failed, "error-rate", None, 1)), "run");
        assert_eq!(
            metric_span(&mv(Inconclusive, "error-rate", None, 1)),
            "window"
        );
    }

    fn settings(steps: &str) -> Settings {
        let yaml = format!(
            "listen: 127.0.0.1:0\nupstreams:\n  stable: {{ endpoints: [\"http://127.0.0.1:1\"] }}\n  canary: {{ endpoints: [\"http://127.0.0.1:2\"] }}\nrollout:\n  steps:\n{steps}"
        );
        Settings::from_config(&crate::config::parse(&yaml, &|_| None).expect("valid"))
    }

    /// The countdown of a timed pause on a simulated clock.
    #[test]
    fn a_timed_pause_counts_down_on_the_machine_clock() {
        let s = settings(
            "    - set_weight: 10\n    - pause: 30s\n    - set_weight: 50\n    - pause: {}\n",
        );
        let at = Duration::from_secs(100);
        let (mut m, _) = Machine::start(s, at);
        let p = pause_status(&m, at + Duration::from_millis(12_500)).expect("pausing");
        assert_eq!(
            p,
            PauseStatus {
                elapsed_ms: 12_500,
                duration_ms: Some(30_000),
                held: false
            }
        );
        // An operator hold keeps the clock but says so.
        m.handle(Input::Command(Command::Pause), at + Duration::from_secs(13))
            .expect("pause");
        let p = pause_status(&m, at + Duration::from_secs(20)).expect("held");
        assert_eq!((p.elapsed_ms, p.held), (20_000, true));
        m.handle(
            Input::Command(Command::Resume),
            at + Duration::from_secs(21),
        )
        .expect("resume");
        m.handle(
            Input::Command(Command::Promote { full: false }),
            at + Duration::from_secs(22),
        )
        .expect("promote");
        // `pause: {}`: no duration, held until promote.
        let p = pause_status(&m, at + Duration::from_secs(25)).expect("indefinite");
        assert_eq!(
            p,
            PauseStatus {
                elapsed_ms: 3_000,
                duration_ms: None,
                held: true
            }
        );
        // Aborted, or past the plan: no pause.
        m.handle(Input::Command(Command::Abort), at + Duration::from_secs(26))
            .expect("abort");
        assert_eq!(pause_status(&m, at + Duration::from_secs(27)), None);
    }
}
