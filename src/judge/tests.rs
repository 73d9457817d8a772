//! Pure tests of the judge: verdicts from hand-built readings.
use super::*;
use crate::config::{Analysis, Dur, ErrorRateLimits, LatencyLimits};
use crate::telemetry::histogram::bucket_index;
use crate::telemetry::Reading;

/// `n` requests, `errors` of them errors, `slow` of them at `slow_ms`, the rest at `ms`.
fn reading(n: u64, errors: u64, ms: u64, slow: u64, slow_ms: u64) -> Reading {
    let mut r = Reading {
        requests: n,
        errors,
        ..Reading::default()
    };
    r.latency.buckets[bucket_index(ms * 1_000_000)] += n - slow;
    r.latency.buckets[bucket_index(slow_ms * 1_000_000)] += slow;
    r.latency.sum_ns = (n - slow) * ms * 1_000_000 + slow * slow_ms * 1_000_000;
    r
}

fn only(error_rate: ErrorRateLimits, latency: LatencyLimits) -> Analysis {
    Analysis {
        error_rate,
        latency,
        ..Analysis::default()
    }
}

fn no_latency() -> LatencyLimits {
    LatencyLimits {
        max_p99: None,
        max_p99_ratio: None,
    }
}

fn no_errors() -> ErrorRateLimits {
    ErrorRateLimits {
        max: None,
        max_increase: None,
    }
}

fn max_error(max: f64) -> Analysis {
    only(
        ErrorRateLimits {
            max: Some(max),
            max_increase: None,
        },
        no_latency(),
    )
}

/// Feeds `ticks` identical ticks, the window growing with them; returns the last verdict.
fn feed(g: &mut Guard, ticks: usize, tick: &Reading, stable: &Reading) -> Verdict {
    let mut window = Reading::default();
    let mut v = Verdict::inconclusive();
    for _ in 0..ticks {
        window.add(tick);
        v = g.check(tick, &window, stable);
        if v.result == CheckResult::Failed {
            break;
        }
    }
    v
}

#[test]
fn fewer_than_min_requests_is_never_failed() {
    let mut g = Guard::new(&Analysis::default());
    let stable = reading(10_000, 0, 20, 0, 0);
    // 19 requests, every one an error and very slow
    let tick = reading(19, 19, 20, 19, 5000);
    let v = g.check(&tick, &tick, &stable);
    assert_eq!(v.result, CheckResult::Inconclusive);
    assert!(!g.should_abort());
    assert_eq!(g.consecutive_failures(), 0);
}

#[test]
fn empty_and_nonsense_inputs_are_inconclusive() {
    let mut g = Guard::new(&Analysis::default());
    let empty = Reading::default();
    assert_eq!(
        g.check(&empty, &empty, &empty).result,
        CheckResult::Inconclusive
    );
    // more errors than requests: inconsistent, never evidence
    let bad = Reading {
        requests: 100,
        errors: 500,
        ..Reading::default()
    };
    for _ in 0..10 {
        assert_ne!(g.check(&bad, &bad, &empty).result, CheckResult::Failed);
    }
    // NaN confidence: nothing can be concluded
    let mut g = Guard::new(&Analysis {
        confidence: f64::NAN,
        ..Analysis::default()
    });
    let t = reading(1000, 1000, 20, 0, 0);
    assert_eq!(g.check(&t, &t, &t).result, CheckResult::Inconclusive);
    // a NaN limit is ignored, never failed
    let mut g = Guard::new(&max_error(f64::NAN));
    assert_eq!(feed(&mut g, 20, &t, &t).result, CheckResult::Inconclusive);
}

#[test]
fn gross_error_rate_fails_within_a_few_ticks_with_the_spec_message() {
    let mut g = Guard::new(&max_error(2.0));
    let stable = reading(6000, 6, 20, 0, 0);
    let tick = reading(25, 12, 20, 0, 0);
    let mut window = Reading::default();
    let mut checks = 0;
    let v = loop {
        checks += 1;
        window.add(&tick);
        let v = g.check(&tick, &window, &stable);
        if v.result == CheckResult::Failed || checks > 20 {
            break v;
        }
    };
    assert_eq!(v.result, CheckResult::Failed);
    assert!(checks <= 3, "took {checks} checks");
    assert!(g.should_abort());
    let m = v.failed_metric().unwrap();
    assert_eq!(m.metric, "error-rate");
    assert!(m.evidence >= 20);
    let msg = v.abort_message(0, g.consecutive_failures());
    assert!(
        msg.starts_with(
            "RolloutAborted: metric \"error-rate\" assessed Failed due to failed (1) > failureLimit (0); canary error rate "
        ),
        "{msg}"
    );
    assert!(msg.contains("% > max 2.0% (n="), "{msg}");
}

