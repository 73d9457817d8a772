//! Restoring a saved state, and reloaded configs.
use super::*;

const PLAN: &str = "    - set_weight: 10\n    - pause: {}\n    - set_weight: 30\n    - pause: 1m\n    - analysis: { duration: 1m }\n    - set_weight: 100\n";

fn saved(phase: Phase, weight: f64, step: Option<usize>, abort: bool, paused: bool) -> State {
    State {
        version: "v2".into(),
        phase,
        canary_weight: weight,
        step_index: step,
        abort,
        message: if abort {
            "manual abort".into()
        } else {
            String::new()
        },
        paused,
    }
}

fn restored(s: Settings, st: &State) -> Sim {
    match Sim::restore(s, st) {
        Ok(s) => s,
        Err(e) => panic!("not restored: {e}"),
    }
}

#[test]
fn an_aborted_canary_stays_aborted() {
    let s = restored(
        plan(PLAN),
        &saved(Phase::Degraded, 0.0, Some(3), true, false),
    );
    assert_eq!(s.at(), (Phase::Degraded, 0.0, Some(3)));
    assert_eq!(s.m.message(), "manual abort");
    assert_eq!(s.kinds(), ["started"]);
    s.consistent();
}

#[test]
fn a_held_plan_stays_held_and_resume_goes_on() {
    let mut s = restored(
        plan(PLAN),
        &saved(Phase::Paused, 55.0, Some(3), false, true),
    );
    assert_eq!(s.at(), (Phase::Paused, 55.0, Some(3)));
    s.consistent();
    assert!(s.idle(10 * MIN).is_empty());
    s.cmd(Command::Resume).unwrap();
    assert_eq!(s.at(), (Phase::Progressing, 55.0, Some(4)));
}

#[test]
fn an_old_file_at_an_indefinite_pause_reads_as_paused() {
    let s = restored(
        plan(PLAN),
        &saved(Phase::Paused, 10.0, Some(1), false, false),
    );
    assert_eq!(s.at(), (Phase::Paused, 10.0, Some(1)));
    assert!(s.m.paused());
    s.consistent();
}

#[test]
fn timed_pauses_and_gates_start_over() {
    let mut s = restored(
        plan(PLAN),
        &saved(Phase::Progressing, 30.0, Some(3), false, false),
    );
    assert_eq!(s.at(), (Phase::Progressing, 30.0, Some(3)));
    s.idle(MIN - TICK);
    assert_eq!(s.m.step_index(), Some(3));
    s.tick(0, 0);
    assert_eq!(s.m.step_index(), Some(4));
    let s = restored(
        plan(PLAN),
        &saved(Phase::Progressing, 30.0, Some(4), false, false),
    );
    assert_eq!(s.m.gate(s.now).map(|g| g.elapsed_ms), Some(0));
}

#[test]
fn a_saved_position_round_trips() {
    let mut s = Sim::start(plan(PLAN));
    s.cmd(Command::Promote { full: false }).unwrap();
    s.cmd(Command::Pause).unwrap();
    let st = s.m.state();
    assert_eq!(
        (st.phase, st.step_index, st.paused),
        (Phase::Paused, Some(3), true)
    );
    let r = restored(plan(PLAN), &st);
    assert_eq!(r.at(), s.at());
    assert_eq!(r.m.state(), st);
}

#[test]
fn manual_mode_after_the_plan_survives_a_restart() {
    let mut s = Sim::start(plan("    - set_weight: 100\n"));
    s.cmd(Command::SetWeight(40.0)).unwrap();
    let st = s.m.state();
    assert_eq!(st.step_index, None);
    let r = restored(plan("    - set_weight: 100\n"), &st);
    assert_eq!(r.at(), (Phase::Healthy, 40.0, None));
    assert_eq!(r.m.rollout().mode, Mode::Manual { after_plan: true });
    assert_eq!(r.m.guard_off(), None);
}

#[test]
fn unfit_states_are_refused() {
    let other = State {
        version: "v1".into(),
        ..saved(Phase::Healthy, 0.0, None, false, false)
    };
    assert!(matches!(
        Machine::restore(plan(PLAN), &other, Duration::ZERO),
        Err(Unfit::OtherVersion { .. })
    ));
    for bad in [
        saved(Phase::Degraded, 0.0, Some(1), false, false),
        saved(Phase::Healthy, 20.0, Some(1), true, false),
        saved(Phase::Degraded, 20.0, Some(1), true, false),
        saved(Phase::Healthy, 20.0, Some(1), false, true),
    ] {
        assert!(
            matches!(
                Machine::restore(plan(PLAN), &bad, Duration::ZERO),
                Err(Unfit::Inconsistent(_))
            ),
            "{bad:?}"
        );
    }
    let past = saved(Phase::Progressing, 20.0, Some(9), false, false);
    assert!(matches!(
        Machine::restore(plan(PLAN), &past, Duration::ZERO),
        Err(Unfit::PastPlan { index: 9, steps: 6 })
    ));
    // Aborted stays aborted whatever the plan became.
    let aborted = saved(Phase::Degraded, 0.0, Some(9), true, false);
    let s = restored(plan(PLAN), &aborted);
    assert_eq!(s.at(), (Phase::Degraded, 0.0, Some(6)));
}

