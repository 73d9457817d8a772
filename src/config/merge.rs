//! Deep merge of a step's `analysis` override over the global block.
use super::{Analysis, AnalysisPatch};

impl Analysis {
    /// `self` with every key `patch` writes replaced, key by key (also inside
    /// `error_rate` and `latency`). An explicit `null` limit in the patch
    /// disables that limit; a missing key keeps `self`'s value. The gate-only
    /// keys (`duration`, `timeout`) are not analysis settings and are ignored.
    pub fn merged(&self, patch: &AnalysisPatch) -> Analysis {
        let mut a = self.clone();
        if let Some(v) = patch.interval {
            a.interval = v;
        }
        if let Some(v) = patch.window {
            a.window = v;
        }
        if let Some(v) = patch.min_requests {
            a.min_requests = v;
        }
        if let Some(v) = patch.confidence {
            a.confidence = v;
        }
        if let Some(v) = patch.failure_limit {
            a.failure_limit = v;
        }
        if let Some(v) = &patch.error_statuses {
            a.error_statuses = v.clone();
        }
        if let Some(e) = &patch.error_rate {
            if let Some(v) = e.max {
                a.error_rate.max = v;
            }
            if let Some(v) = e.max_increase {
                a.error_rate.max_increase = v;
            }
        }
        if let Some(l) = &patch.latency {
            if let Some(v) = l.max_p99 {
                a.latency.max_p99 = v;
            }
            if let Some(v) = l.max_p99_ratio {
                a.latency.max_p99_ratio = v;
            }
        }
        a
    }
}

impl AnalysisPatch {
    /// True when it carries a gate's own keys (`duration` / `timeout`).
    pub fn has_gate_keys(&self) -> bool {
        self.duration.is_some() || self.timeout.is_some()
    }
}