#[test]
fn abort_message_matches_the_spec_example() {
    let v = Verdict {
        result: CheckResult::Failed,
        metrics: vec![MetricVerdict {
            metric: "error-rate",
            result: CheckResult::Failed,
            value: Some(2.68),
            limit: 2.0,
            evidence: 6000,
            baseline: None,
            slow_pct: None,
        }],
    };
    assert_eq!(
        v.abort_message(0, 1),
        "RolloutAborted: metric \"error-rate\" assessed Failed due to failed (1) > failureLimit (0); canary error rate 2.68% > max 2.0% (n=6000)"
    );
}

#[test]
fn healthy_error_rate_passes() {
    let mut g = Guard::new(&max_error(2.0));
    let stable = reading(6000, 6, 20, 0, 0);
    let window = reading(6000, 12, 20, 0, 0);
    let tick = reading(25, 0, 20, 0, 0);
    let v = g.check(&tick, &window, &stable);
    assert_eq!(v.result, CheckResult::Passed);
    assert_eq!(v.metrics[0].result, CheckResult::Passed);
    assert!((v.metrics[0].value.unwrap() - 0.2).abs() < 1e-9);
    // the same rate over too little evidence is not yet a pass
    let thin = reading(100, 0, 20, 0, 0);
    assert_eq!(
        g.check(&tick, &thin, &stable).result,
        CheckResult::Inconclusive
    );
}

#[test]
fn error_rate_increase_needs_stable_evidence_then_fails() {
    let a = only(
        ErrorRateLimits {
            max: None,
            max_increase: Some(1.0),
        },
        no_latency(),
    );
    let tick = reading(50, 10, 20, 0, 0);
    // stable below min_requests: inconclusive however bad the canary looks
    let mut g = Guard::new(&a);
    let thin_stable = reading(10, 0, 20, 0, 0);
    assert_eq!(
        feed(&mut g, 40, &tick, &thin_stable).result,
        CheckResult::Inconclusive
    );
    let mut g = Guard::new(&a);
    let stable = reading(10_000, 10, 20, 0, 0);
    let v = feed(&mut g, 40, &tick, &stable);
    assert_eq!(v.result, CheckResult::Failed);
    let m = v.failed_metric().unwrap();
    assert_eq!(m.metric, "error-rate-increase");
    assert!((m.baseline.unwrap() - 0.1).abs() < 1e-9);
    assert!(v.abort_message(0, 1).contains("points above stable 0.10%"));
}

#[test]
fn latency_p99_fails_and_passes() {
    let a = only(
        no_errors(),
        LatencyLimits {
            max_p99: Some(Dur::millis(500)),
            max_p99_ratio: None,
        },
    );
    let stable = reading(10_000, 0, 20, 0, 0);
    let mut g = Guard::new(&a);
    // 10% of requests take 2s
    let v = feed(&mut g, 40, &reading(50, 0, 20, 5, 2000), &stable);
    assert_eq!(v.result, CheckResult::Failed);
    let m = v.failed_metric().unwrap();
    assert_eq!(m.metric, "latency-p99");
    assert!(m.slow_pct.unwrap() > 5.0);
    assert!(v.abort_message(0, 1).contains("max_p99 500ms"));
    // all fast, plenty of evidence: passed
    let mut g = Guard::new(&a);
    let window = reading(5000, 0, 20, 0, 0);
    let v = g.check(&reading(50, 0, 20, 0, 0), &window, &stable);
    assert_eq!(v.result, CheckResult::Passed);
}

#[test]
fn latency_ratio_fails_against_stable_p99() {
    let a = only(
        no_errors(),
        LatencyLimits {
            max_p99: None,
            max_p99_ratio: Some(1.5),
        },
    );
    // stable p99 40ms (2% of requests)
    let stable = reading(10_000, 0, 20, 200, 40);
    let mut g = Guard::new(&a);
    // canary: everything at 100ms, 2.5× stable's p99
    let v = feed(&mut g, 40, &reading(50, 0, 100, 0, 0), &stable);
    assert_eq!(v.result, CheckResult::Failed);
    let m = v.failed_metric().unwrap();
    assert_eq!(m.metric, "latency-p99-ratio");
    // the same distribution as stable passes once there is evidence
    let mut g = Guard::new(&a);
    let same = reading(10_000, 0, 20, 200, 40);
    let v = g.check(&reading(50, 0, 20, 0, 0), &same, &stable);
    assert_eq!(v.metrics[0].result, CheckResult::Passed, "{v:?}");
}

