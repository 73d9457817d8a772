//! Walking the plan: set_weight, timed and indefinite pauses, gates, overrides.
use super::*;

#[test]
fn set_weight_steps_run_at_once_up_to_the_first_wait() {
    let s = Sim::start(plan(
        "    - set_weight: 10\n    - set_weight: 20\n    - pause: 30s\n    - set_weight: 100\n",
    ));
    assert_eq!(s.at(), (Phase::Progressing, 20.0, Some(2)));
    assert_eq!(s.kinds(), ["started", "step", "step", "step"]);
    // Each step event carries the weight of its own step, counted from 1.
    let e = &s.events;
    assert_eq!((e[1].weight_bp, e[1].previous_bp), (1000, 0));
    assert_eq!((e[2].weight_bp, e[2].previous_bp), (2000, 1000));
    assert_eq!(e[1].message, "step 1/4: set weight 10%");
    assert_eq!(e[3].message, "step 3/4: pause 30s");
    s.consistent();
}

#[test]
fn timed_pause_waits_its_duration_then_the_plan_completes() {
    let mut s = Sim::start(plan(
        "    - set_weight: 20\n    - pause: 5m\n    - set_weight: 100\n",
    ));
    assert_eq!(s.idle(5 * MIN - TICK), Vec::<&str>::new());
    assert_eq!(s.at(), (Phase::Progressing, 20.0, Some(1)));
    let fx = s.tick(0, 0);
    assert_eq!(fx.kinds(), ["step", "completed"]);
    assert!(fx.publish && fx.persist);
    assert_eq!(s.at(), (Phase::Healthy, 100.0, Some(3)));
    assert_eq!(s.m.guard_off(), Some(GuardOff::PlanComplete));
    s.consistent();
}

#[test]
fn indefinite_pause_holds_until_promote() {
    let mut s = Sim::start(plan(
        "    - set_weight: 10\n    - pause: {}\n    - set_weight: 50\n",
    ));
    assert_eq!(s.at(), (Phase::Paused, 10.0, Some(1)));
    assert!(s.m.paused(), "a `pause: {{}}` step reads as paused");
    assert_eq!(s.last().kind, "paused");
    s.consistent();
    assert!(s.run(60 * MIN, 100, 0).is_empty());
    assert_eq!(s.at(), (Phase::Paused, 10.0, Some(1)));
    let fx = s.cmd(Command::Promote { full: false }).unwrap();
    assert_eq!(fx.kinds(), ["promoted", "step", "completed"]);
    assert_eq!(
        fx.events[0].message,
        "promoted past step 2/3: pause until promote"
    );
    assert_eq!(s.at(), (Phase::Healthy, 50.0, Some(3)));
    s.consistent();
}

const GATE: &str = "    - set_weight: 20\n    - analysis: { duration: 1m, min_requests: 100 }\n    - set_weight: 100\n";

#[test]
fn gate_passes_after_its_duration_with_evidence_and_a_pass() {
    let mut s = Sim::start(plan(GATE));
    assert_eq!(s.at(), (Phase::Progressing, 20.0, Some(1)));
    let g = s.m.gate(s.now).unwrap();
    assert_eq!(
        (g.duration_ms, g.timeout_ms, g.min_requests),
        (60_000, 300_000, 100)
    );
    // Plenty of passing evidence, but not the duration yet.
    assert!(s.run(MIN - TICK, 200, 0).is_empty());
    let g = s.m.gate(s.now).unwrap();
    assert_eq!((g.result, g.elapsed_ms), (CheckResult::Passed, 59_750));
    assert_eq!(s.tick(50, 0).kinds(), ["step", "step", "completed"]);
    assert!(s
        .events
        .iter()
        .any(|e| e.message.starts_with("analysis gate passed on")));
    assert_eq!(s.at(), (Phase::Healthy, 100.0, Some(3)));
    assert!(s.m.gate(s.now).is_none());
}

#[test]
fn gate_needs_min_requests_of_its_own() {
    let mut s = Sim::start(plan(GATE));
    // 60 requests in the minute: a pass on so few is impossible, so it times out.
    s.run(MIN, 1, 0);
    assert_eq!(s.at(), (Phase::Progressing, 20.0, Some(1)));
}

