//! `canary-proxy simulate` end to end: the binary, its flags and its JSON.
use serde_json::Value;
use std::process::Command;

fn simulate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_canary-proxy"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("run canary-proxy simulate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (code, out, err) = simulate(&all);
    assert_eq!(code, 0, "stderr: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn gross_failure_is_detected_within_a_second() {
    let j = json(&[
        "--canary-error-rate",
        "50",
        "--rps",
        "100",
        "--duration",
        "20s",
        "--runs",
        "40",
        "--seed",
        "3",
    ]);
    assert_eq!(j["runs"], 40);
    assert_eq!(j["aborted"], 40);
    assert_eq!(j["abort_fraction"], 1.0);
    let p95 = j["detection_s"]["p95"].as_f64().unwrap();
    assert!(p95 > 0.0 && p95 < 1.0, "p95 {p95}");
    assert!(j["blast_radius"]["max"].as_f64().unwrap() >= 1.0);
}

#[test]
fn worse_canaries_are_caught_sooner() {
    let detect = |rate: &str| {
        let j = json(&[
            "--canary-error-rate",
            rate,
            "--rps",
            "200",
            "--duration",
            "2m",
            "--runs",
            "20",
            "--seed",
            "5",
            "--only",
            "--max-error-rate",
            "2",
        ]);
        assert_eq!(j["aborted"], 20, "rate {rate}: {j}");
        j["detection_s"]["p50"].as_f64().unwrap()
    };
    let (gross, subtle) = (detect("30"), detect("5"));
    assert!(gross < subtle, "30% took {gross}s, 5% took {subtle}s");
}

#[test]
fn healthy_canary_is_not_aborted_and_json_has_nulls() {
    let j = json(&[
        "--canary-error-rate",
        "2.5",
        "--stable-error-rate",
        "1.5",
        "--rps",
        "400",
        "--duration",
        "2m",
        "--runs",
        "20",
        "--seed",
        "11",
    ]);
    assert_eq!(j["aborted"], 0, "{j}");
    assert_eq!(j["abort_fraction"], 0.0);
    assert!(j["detection_s"].is_null());
    assert!(j["blast_radius"].is_null());
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    for k in [
        "runs",
        "aborted",
        "abort_fraction",
        "detection_s",
        "blast_radius",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
}

#[test]
fn latency_regression_is_caught_by_the_ratio_limit() {
    let j = json(&[
        "--canary-latency",
        "lognormal:60ms:0.5",
        "--stable-latency",
        "lognormal:20ms:0.5",
        "--only",
        "--max-p99-ratio",
        "1.5",
        "--rps",
        "200",
        "--duration",
        "1m",
        "--runs",
        "20",
        "--fault-at",
        "10s",
    ]);
    assert_eq!(j["aborted"], 20, "{j}");
    assert!(j["detection_s"]["p95"].as_f64().unwrap() < 5.0, "{j}");
}

#[test]
fn same_seed_same_result_whatever_the_threads() {
    let args = [
        "--canary-error-rate",
        "3",
        "--only",
        "--max-error-rate",
        "2",
        "--rps",
        "100",
        "--duration",
        "1m",
        "--runs",
        "16",
        "--seed",
        "42",
        "--format",
        "json",
    ];
    let (_, a, _) = simulate(&[&args[..], &["--threads", "1"]].concat());
    let (_, b, _) = simulate(&[&args[..], &["--threads", "3"]].concat());
    assert_eq!(a, b);
    let (_, c, _) = simulate(&[&args[..11], &["--seed", "43", "--format", "json"]].concat());
    assert_ne!(a, c, "another seed should give other runs");
}

#[test]
fn bad_flags_are_usage_errors() {
    let (code, _, err) = simulate(&["--canary-latency", "gaussian:20ms"]);
    assert_eq!(code, 2);
    assert!(err.contains("lognormal"), "{err}");
    let (code, _, _) = simulate(&["--canary-error-rate", "150"]);
    assert_eq!(code, 2);
    let (code, _, _) = simulate(&["--max-p99", "soon"]);
    assert_eq!(code, 2);
}