#[test]
fn failure_limit_needs_consecutive_failures() {
    let a = Analysis {
        failure_limit: 1,
        ..max_error(2.0)
    };
    let mut g = Guard::new(&a);
    let stable = reading(6000, 6, 20, 0, 0);
    let tick = reading(100, 60, 20, 0, 0);
    let v = feed(&mut g, 5, &tick, &stable);
    assert_eq!(v.result, CheckResult::Failed);
    assert!(!g.should_abort());
    let v = g.check(&tick, &tick, &stable);
    assert_eq!(v.result, CheckResult::Failed);
    assert!(g.should_abort());
    assert_eq!(v.abort_message(1, 2).split(';').next().unwrap(),
        "RolloutAborted: metric \"error-rate\" assessed Failed due to failed (2) > failureLimit (1)");
    g.reset();
    assert!(!g.should_abort());
}

#[test]
fn set_limits_resets_only_on_change() {
    let a = max_error(2.0);
    let mut g = Guard::new(&a);
    let stable = reading(6000, 6, 20, 0, 0);
    let tick = reading(100, 60, 20, 0, 0);
    feed(&mut g, 5, &tick, &stable);
    assert_eq!(g.consecutive_failures(), 1);
    // same limits, other min_requests: evidence kept
    g.set_limits(&Analysis {
        min_requests: 30,
        ..a.clone()
    });
    assert_eq!(g.consecutive_failures(), 1);
    assert_eq!(g.analysis().min_requests, 30);
    // a changed limit starts the sequential statistics afresh
    g.set_limits(&max_error(10.0));
    assert_eq!(g.consecutive_failures(), 0);
    let ok = reading(1, 0, 20, 0, 0);
    assert_ne!(g.check(&ok, &ok, &stable).result, CheckResult::Failed);
}

#[test]
fn verdict_serializes_for_the_status_api() {
    let mut g = Guard::new(&Analysis::default());
    let t = reading(100, 0, 20, 0, 0);
    let v = g.check(&t, &t, &t);
    let j = serde_json::to_value(&v).unwrap();
    assert!(j["result"].is_string());
    let m = &j["metrics"][0];
    for k in ["metric", "result", "value", "limit", "evidence"] {
        assert!(m.get(k).is_some(), "missing {k} in {m}");
    }
}

#[test]
fn argo_weight_follows_the_interpolation() {
    let stable = reading(1000, 0, 20, 0, 0);
    // identical: safety 1 → 100
    let a = argo_weight(&stable, &stable, Some(CheckResult::Passed), false);
    assert_eq!((a.weight, a.status), (100.0, "proceed"));
    assert_eq!((a.error_delta, a.latency_delta), (0.0, 0.0));
    // 2% more errors: errorPenalty 0.6 → W = round1(5 + 0.6·95) = 62
    let canary = reading(1000, 20, 20, 0, 0);
    let a = argo_weight(&canary, &stable, None, false);
    assert!((a.error_delta - 0.02).abs() < 1e-12);
    assert!((a.error_rate - 2.0).abs() < 1e-9);
    assert_eq!(a.weight, 62.0);
    // 10% more errors: errorPenalty floors at 0.2 → 5 + 0.2·95 = 24
    let a = argo_weight(&reading(1000, 100, 20, 0, 0), &stable, None, false);
    assert_eq!(a.weight, 24.0);
    // latency: p99 from buckets; delta = c/s − 1, penalty exp(−10·delta)
    let slow = reading(1000, 0, 40, 0, 0);
    let a = argo_weight(&slow, &stable, None, false);
    let c = slow.latency.quantile(0.99).unwrap().as_secs_f64();
    let s = stable.latency.quantile(0.99).unwrap().as_secs_f64();
    let delta = c / s - 1.0;
    assert!((a.latency_delta - delta).abs() < 1e-12);
    let safety = ((-delta * 10.0f64).exp()).max(0.1);
    let want = ((5.0 + safety * 95.0) * 10.0).round() / 10.0;
    assert_eq!(a.weight, want.clamp(5.0, 100.0));
    assert_eq!(a.weight, 14.5); // safety floors at 0.1
    assert!((a.p99_latency_ms - c * 1e3).abs() < 1e-9);
    // Failed or aborted: 0 and abort
    let a = argo_weight(&stable, &stable, Some(CheckResult::Failed), false);
    assert_eq!((a.weight, a.status), (0.0, "abort"));
    let a = argo_weight(&stable, &stable, None, true);
    assert_eq!((a.weight, a.status), (0.0, "abort"));
    let j = serde_json::to_value(&a).unwrap();
    for k in [
        "weight",
        "status",
        "errorRate",
        "p99LatencyMs",
        "errorDelta",
        "latencyDelta",
    ] {
        assert!(j.get(k).is_some(), "missing {k}");
    }
}
