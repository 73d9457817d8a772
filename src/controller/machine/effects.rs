//! What the driver must carry out after an input.
use crate::Phase;

/// In the order a driver should carry them out: windows, snapshot and gauges
/// (so an abort reaches the request path first), abort counter, state, events.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Effects {
    /// The effective `analysis.interval` or `window` changed: new windows.
    pub rebuild_windows: bool,
    /// The canary's figures start over (retry, a new canary version).
    pub reset_canary_window: bool,
    /// Weight, abort, phase or error statuses changed: publish a snapshot and gauges.
    pub publish: bool,
    /// Aborts to add to `canary_aborts_total`.
    pub aborts: u32,
    /// The rollout state changed: persist it.
    pub persist: bool,
    /// Events, oldest first: each becomes an entry in the event list, a log
    /// line and a webhook.
    pub events: Vec<Notice>,
}

impl Effects {
    #[cfg(test)]
    pub(crate) fn kinds(&self) -> Vec<&'static str> {
        self.events.iter().map(|n| n.kind).collect()
    }
}

/// One event, with the state as it was when it happened (a walk through
/// several steps reports each step's own weight).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    /// One of `config::EVENT_KINDS`.
    pub kind: &'static str,
    pub message: String,
    pub phase: Phase,
    pub weight_bp: u32,
    pub previous_bp: u32,
    /// For `aborted`: the metric that failed (`manual` for an admin abort).
    pub metric: Option<&'static str>,
}
