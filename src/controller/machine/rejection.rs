//! Why the machine refused an input. The admin API maps each to a status code.

/// A refused command or config change; a refused input changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the canary is aborted: POST /api/v1/retry first")]
    Aborted,
    #[error("no rollout plan (manual mode)")]
    NoPlan,
    #[error("the plan completed and the weight was then set by hand (manual mode): no plan to promote, pause or resume")]
    ManualAfterPlan,
    #[error("the rollout is already complete")]
    Complete,
    #[error("retry is only allowed after an abort")]
    NotAborted,
    #[error("rollout.steps: cannot change the steps of a running plan (restart, or abort first)")]
    PlanRunning,
}