#[test]
fn gate_failure_aborts_on_the_gate_limits() {
    // 2% errors: under the global 5% (and its half), over the gate's 1%.
    let mut s = Sim::start(plan(
        "    - set_weight: 20\n    - analysis: { duration: 10m, min_requests: 100, error_rate: { max: 1.0 } }\n    - set_weight: 100\n",
    ));
    assert_eq!(
        s.m.analysis().error_rate.max,
        Some(5.0),
        "gate keys apply to the gate only"
    );
    s.run(10 * MIN, 400, 2);
    assert!(s.m.aborted());
    assert_eq!(s.at(), (Phase::Degraded, 0.0, Some(1)));
    let n = s.last();
    assert_eq!(
        (n.kind, n.metric, n.previous_bp),
        ("aborted", Some("error-rate"), 2000)
    );
    assert!(n.message.contains("> max 1"), "{}", n.message);
    s.consistent();
}

#[test]
fn gate_without_a_pass_times_out_to_paused_inconclusive() {
    let mut s = Sim::start(plan(GATE));
    assert!(s.idle(5 * MIN - TICK).is_empty());
    let fx = s.tick(0, 0);
    assert_eq!(fx.kinds(), ["inconclusive"]);
    assert!(fx.persist);
    assert_eq!(s.at(), (Phase::Paused, 20.0, Some(1)));
    assert!(s.m.paused());
    s.consistent();
    // Only once, and it stays there.
    assert!(s.idle(10 * MIN).is_empty());
    // Resume accepts the gate: the plan goes on with the next step.
    let fx = s.cmd(Command::Resume).unwrap();
    assert_eq!(fx.kinds(), ["resumed", "step", "completed"]);
    assert_eq!(s.at(), (Phase::Healthy, 100.0, Some(3)));
}

#[test]
fn inconclusive_gate_can_be_promoted_too() {
    let mut s = Sim::start(plan(GATE));
    s.idle(5 * MIN);
    assert_eq!(s.last().kind, "inconclusive");
    s.cmd(Command::Promote { full: false }).unwrap();
    assert_eq!(s.at(), (Phase::Healthy, 100.0, Some(3)));
}

#[test]
fn held_gate_still_aborts_but_neither_passes_nor_times_out() {
    let mut s = Sim::start(plan(GATE));
    s.cmd(Command::Pause).unwrap();
    assert!(s.run(10 * MIN, 200, 0).is_empty());
    assert_eq!(s.at(), (Phase::Paused, 20.0, Some(1)));
    s.run(MIN, 200, 50);
    assert_eq!(s.at(), (Phase::Degraded, 0.0, Some(1)));
}

#[test]
fn step_overrides_follow_the_position() {
    let mut s = Sim::start(plan(
        "    - set_weight: 10\n      analysis: { error_rate: { max: 1.0 } }\n    - pause: 1m\n    - set_weight: 50\n    - pause: 1m\n    - set_weight: 60\n      analysis: { interval: 1s, error_rate: { max: 3.0 } }\n    - pause: 1m\n",
    ));
    let max = |s: &Sim| s.m.analysis().error_rate.max;
    assert_eq!(max(&s), Some(1.0));
    s.idle(MIN);
    assert_eq!((s.m.step_index(), max(&s)), (Some(3), Some(1.0)));
    // Reaching step 5 changes the interval: the driver rebuilds its windows.
    let mut rebuilt = false;
    while s.m.step_index() == Some(3) {
        rebuilt |= s.tick(0, 0).rebuild_windows;
    }
    assert!(rebuilt);
    assert_eq!((s.m.step_index(), max(&s)), (Some(5), Some(3.0)));
    assert_eq!(s.m.analysis().interval.get(), SEC);
    // The override stays in force after the plan ends.
    s.idle(MIN + SEC);
    assert_eq!((s.m.phase(), max(&s)), (Phase::Healthy, Some(3.0)));
}

#[test]
fn a_plan_ending_below_100_keeps_the_guard_running() {
    let mut s = Sim::start(plan("    - set_weight: 50\n"));
    assert_eq!(s.at(), (Phase::Healthy, 50.0, Some(1)));
    assert_eq!(s.m.guard_off(), None);
    s.run(MIN, 100, 50);
    assert_eq!(s.at(), (Phase::Degraded, 0.0, Some(1)));
}

#[test]
fn a_plan_complete_at_100_stops_the_guard() {
    let mut s = Sim::start(plan("    - set_weight: 100\n"));
    assert_eq!(s.m.guard_off(), Some(GuardOff::PlanComplete));
    assert!(s.run(MIN, 100, 50).is_empty());
    assert!(!s.m.aborted());
    assert!(s.m.verdict().is_none());
}
