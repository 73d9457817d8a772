//! The rollout's phase, as shown in the status, the `canary_phase` gauge and
//! the state file.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Walking the plan.
    Progressing,
    /// The plan waits for an operator (`pause`, `PUT weight`, `pause: {}`, an
    /// inconclusive gate).
    Paused,
    /// Plan finished, or manual mode with no abort.
    Healthy,
    /// Aborted: weight 0 until `retry`.
    Degraded,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Progressing,
        Phase::Paused,
        Phase::Healthy,
        Phase::Degraded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Healthy => "Healthy",
            Phase::Degraded => "Degraded",
        }
    }

    /// Index into [`Phase::ALL`] (the gauge's encoding).
    pub fn index(self) -> u8 {
        self as u8
    }
}
