//! The abort message (`message` in `/api/v1/status`, events and webhooks):
//! `RolloutAborted: metric "error-rate" assessed Failed due to failed (1) > failureLimit (0); canary error rate 2.68% > max 2.0% (n=6000)`.
use super::limits::SLOW_LIMIT;
use super::{MetricVerdict, Verdict};

impl Verdict {
    pub(crate) fn abort_message(&self, failure_limit: u32, consecutive: u32) -> String {
        let Some(m) = self.failed_metric() else {
            return format!(
                "RolloutAborted: assessed {} with failed ({consecutive}) > failureLimit ({failure_limit})",
                self.result.as_str()
            );
        };
        format!(
            "RolloutAborted: metric \"{}\" assessed Failed due to failed ({consecutive}) > failureLimit ({failure_limit}); {}",
            m.metric,
            m.describe()
        )
    }
}

impl MetricVerdict {
    /// One clause with the figures behind this limit's assessment.
    pub(crate) fn describe(&self) -> String {
        let n = self.evidence;
        let v = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.2}"));
        let slow = self.slow_pct.map(|p| {
            format!(
                "{p:.1}% of requests slower, limit {}%",
                num(SLOW_LIMIT * 100.0)
            )
        });
        match self.metric {
            "error-rate" => format!(
                "canary error rate {}% > max {}% (n={n})",
                v(self.value),
                num(self.limit)
            ),
            "error-rate-increase" => format!(
                "canary error rate {} points above stable {}% > max_increase {} points (n={n})",
                v(self.value),
                v(self.baseline),
                num(self.limit)
            ),
            "latency-p99" => match slow {
                Some(s) => format!("canary p99 > max_p99 {}ms: {s} (n={n})", num(self.limit)),
                None => format!(
                    "canary p99 {}ms > max_p99 {}ms (n={n})",
                    v(self.value),
                    num(self.limit)
                ),
            },
            _ => match slow {
                Some(s) => format!(
                    "canary p99 > {}x stable p99 {}ms: {s} (n={n})",
                    num(self.limit),
                    v(self.baseline)
                ),
                None => format!(
                    "canary p99 {}x stable p99 {}ms > max_p99_ratio {}x (n={n})",
                    v(self.value),
                    v(self.baseline),
                    num(self.limit)
                ),
            },
        }
    }
}

/// A limit as the operator wrote it: `2.0`, `1.5`, `0.25`, `500`.
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        if x.abs() >= 10.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        }
    } else {
        format!("{x}")
    }
}
