//! The rollout plan's position (SPEC §6.4). The controller walks it; this
//! module holds where it is and answers questions about it.
use crate::config::{Analysis, AnalysisPatch, Step, StepKind};
use crate::judge::{CheckResult, Guard};
use crate::telemetry::Reading;
use std::time::{Duration, Instant};

pub struct Plan {
    pub steps: Vec<Step>,
    /// The step being waited on (a pause or a gate), or `steps.len()` when finished.
    pub index: usize,
    /// When the current step began (for timed pauses and gates).
    pub step_started: Instant,
    /// Held by an operator (`pause`, `PUT weight`) or an inconclusive gate.
    pub hold: bool,
    /// `resume` goes on with the next step (after `PUT weight` or an inconclusive gate)
    /// instead of finishing the current one.
    pub resume_advances: bool,
    pub gate: Option<Gate>,
}

/// An analysis step in progress: its own guard over the requests since it began.
pub struct Gate {
    pub guard: Guard,
    pub analysis: Analysis,
    pub duration: Duration,
    pub timeout: Duration,
    /// The canary's cumulative reading when the gate began.
    pub canary_base: Reading,
    pub last: CheckResult,
    pub inconclusive: bool,
}

impl Gate {
    pub fn new(effective: &Analysis, patch: &AnalysisPatch, canary_now: &Reading) -> Gate {
        let analysis = effective.merged(patch);
        let duration = patch.duration.map(|d| d.get()).unwrap_or_default();
        Gate {
            guard: Guard::new(&analysis),
            timeout: patch.gate_timeout().unwrap_or(duration * 5),
            duration,
            analysis,
            canary_base: canary_now.clone(),
            last: CheckResult::Inconclusive,
            inconclusive: false,
        }
    }
}

impl Plan {
    pub fn new(steps: Vec<Step>) -> Plan {
        Plan {
            steps,
            index: 0,
            step_started: Instant::now(),
            hold: false,
            resume_advances: false,
            gate: None,
        }
    }

    pub fn finished(&self) -> bool {
        self.index >= self.steps.len()
    }

    pub fn current(&self) -> Option<StepKind<'_>> {
        self.steps.get(self.index).map(Step::kind)
    }

    /// Waiting at `pause: {}`.
    pub fn at_indefinite_pause(&self) -> bool {
        matches!(self.current(), Some(StepKind::Pause(None)))
    }

    /// The analysis override in force at the current position: the last
    /// `set_weight` step with an `analysis` block up to here.
    pub fn override_patch(&self) -> Option<&AnalysisPatch> {
        let upto = (self.index + 1).min(self.steps.len());
        self.steps[..upto]
            .iter()
            .rev()
            .find_map(|s| match s.kind() {
                StepKind::SetWeight { analysis, .. } => analysis,
                _ => None,
            })
    }

    /// The weight the plan has set by the current position (last `set_weight`
    /// before it), for restoring a position without replaying steps.
    pub fn weight_upto(&self) -> Option<f64> {
        let upto = self.index.min(self.steps.len());
        self.steps[..upto].iter().rev().find_map(|s| s.set_weight)
    }

    /// One line for events: `step 2/7: pause 30s`.
    pub fn describe(&self, i: usize) -> String {
        let n = self.steps.len();
        let what = match self.steps.get(i).map(Step::kind) {
            Some(StepKind::SetWeight { weight, analysis }) => format!(
                "set weight {weight}%{}",
                if analysis.is_some() {
                    " (analysis override)"
                } else {
                    ""
                }
            ),
            Some(StepKind::Pause(Some(d))) => {
                format!("pause {}", crate::config::format_duration(d))
            }
            Some(StepKind::Pause(None)) => "pause until promote".into(),
            Some(StepKind::Gate(p)) => format!(
                "analysis gate for {}",
                crate::config::format_duration(p.duration.map(|d| d.get()).unwrap_or_default())
            ),
            None => "finished".into(),
        };
        format!("step {}/{n}: {what}", i + 1)
    }

    /// The plan as JSON for `/api/v1/status` (`plan`): the steps as configured.
    pub fn steps_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.steps
                .iter()
                .map(|s| {
                    let mut m = serde_json::Map::new();
                    let mut put = |k: &str, v: serde_json::Result<serde_json::Value>| {
                        if let Ok(v) = v {
                            m.insert(k.into(), v);
                        }
                    };
                    if let Some(w) = s.set_weight {
                        put("set_weight", serde_json::to_value(w));
                    }
                    if let Some(p) = &s.pause {
                        put("pause", serde_json::to_value(p));
                    }
                    if let Some(a) = &s.analysis {
                        put("analysis", serde_json::to_value(a).map(without_nulls));
                    }
                    serde_json::Value::Object(m)
                })
                .collect(),
        )
    }
}

/// Drops unset (`null`) keys so a step reads as it was written.
fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        v => v,
    }
}
