//! Admin commands and every refusal.
use super::*;

const THREE_PAUSES: &str = "    - set_weight: 10\n    - pause: {}\n    - set_weight: 40\n      analysis: { error_rate: { max: 2.0 } }\n    - pause: 1h\n    - set_weight: 70\n    - pause: {}\n    - set_weight: 100\n";

#[test]
fn promote_leaves_a_timed_pause_and_full_goes_to_100() {
    let mut s = Sim::start(plan(THREE_PAUSES));
    s.cmd(Command::Promote { full: false }).unwrap();
    assert_eq!(s.at(), (Phase::Progressing, 40.0, Some(3)));
    s.cmd(Command::Promote { full: false }).unwrap();
    assert_eq!(s.at(), (Phase::Paused, 70.0, Some(5)));
    let fx = s.cmd(Command::Promote { full: true }).unwrap();
    assert_eq!(fx.kinds(), ["promoted", "completed"]);
    assert_eq!(fx.events[0].message, "promoted to 100% (full)");
    assert_eq!(s.at(), (Phase::Healthy, 100.0, Some(7)));
    assert_eq!(s.m.guard_off(), Some(GuardOff::PlanComplete));
    s.consistent();
}

#[test]
fn promote_full_after_a_plan_that_ended_below_100() {
    let mut s = Sim::start(plan("    - set_weight: 50\n"));
    assert_eq!(
        s.refused(Command::Promote { full: false }),
        Rejection::Complete
    );
    s.cmd(Command::Promote { full: true }).unwrap();
    assert_eq!(s.at(), (Phase::Healthy, 100.0, Some(1)));
    assert_eq!(
        s.refused(Command::Promote { full: true }),
        Rejection::Complete
    );
}

#[test]
fn pause_holds_a_timed_pause_and_resume_finishes_it() {
    let mut s = Sim::start(plan(
        "    - set_weight: 10\n    - pause: 1m\n    - set_weight: 100\n",
    ));
    s.idle(30 * SEC);
    let fx = s.cmd(Command::Pause).unwrap();
    assert_eq!(fx.kinds(), ["paused"]);
    assert_eq!(
        fx.events[0].message,
        "paused by the operator at step 2/3: pause 1m"
    );
    assert_eq!(s.at(), (Phase::Paused, 10.0, Some(1)));
    assert!(s.m.paused());
    s.consistent();
    // Pausing again changes nothing; time does not move a held plan.
    assert!(s.cmd(Command::Pause).unwrap().events.is_empty());
    assert!(s.idle(10 * MIN).is_empty());
    // Resume continues the same step (whose time is up by now).
    let fx = s.cmd(Command::Resume).unwrap();
    assert_eq!(fx.kinds(), ["resumed"]);
    assert_eq!(fx.events[0].message, "resumed at step 2/3: pause 1m");
    assert_eq!(s.at(), (Phase::Progressing, 10.0, Some(1)));
    // Resume while progressing is a no-op.
    assert_eq!(s.cmd(Command::Resume).unwrap(), Effects::default());
    assert_eq!(s.tick(0, 0).kinds(), ["step", "completed"]);
}

#[test]
fn put_weight_with_a_plan_holds_it_and_resume_goes_on_with_the_next_step() {
    let mut s = Sim::start(plan(THREE_PAUSES));
    s.cmd(Command::Promote { full: false }).unwrap();
    assert_eq!(s.at(), (Phase::Progressing, 40.0, Some(3)));
    let fx = s.cmd(Command::SetWeight(55.0)).unwrap();
    assert_eq!(fx.kinds(), ["weight"]);
    assert_eq!(
        (fx.events[0].previous_bp, fx.events[0].weight_bp),
        (4000, 5500)
    );
    assert!(fx.events[0].message.ends_with("plan paused until resume"));
    assert!(fx.publish && fx.persist);
    assert_eq!(s.at(), (Phase::Paused, 55.0, Some(3)));
    assert!(s.m.paused());
    s.consistent();
    let fx = s.cmd(Command::Resume).unwrap();
    assert_eq!(fx.kinds(), ["resumed", "step", "paused"]);
    assert_eq!(s.at(), (Phase::Paused, 70.0, Some(5)));
}

#[test]
fn put_weight_during_a_gate_ends_the_gate() {
    let mut s = Sim::start(plan(
        "    - set_weight: 20\n    - analysis: { duration: 1m }\n    - set_weight: 100\n",
    ));
    assert!(s.m.gate(s.now).is_some());
    s.cmd(Command::SetWeight(30.0)).unwrap();
    assert!(s.m.gate(s.now).is_none());
    assert!(
        s.idle(10 * MIN).is_empty(),
        "a held plan neither passes nor times out"
    );
    s.cmd(Command::Resume).unwrap();
    assert_eq!(s.at(), (Phase::Healthy, 100.0, Some(3)));
}

