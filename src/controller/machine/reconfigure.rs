//! A reloaded config: new thresholds keep the evidence; a new canary version
//! starts a new rollout; the steps of a running plan cannot change.
use super::{Effects, Evidence, Machine, Mode, Position, Rejection, Settings};
use std::time::Duration;

impl Machine {
    /// Whether `new` may replace the running settings (checked before the
    /// driver applies anything else of the new config).
    pub(crate) fn admits(&self, new: &Settings) -> Result<(), Rejection> {
        let running = match &self.rollout.mode {
            Mode::Plan(p) => !self.finished(p) && !self.rollout.abort,
            Mode::Manual { .. } => false,
        };
        if running && new.version == self.settings.version && new.plan != self.settings.plan {
            return Err(Rejection::PlanRunning);
        }
        Ok(())
    }

    pub(super) fn reconfigure(
        &mut self,
        new: Settings,
        source: &str,
        now: Duration,
        fx: &mut Effects,
    ) -> Result<(), Rejection> {
        self.admits(&new)?;
        let prev = self.rollout.weight_bp;
        let old = std::mem::replace(&mut self.settings, new);
        let new = &self.settings;
        let mut note = String::new();
        let version_changed = new.version != old.version;
        if version_changed {
            // A new canary: new evidence, and the rollout starts over.
            note = format!("; new canary version {}", new.version);
            let r = &mut self.rollout;
            r.abort = false;
            r.message.clear();
            match new.plan {
                Some(_) => {
                    r.weight_bp = 0;
                    r.mode = Mode::Plan(Position::at(0, now));
                }
                None => {
                    r.weight_bp = new.manual_weight_bp;
                    r.mode = Mode::Manual { after_plan: false };
                }
            }
            let target = self.target_analysis();
            self.evidence = Evidence::new(&target);
            self.analysis = target;
            fx.reset_canary_window = true;
        } else {
            if new.plan != old.plan {
                // Only a finished or aborted plan gets here (`admits`).
                let finished = match &self.rollout.mode {
                    Mode::Plan(p) => p.index >= old.plan.as_ref().map_or(0, |pl| pl.len()),
                    Mode::Manual { .. } => false,
                };
                let abort = self.rollout.abort;
                let mode = &mut self.rollout.mode;
                match (&*mode, &new.plan) {
                    (_, None) => *mode = Mode::Manual { after_plan: false },
                    (Mode::Plan(_), Some(pl)) if finished && !abort => {
                        *mode = Mode::Plan(Position::at(pl.len(), now))
                    }
                    (Mode::Plan(_), Some(_)) => *mode = Mode::Plan(Position::at(0, now)),
                    // A plan added in manual mode waits for the next canary version.
                    (Mode::Manual { .. }, Some(_)) => {}
                }
                self.evidence.gate = None;
            }
            let manual = matches!(self.rollout.mode, Mode::Manual { .. });
            if manual && !self.rollout.abort && new.manual_weight_bp != old.manual_weight_bp {
                self.rollout.weight_bp = new.manual_weight_bp;
            }
        }
        let msg = format!("config reloaded from {source}{note}");
        self.emit(fx, "reloaded", msg, prev);
        if version_changed {
            self.run_plan(now, fx);
        }
        Ok(())
    }
}
