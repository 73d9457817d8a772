//! A validated plan step, as the controller walks it.
use std::time::Duration;

use super::{AnalysisPatch, Pause, Step};

/// What one step does. Validation guarantees every step is exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepKind<'a> {
    /// Set the weight (percent); `analysis` overrides apply from here on.
    SetWeight {
        weight: f64,
        analysis: Option<&'a AnalysisPatch>,
    },
    /// `pause: 30s` → `Some(30s)`; `pause: {}` → `None` (wait for promote).
    Pause(Option<Duration>),
    /// An analysis gate; `duration` is set, `timeout` defaults to 5 × duration.
    Gate(&'a AnalysisPatch),
}

impl Step {
    /// The step's kind. On an unvalidated step, `set_weight` wins over `pause`
    /// which wins over a lone `analysis`; a step with nothing is an indefinite pause.
    pub fn kind(&self) -> StepKind<'_> {
        match (self.set_weight, &self.pause, &self.analysis) {
            (Some(weight), _, analysis) => StepKind::SetWeight {
                weight,
                analysis: analysis.as_ref(),
            },
            (None, Some(Pause::For(d)), _) => StepKind::Pause(Some(d.get())),
            (None, Some(Pause::Indefinite(_)), _) | (None, None, None) => StepKind::Pause(None),
            (None, None, Some(a)) => StepKind::Gate(a),
        }
    }
}

impl AnalysisPatch {
    /// A gate's give-up time: `timeout`, or 5 × `duration`.
    pub fn gate_timeout(&self) -> Option<Duration> {
        self.timeout
            .map(|t| t.get())
            .or_else(|| self.duration.map(|d| d.get() * 5))
    }
}
