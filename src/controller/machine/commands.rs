//! Admin commands. Each checks everything before changing anything, so a
//! rejected command leaves the state as it was.
use super::{Command, Effects, Machine, Mode, OnResume, Position, Rejection, FULL_BP};
use crate::config;
use std::time::Duration;

impl Machine {
    pub(super) fn command(
        &mut self,
        cmd: Command,
        now: Duration,
        fx: &mut Effects,
    ) -> Result<(), Rejection> {
        match cmd {
            Command::SetWeight(w) => self.set_weight(w, fx),
            Command::Promote { full } => self.promote(full, now, fx),
            Command::Abort => {
                if !self.rollout.abort {
                    self.evidence.verdict = None;
                    self.abort_now("manual", "manual abort".into(), fx);
                }
                Ok(())
            }
            Command::Retry => self.retry(now, fx),
            Command::Pause => self.pause(fx),
            Command::Resume => self.resume(now, fx),
        }
    }

    /// With a plan running: the plan holds, and `resume` goes on with the next
    /// step. After the plan completed: manual mode, guarded above weight 0.
    fn set_weight(&mut self, w: f64, fx: &mut Effects) -> Result<(), Rejection> {
        if self.rollout.abort {
            return Err(Rejection::Aborted);
        }
        let prev = self.rollout.weight_bp;
        self.rollout.weight_bp = config::weight_to_bp(w);
        let mut msg = format!("weight set to {w}% by the operator");
        let finished = match &self.rollout.mode {
            Mode::Plan(p) => Some(self.finished(p)),
            Mode::Manual { .. } => None,
        };
        match (&mut self.rollout.mode, finished) {
            (Mode::Plan(p), Some(false)) => {
                p.hold = Some(OnResume::Next);
                self.evidence.gate = None;
                msg.push_str("; plan paused until resume");
            }
            (mode @ Mode::Plan(_), Some(true)) => {
                *mode = Mode::Manual { after_plan: true };
                msg.push_str("; the plan is complete: manual mode from now on, guarded while the weight is above 0");
            }
            _ => {}
        }
        self.emit(fx, "weight", msg, prev);
        Ok(())
    }

    /// The plan position, when plan commands apply.
    fn running_plan(&self) -> Result<&Position, Rejection> {
        match &self.rollout.mode {
            Mode::Manual { after_plan: false } => Err(Rejection::NoPlan),
            Mode::Manual { after_plan: true } => Err(Rejection::ManualAfterPlan),
            Mode::Plan(_) if self.rollout.abort => Err(Rejection::Aborted),
            Mode::Plan(p) => Ok(p),
        }
    }

    fn promote(&mut self, full: bool, now: Duration, fx: &mut Effects) -> Result<(), Rejection> {
        let p = self.running_plan()?;
        if self.finished(p) && (!full || self.rollout.weight_bp == FULL_BP) {
            return Err(Rejection::Complete);
        }
        let len = self.plan().map_or(0, |pl| pl.len());
        let desc = self.plan().map(|pl| pl.describe(p.index));
        let prev = self.rollout.weight_bp;
        self.evidence.gate = None;
        if let Mode::Plan(p) = &mut self.rollout.mode {
            p.hold = None;
            if full {
                p.index = len;
            } else {
                p.index += 1;
            }
        }
        if full {
            self.rollout.weight_bp = FULL_BP;
            self.emit(fx, "promoted", "promoted to 100% (full)".into(), prev);
        } else {
            let msg = format!("promoted past {}", desc.unwrap_or_default());
            self.emit(fx, "promoted", msg, prev);
        }
        self.run_plan(now, fx);
        Ok(())
    }

    /// Holds the plan at its step; a gate goes on judging (and may abort).
    fn pause(&mut self, fx: &mut Effects) -> Result<(), Rejection> {
        let p = self.running_plan()?;
        if self.finished(p) {
            return Err(Rejection::Complete);
        }
        if p.hold.is_some() {
            return Ok(());
        }
        let desc = self.plan().map(|pl| pl.describe(p.index));
        if let Mode::Plan(p) = &mut self.rollout.mode {
            p.hold = Some(OnResume::Continue);
        }
        let msg = format!("paused by the operator at {}", desc.unwrap_or_default());
        self.emit(fx, "paused", msg, self.rollout.weight_bp);
        Ok(())
    }

    fn resume(&mut self, now: Duration, fx: &mut Effects) -> Result<(), Rejection> {
        let p = self.running_plan()?;
        if self.finished(p) {
            return Err(Rejection::Complete);
        }
        let Some(on_resume) = p.hold else {
            return Ok(()); // already progressing
        };
        let desc = self
            .plan()
            .map(|pl| pl.describe(p.index))
            .unwrap_or_default();
        let next = on_resume == OnResume::Next;
        if let Mode::Plan(p) = &mut self.rollout.mode {
            p.hold = None;
            if next {
                p.index += 1;
            }
        }
        let w = self.rollout.weight_bp;
        if next {
            self.evidence.gate = None;
            self.emit(fx, "resumed", format!("resumed after {desc}"), w);
            self.run_plan(now, fx);
        } else {
            self.emit(fx, "resumed", format!("resumed at {desc}"), w);
        }
        Ok(())
    }

    /// Clears an abort with fresh evidence and no step override: a plan
    /// starts again from its first step, manual mode stays at weight 0.
    fn retry(&mut self, now: Duration, fx: &mut Effects) -> Result<(), Rejection> {
        if !self.rollout.abort {
            return Err(Rejection::NotAborted);
        }
        self.rollout.abort = false;
        self.rollout.message.clear();
        let e = &mut self.evidence;
        e.verdict = None;
        e.guard.reset();
        e.gate = None;
        fx.reset_canary_window = true;
        let prev = self.rollout.weight_bp;
        if matches!(self.rollout.mode, Mode::Plan(_)) {
            self.rollout.mode = Mode::Plan(Position::at(0, now));
            let msg = "retry: the plan starts again from step 1".to_string();
            self.emit(fx, "retried", msg, prev);
            self.run_plan(now, fx);
        } else {
            self.rollout.weight_bp = 0;
            self.rollout.mode = Mode::Manual { after_plan: false };
            self.emit(
                fx,
                "retried",
                "retry: abort cleared at weight 0".into(),
                prev,
            );
        }
        Ok(())
    }
}
