//! The configured rollout plan: its steps, and what each position means
//! (which step waits, which analysis override is in force, how a step reads in
//! an event). Positions are 0-based step indices; `len()` means finished.
use crate::config::{AnalysisPatch, Step, StepKind};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub(crate) fn new(steps: Vec<Step>) -> Plan {
        Plan { steps }
    }

    pub(crate) fn len(&self) -> usize {
        self.steps.len()
    }

    /// The step at `index`; `None` once past the last one.
    pub(crate) fn kind(&self, index: usize) -> Option<StepKind<'_>> {
        self.steps.get(index).map(Step::kind)
    }

    /// `pause: {}` at `index`: only promote or resume leaves it.
    pub(crate) fn indefinite_pause_at(&self, index: usize) -> bool {
        matches!(self.kind(index), Some(StepKind::Pause(None)))
    }

    /// The analysis override in force at `index`: the last `set_weight` step
    /// with an `analysis` block up to and including it.
    pub(crate) fn override_patch(&self, index: usize) -> Option<&AnalysisPatch> {
        let upto = (index + 1).min(self.steps.len());
        self.steps[..upto]
            .iter()
            .rev()
            .find_map(|s| match s.kind() {
                StepKind::SetWeight { analysis, .. } => analysis,
                _ => None,
            })
    }

    /// One line for events. `i` is 0-based, the text counts from 1:
    /// `describe(1)` of a 7-step plan reads `step 2/7: pause 30s`.
    pub(crate) fn describe(&self, i: usize) -> String {
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
    pub(crate) fn steps_json(&self) -> serde_json::Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let yaml = "listen: 127.0.0.1:0\nupstreams:\n  stable: { endpoints: [\"http://127.0.0.1:1\"] }\n  canary: { endpoints: [\"http://127.0.0.1:2\"] }\nrollout:\n  steps:\n    - set_weight: 5\n      analysis: { error_rate: { max: 1.0 } }\n    - pause: 30s\n    - set_weight: 25\n    - analysis: { duration: 1m, min_requests: 500 }\n    - set_weight: 50\n      analysis: { latency: { max_p99: 200ms } }\n    - pause: {}\n";
        let c = crate::config::parse(yaml, &|_| None).expect("valid");
        Plan::new(c.rollout.expect("plan").steps)
    }

    #[test]
    fn override_follows_the_position() {
        let p = plan();
        let max = |i: usize| {
            p.override_patch(i)
                .and_then(|a| a.error_rate.clone())
                .and_then(|e| e.max)
        };
        assert_eq!(max(0), Some(Some(1.0)));
        assert_eq!(max(3), Some(Some(1.0))); // the gate: still step 0's override
        assert!(p
            .override_patch(5)
            .and_then(|a| a.latency.clone())
            .is_some());
        assert_eq!(max(5), None); // step 4's override replaced it
        assert_eq!(max(99), None); // past the end: the last override stays
        assert!(p.override_patch(99).is_some());
        assert!(p.indefinite_pause_at(5) && !p.indefinite_pause_at(1));
    }

    #[test]
    fn describes_steps() {
        let p = plan();
        assert_eq!(p.describe(1), "step 2/6: pause 30s");
        assert_eq!(p.describe(3), "step 4/6: analysis gate for 1m");
        assert_eq!(p.describe(5), "step 6/6: pause until promote");
        assert!(p.describe(0).contains("analysis override"));
        let j = p.steps_json();
        assert_eq!(j[3]["analysis"]["min_requests"], 500);
        assert!(j[3]["analysis"].get("window").is_none());
        assert_eq!(j[5]["pause"], serde_json::json!({}));
    }
}