#[test]
fn put_weight_after_completion_is_manual_mode_and_guarded() {
    let mut s = Sim::start(plan("    - set_weight: 100\n"));
    assert_eq!(s.m.guard_off(), Some(GuardOff::PlanComplete));
    let fx = s.cmd(Command::SetWeight(50.0)).unwrap();
    assert!(
        fx.events[0].message.contains("manual mode"),
        "{}",
        fx.events[0].message
    );
    assert_eq!(s.at(), (Phase::Healthy, 50.0, None));
    assert!(s.m.manual());
    assert_eq!(
        s.m.guard_off(),
        None,
        "a canary beside stable is always guarded"
    );
    s.consistent();
    for c in [
        Command::Promote { full: false },
        Command::Pause,
        Command::Resume,
    ] {
        assert_eq!(s.refused(c), Rejection::ManualAfterPlan);
    }
    // A canary failing half its requests is rolled back.
    s.run(MIN, 100, 50);
    assert_eq!(s.at(), (Phase::Degraded, 0.0, None));
    assert!(s.now < 2 * SEC, "took {:?}", s.now);
    // Retry in manual mode: cleared at weight 0.
    s.cmd(Command::Retry).unwrap();
    assert_eq!(s.at(), (Phase::Healthy, 0.0, None));
    assert_eq!(s.m.rollout().mode, Mode::Manual { after_plan: false });
    s.consistent();
}

#[test]
fn manual_abort_is_idempotent() {
    let mut s = Sim::start(settings("routing: { canary_weight: 10 }\n"));
    let fx = s.cmd(Command::Abort).unwrap();
    assert_eq!((fx.kinds(), fx.aborts), (vec!["aborted"], 1));
    let n = &fx.events[0];
    assert_eq!(
        (n.metric, n.previous_bp, n.weight_bp),
        (Some("manual"), 1000, 0)
    );
    assert!(fx.publish && fx.persist);
    assert_eq!(s.at(), (Phase::Degraded, 0.0, None));
    assert_eq!(s.m.message(), "manual abort");
    assert_eq!(s.m.guard_off(), Some(GuardOff::Aborted));
    s.consistent();
    assert_eq!(s.cmd(Command::Abort).unwrap(), Effects::default());
}

#[test]
fn retry_restarts_the_plan_with_fresh_evidence_and_no_override() {
    let mut s = Sim::start(plan(THREE_PAUSES));
    s.cmd(Command::Promote { full: false }).unwrap();
    assert_eq!(s.m.analysis().error_rate.max, Some(2.0));
    s.run(MIN, 400, 50);
    assert!(s.m.aborted());
    assert!(s.m.verdict().is_some());
    assert_eq!(s.at(), (Phase::Degraded, 0.0, Some(3)));
    let fx = s.cmd(Command::Retry).unwrap();
    assert_eq!(fx.kinds(), ["retried", "step", "paused"]);
    assert!(fx.reset_canary_window);
    assert_eq!(s.at(), (Phase::Paused, 10.0, Some(1)));
    assert!(s.m.verdict().is_none());
    assert_eq!(s.m.analysis().error_rate.max, Some(5.0));
    assert_eq!(s.m.message(), "");
    s.consistent();
    // The guard starts from nothing: a healthy canary is not aborted.
    s.run(10 * MIN, 400, 0);
    assert!(!s.m.aborted());
}

#[test]
fn retry_in_manual_mode_clears_at_weight_0() {
    let mut s = Sim::start(settings("routing: { canary_weight: 30 }\n"));
    s.run(MIN, 100, 50);
    assert!(s.m.aborted());
    let fx = s.cmd(Command::Retry).unwrap();
    assert_eq!(fx.kinds(), ["retried"]);
    assert!(fx.reset_canary_window);
    assert_eq!(s.at(), (Phase::Healthy, 0.0, None));
    assert_eq!(s.m.guard_off(), Some(GuardOff::WeightZero));
    assert!(s.m.verdict().is_none());
}

#[test]
fn refusals_in_manual_mode() {
    let mut s = Sim::start(settings("routing: { canary_weight: 10 }\n"));
    for c in [
        Command::Promote { full: false },
        Command::Promote { full: true },
        Command::Pause,
        Command::Resume,
    ] {
        assert_eq!(s.refused(c), Rejection::NoPlan, "{c:?}");
    }
    assert_eq!(s.refused(Command::Retry), Rejection::NotAborted);
    s.cmd(Command::SetWeight(35.5)).unwrap();
    assert_eq!(s.at(), (Phase::Healthy, 35.5, None));
    s.cmd(Command::Abort).unwrap();
    assert_eq!(s.refused(Command::SetWeight(5.0)), Rejection::Aborted);
    assert_eq!(s.refused(Command::Pause), Rejection::NoPlan);
}

#[test]
fn refusals_with_a_plan() {
    let mut s = Sim::start(plan(THREE_PAUSES));
    assert_eq!(s.refused(Command::Retry), Rejection::NotAborted);
    s.cmd(Command::Abort).unwrap();
    for c in [
        Command::Promote { full: false },
        Command::Promote { full: true },
        Command::Pause,
        Command::Resume,
        Command::SetWeight(5.0),
    ] {
        assert_eq!(s.refused(c), Rejection::Aborted, "{c:?}");
    }
    s.cmd(Command::Retry).unwrap();
    s.cmd(Command::Promote { full: true }).unwrap();
    for c in [
        Command::Promote { full: false },
        Command::Promote { full: true },
        Command::Pause,
        Command::Resume,
    ] {
        assert_eq!(s.refused(c), Rejection::Complete, "{c:?}");
    }
    assert_eq!(s.refused(Command::Retry), Rejection::NotAborted);
}

#[test]
fn rejections_read_as_the_caller_would_act_on_them() {
    assert_eq!(
        Rejection::Aborted.to_string(),
        "the canary is aborted: POST /api/v1/retry first"
    );
    assert_eq!(
        Rejection::NotAborted.to_string(),
        "retry is only allowed after an abort"
    );
}
