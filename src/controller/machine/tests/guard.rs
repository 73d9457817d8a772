//! The always-on guard and health: when it judges, what an abort does, and
//! what the status can say about the verdict.
use super::*;

#[test]
fn manual_mode_guard_aborts_a_failing_canary_within_a_second() {
    let mut s = Sim::start(settings("routing: { canary_weight: 50 }\n"));
    assert_eq!(s.m.guard_off(), None);
    s.run(MIN, 100, 50);
    assert!(s.m.aborted());
    assert!(s.now <= SEC, "took {:?}", s.now);
    let n = s.last();
    assert_eq!(
        (n.kind, n.metric, n.previous_bp, n.weight_bp),
        ("aborted", Some("error-rate"), 5000, 0)
    );
    assert!(
        n.message
            .starts_with("RolloutAborted: metric \"error-rate\""),
        "{}",
        n.message
    );
    assert_eq!(s.m.message(), n.message);
    assert_eq!(s.m.verdict().map(|v| v.0.result), Some(CheckResult::Failed));
    s.consistent();
}

#[test]
fn an_abort_is_published_counted_and_persisted() {
    let mut s = Sim::start(settings("routing: { canary_weight: 50 }\n"));
    let fx = loop {
        let fx = s.tick(25, 25);
        if s.m.aborted() {
            break fx;
        }
    };
    assert_eq!((fx.publish, fx.persist, fx.aborts), (true, true, 1));
    assert_eq!(s.m.guard_off(), Some(GuardOff::Aborted));
}

#[test]
fn a_healthy_canary_runs_an_hour_without_an_abort() {
    let mut s = Sim::start(settings("routing: { canary_weight: 50 }\n"));
    s.run(60 * MIN, 100, 0);
    assert!(!s.m.aborted());
    assert_eq!(s.m.verdict().map(|v| v.0.result), Some(CheckResult::Passed));
}

#[test]
fn quiet_ticks_change_nothing_to_publish_or_persist() {
    let mut s = Sim::start(settings("routing: { canary_weight: 50 }\n"));
    let fx = s.tick(10, 0);
    assert_eq!(fx, Effects::default());
}

#[test]
fn the_verdict_says_when_it_was_made() {
    let mut s = Sim::start(plan(
        "    - set_weight: 50\n    - pause: 1m\n    - set_weight: 100\n",
    ));
    assert!(s.m.verdict().is_none());
    s.run(30 * SEC, 100, 0);
    assert_eq!(s.m.verdict().map(|v| v.1), Some(30 * SEC));
    s.run(31 * SEC, 100, 0);
    assert_eq!(s.m.guard_off(), Some(GuardOff::PlanComplete));
    let at = s.m.verdict().map(|v| v.1);
    // The guard stopped: the verdict keeps its time, and the status says why.
    s.run(10 * MIN, 100, 0);
    assert_eq!(s.m.verdict().map(|v| v.1), at);
    assert_eq!(GuardOff::PlanComplete.reason(), "plan complete");
}

#[test]
fn no_guard_at_weight_0() {
    let mut s = Sim::start(settings(""));
    assert_eq!(s.m.guard_off(), Some(GuardOff::WeightZero));
    assert_eq!(GuardOff::WeightZero.reason(), "weight 0");
    s.run(MIN, 100, 100);
    assert!(!s.m.aborted());
    assert!(s.m.verdict().is_none());
}

#[test]
fn canary_with_every_endpoint_down_is_aborted_as_unhealthy() {
    let mut s = Sim::start(settings("routing: { canary_weight: 10 }\n"));
    s.canary_down = true;
    let fx = s.tick(0, 0);
    assert_eq!(fx.kinds(), ["unhealthy", "aborted"]);
    assert_eq!(fx.events[1].metric, Some("canary-unhealthy"));
    assert!(s.m.message().contains("canary unhealthy"));
    assert_eq!(s.at(), (Phase::Degraded, 0.0, None));
    // Reported once per outage.
    assert!(s.idle(MIN).is_empty());
}

#[test]
fn endpoints_down_at_weight_0_is_reported_not_aborted() {
    let mut s = Sim::start(settings(""));
    s.canary_down = true;
    assert_eq!(s.tick(0, 0).kinds(), ["unhealthy"]);
    assert!(!s.m.aborted());
    s.canary_down = false;
    assert!(s.tick(0, 0).events.is_empty());
    s.canary_down = true;
    assert_eq!(s.tick(0, 0).kinds(), ["unhealthy"]);
}
