//! Starting: fresh from the config, or where a saved state left off.
use super::{Effects, Machine, Mode, Observed, OnResume, Phase, Position, Settings};
use crate::config::{self, StepKind};
use crate::controller::state_file::{Inconsistent, State};
use std::time::Duration;

/// Why a saved state cannot be restored (the rollout then starts fresh).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum Unfit {
    #[error("it is for canary version {saved}, not {configured}")]
    OtherVersion { saved: String, configured: String },
    #[error(transparent)]
    Inconsistent(#[from] Inconsistent),
    #[error("step_index {index} is past the plan's {steps} steps")]
    PastPlan { index: usize, steps: usize },
}

impl Machine {
    /// A new rollout: a plan starts at step 0, manual mode at
    /// `routing.canary_weight`.
    pub(crate) fn start(settings: Settings, now: Duration) -> (Machine, Effects) {
        let mut m = Machine::blank(settings);
        let before = m.observed();
        let mut fx = Effects::default();
        let version = &m.settings.version;
        match m.settings.plan.as_ref().map(|p| p.len()) {
            Some(n) => {
                let msg = format!("rollout of {version} started: plan of {n} steps");
                m.rollout.mode = Mode::Plan(Position::at(0, now));
                m.emit(&mut fx, "started", msg, m.rollout.weight_bp);
                m.run_plan(now, &mut fx);
            }
            None => {
                let msg = format!("{version} in manual mode at weight {}%", m.weight());
                m.emit(&mut fx, "started", msg, m.rollout.weight_bp);
            }
        }
        m.settle_start(before, &mut fx);
        (m, fx)
    }

    /// Continues a saved rollout of the same canary version. An aborted
    /// canary stays aborted at weight 0; a held plan stays held at its step
    /// (`resume` then goes on with the next step); a timed pause or a gate
    /// starts over, its evidence having been in memory.
    pub(crate) fn restore(
        settings: Settings,
        saved: &State,
        now: Duration,
    ) -> Result<(Machine, Effects), Unfit> {
        saved.check()?;
        if saved.version != settings.version {
            return Err(Unfit::OtherVersion {
                saved: saved.version.clone(),
                configured: settings.version.clone(),
            });
        }
        let mut m = Machine::blank(settings);
        let before = m.observed();
        let r = &mut m.rollout;
        r.weight_bp = config::weight_to_bp(saved.canary_weight);
        r.abort = saved.abort;
        r.message = saved.message.clone();
        r.mode = match (m.settings.plan.as_ref(), saved.step_index) {
            (Some(plan), Some(index)) => {
                if index > plan.len() && !saved.abort {
                    return Err(Unfit::PastPlan {
                        index,
                        steps: plan.len(),
                    });
                }
                let index = index.min(plan.len());
                // Files written before `pause: {}` counted as held say `paused: false` there.
                let held = saved.paused || (saved.phase == Phase::Paused);
                let hold = (held && !saved.abort && index < plan.len()).then_some(OnResume::Next);
                Mode::Plan(Position {
                    index,
                    step_started: now,
                    hold,
                })
            }
            // The operator took the weight over after the plan completed.
            (Some(_), None) => Mode::Manual { after_plan: true },
            (None, _) => Mode::Manual { after_plan: false },
        };
        let mut fx = Effects::default();
        let msg = format!(
            "resumed {} from the state file: phase {}, weight {}%",
            m.settings.version,
            m.phase().as_str(),
            m.weight()
        );
        m.emit(&mut fx, "started", msg, m.rollout.weight_bp);
        if !m.rollout.abort {
            let at_set_weight = match (&m.rollout.mode, m.plan()) {
                (Mode::Plan(p), Some(pl)) => {
                    p.hold.is_none() && matches!(pl.kind(p.index), Some(StepKind::SetWeight { .. }))
                }
                _ => false,
            };
            // A position on a `set_weight` step (the steps changed between
            // runs) walks on from it rather than stalling there.
            if at_set_weight {
                m.run_plan(now, &mut fx);
            } else {
                m.enter_current(now, false, &mut fx);
            }
        }
        m.settle_start(before, &mut fx);
        Ok((m, fx))
    }

    /// A start publishes and persists whatever it decided.
    fn settle_start(&mut self, before: Observed, fx: &mut Effects) {
        self.settle(before, fx);
        fx.publish = true;
        fx.persist = true;
    }
}