fn reload(s: &mut Sim, settings: Settings) -> Result<Effects, Rejection> {
    s.input(Input::Reconfigure {
        settings,
        source: "c.yaml".into(),
    })
}

#[test]
fn reload_keeps_position_and_evidence_with_new_thresholds() {
    let mut s = Sim::start(plan(PLAN));
    s.run(10 * SEC, 100, 0);
    let verdict = s.m.verdict().map(|v| v.1);
    let mut new = plan(PLAN);
    new.analysis.error_rate.max = Some(3.0);
    let fx = reload(&mut s, new).unwrap();
    assert_eq!(fx.kinds(), ["reloaded"]);
    assert_eq!(fx.events[0].message, "config reloaded from c.yaml");
    assert_eq!(s.at(), (Phase::Paused, 10.0, Some(1)));
    assert_eq!(s.m.analysis().error_rate.max, Some(3.0));
    assert_eq!(s.m.verdict().map(|v| v.1), verdict);
}

#[test]
fn reload_refuses_new_steps_for_a_running_plan() {
    let mut s = Sim::start(plan(PLAN));
    let before = s.m.rollout().clone();
    let r = reload(&mut s, plan("    - set_weight: 20\n"));
    assert_eq!(r, Err(Rejection::PlanRunning));
    assert_eq!(s.m.rollout(), &before);
    // Once aborted the steps may change; the new plan waits for a retry.
    s.cmd(Command::Abort).unwrap();
    reload(&mut s, plan("    - set_weight: 20\n")).unwrap();
    assert_eq!(s.at(), (Phase::Degraded, 0.0, Some(0)));
    s.cmd(Command::Retry).unwrap();
    assert_eq!(s.at(), (Phase::Healthy, 20.0, Some(1)));
}

#[test]
fn reload_with_a_new_version_starts_over() {
    let mut s = Sim::start(plan(PLAN));
    s.cmd(Command::Abort).unwrap();
    let mut new = plan(PLAN);
    new.version = "v3".into();
    let fx = reload(&mut s, new).unwrap();
    assert!(fx.reset_canary_window);
    assert_eq!(fx.kinds(), ["reloaded", "step", "paused"]);
    assert!(fx.events[0].message.ends_with("; new canary version v3"));
    assert_eq!(s.at(), (Phase::Paused, 10.0, Some(1)));
    assert_eq!(s.m.message(), "");
    // Manual mode: the configured weight.
    let mut s = Sim::start(settings("routing: { canary_weight: 10 }\n"));
    s.cmd(Command::Abort).unwrap();
    let mut new = settings("routing: { canary_weight: 30 }\n");
    new.version = "v3".into();
    reload(&mut s, new).unwrap();
    assert_eq!(s.at(), (Phase::Healthy, 30.0, None));
}

#[test]
fn reloaded_manual_weight_applies_only_in_manual_mode_and_not_aborted() {
    let mut s = Sim::start(settings("routing: { canary_weight: 10 }\n"));
    reload(&mut s, settings("routing: { canary_weight: 25 }\n")).unwrap();
    assert_eq!(s.weight(), 25.0);
    s.cmd(Command::Abort).unwrap();
    reload(&mut s, settings("routing: { canary_weight: 30 }\n")).unwrap();
    assert_eq!(s.at(), (Phase::Degraded, 0.0, None));
    let mut s = Sim::start(plan(PLAN));
    let mut new = plan(PLAN);
    new.manual_weight_bp = 5000;
    reload(&mut s, new).unwrap();
    assert_eq!(s.weight(), 10.0);
}

#[test]
fn reload_dropping_a_completed_plan_is_manual_mode() {
    let mut s = Sim::start(plan("    - set_weight: 100\n"));
    reload(&mut s, settings("")).unwrap();
    assert_eq!(s.at(), (Phase::Healthy, 100.0, None));
    assert_eq!(s.m.guard_off(), None);
    // A plan added in manual mode waits for the next canary version.
    reload(&mut s, plan(PLAN)).unwrap();
    assert_eq!(s.at(), (Phase::Healthy, 100.0, None));
}

#[test]
fn the_rollout_state_serializes_apart_from_the_evidence() {
    let mut s = Sim::start(plan(PLAN));
    s.cmd(Command::Promote { full: false }).unwrap();
    s.cmd(Command::SetWeight(35.0)).unwrap();
    let json = serde_json::to_string(s.m.rollout()).unwrap();
    let back: Rollout = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, s.m.rollout());
    assert!(json.contains("\"hold\":\"next\""), "{json}");
}
