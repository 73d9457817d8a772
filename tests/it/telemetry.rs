//! Telemetry: exact counters, quantile accuracy, sliding windows, `/v1/metrics`
//! figures and the Prometheus exposition.
use canary_proxy::snapshot::Snapshot;
use canary_proxy::telemetry::apm::{apm_metrics, parse_window, WindowError};
use canary_proxy::telemetry::export;
use canary_proxy::telemetry::figures::version_figures;
use canary_proxy::telemetry::histogram::HistogramCounts;
use canary_proxy::telemetry::window::Windows;
use canary_proxy::telemetry::{method_index, Outcome, Reading, Registry, VersionStats};
use canary_proxy::Role;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

fn outcome(method: &http::Method, status: u16, ms: Option<u64>, evidence: bool) -> Outcome {
    Outcome {
        method: method_index(method),
        status,
        latency: ms.map(Duration::from_millis),
        evidence,
        // the proxy's default rule (`error_statuses: [5xx]`): 5xx are errors, 499 is not
        error: (500..600).contains(&status),
    }
}

/// `(method, status) -> (count, override?)` mix with proxy-generated codes.
const MIX: [(&str, u16, u64, bool); 8] = [
    ("GET", 200, 900, false),
    ("GET", 502, 17, false),
    ("POST", 504, 9, false),
    ("GET", 499, 5, false),
    ("PUT", 503, 3, false),
    ("PURGE", 200, 4, false),
    ("GET", 200, 50, true),
    ("GET", 500, 12, true),
];

fn record_mix(stats: &VersionStats) {
    for (m, status, n, via_override) in MIX {
        let method = http::Method::from_bytes(m.as_bytes()).expect("valid method token");
        for i in 0..n {
            stats.record(&outcome(&method, status, Some(1 + i % 50), !via_override));
        }
    }
}

#[test]
fn exact_counts_after_known_outcomes() {
    let stats = VersionStats::new(Role::Canary, Arc::from("v2"));
    record_mix(&stats);
    let counts: HashMap<(&str, u16), u64> = stats
        .status_counts()
        .into_iter()
        .map(|(m, s, n)| ((m, s), n))
        .collect();
    assert_eq!(counts[&("GET", 200)], 950);
    assert_eq!(counts[&("GET", 502)], 17);
    assert_eq!(counts[&("POST", 504)], 9);
    assert_eq!(counts[&("GET", 499)], 5);
    assert_eq!(counts[&("PUT", 503)], 3);
    assert_eq!(
        counts[&("OTHER", 200)],
        4,
        "unknown methods fold into OTHER"
    );
    assert_eq!(counts[&("GET", 500)], 12);
    assert_eq!(counts.len(), 7);
    assert_eq!(stats.total(), 1000);

    // evidence: weighted only; 499 is not an error, override traffic is not evidence
    let r = stats.reading();
    assert_eq!(r.requests, 938);
    assert_eq!(r.errors, 17 + 9 + 3);
    assert_eq!(r.latency.count(), 938);
    assert_eq!(stats.all_latency().count(), 1000);
}

#[test]
fn concurrent_records_are_all_counted() {
    let stats = Arc::new(VersionStats::new(Role::Stable, Arc::from("v1")));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let stats = stats.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u64 {
                    let status = if (i + t).is_multiple_of(10) { 502 } else { 200 };
                    stats.record(&outcome(&http::Method::GET, status, Some(3), true));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("recording thread");
    }
    let r = stats.reading();
    assert_eq!(r.requests, 40_000);
    assert_eq!(r.errors, 4_000);
    assert_eq!(r.latency.count(), 40_000);
    assert_eq!(r.latency.sum_ns, 40_000 * 3_000_000);
    assert_eq!(stats.total(), 40_000);
}

fn counts_of(samples: &[Duration]) -> HistogramCounts {
    let stats = VersionStats::new(Role::Canary, Arc::from("q"));
    for &d in samples {
        stats.record(&Outcome {
            method: 0,
            status: 200,
            latency: Some(d),
            evidence: true,
            error: false,
        });
    }
    stats.reading().latency
}

fn true_quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn assert_quantiles_within_10pct(name: &str, mut samples: Vec<Duration>) {
    let h = counts_of(&samples);
    samples.sort();
    for q in [0.5, 0.9, 0.99, 0.999] {
        let truth = true_quantile(&samples, q).as_secs_f64();
        let got = h.quantile(q).expect("non-empty").as_secs_f64();
        let err = (got / truth - 1.0).abs();
        assert!(
            err < 0.10,
            "{name}: q{q} got {got}s, true {truth}s ({:.1}%)",
            err * 100.0
        );
    }
    let mean = samples.iter().map(|d| d.as_secs_f64()).sum::<f64>() / samples.len() as f64;
    let got = h.mean_ms().expect("non-empty") / 1e3;
    assert!((got / mean - 1.0).abs() < 1e-6, "{name}: mean is exact");
}

#[test]
fn quantiles_within_10pct_from_1ms_to_10s() {
    let mut rng = StdRng::seed_from_u64(7);
    let uniform: Vec<Duration> = (0..50_000)
        .map(|_| Duration::from_secs_f64(rng.random_range(0.001..10.0)))
        .collect();
    assert_quantiles_within_10pct("uniform 1ms..10s", uniform);

    for (median, sigma) in [(0.002, 0.3), (0.020, 0.5), (0.3, 1.0), (2.0, 0.4)] {
        let d = LogNormal::new(f64::ln(median), sigma).expect("valid lognormal");
        let s: Vec<Duration> = (0..50_000)
            .map(|_| Duration::from_secs_f64(d.sample(&mut rng).clamp(0.001, 10.0)))
            .collect();
        assert_quantiles_within_10pct(&format!("lognormal {median}s σ{sigma}"), s);
    }

    for c in [0.001, 0.0137, 0.25, 3.3, 10.0] {
        assert_quantiles_within_10pct(
            &format!("const {c}s"),
            vec![Duration::from_secs_f64(c); 1000],
        );
    }
}

fn reading(requests: u64, errors: u64, ms: u64) -> Reading {
    let stats = VersionStats::new(Role::Canary, Arc::from("w"));
    for i in 0..requests {
        let status = if i < errors { 500 } else { 200 };
        stats.record(&outcome(&http::Method::GET, status, Some(ms), true));
    }
    stats.reading()
}

#[test]
fn window_slots_expire_after_window() {
    let interval = Duration::from_millis(250);
    let mut w = Windows::new(interval, Duration::from_secs(1)); // 4 slots
    let stats = VersionStats::new(Role::Canary, Arc::from("v2"));
    // tick t carries t requests: 1, 2, 3, ...
    for t in 1..=4u64 {
        for _ in 0..t {
            stats.record(&outcome(&http::Method::GET, 500, Some(10), true));
        }
        w.tick(&stats.reading());
        assert_eq!(w.last_tick().requests, t);
    }
    assert_eq!(w.window().requests, 1 + 2 + 3 + 4);
    assert_eq!(w.window_covered(), Duration::from_secs(1));
    // two more ticks: slots 1 and 2 drop out
    for t in 5..=6u64 {
        for _ in 0..t {
            stats.record(&outcome(&http::Method::GET, 200, Some(10), true));
        }
        w.tick(&stats.reading());
    }
    assert_eq!(w.window().requests, 3 + 4 + 5 + 6);
    assert_eq!(w.window().errors, 3 + 4);
    assert_eq!(w.window().latency.count(), 3 + 4 + 5 + 6);
    // idle ticks empty the window entirely
    for _ in 0..4 {
        w.tick(&stats.reading());
    }
    assert_eq!(w.window(), &Reading::default());
    assert_eq!(w.last_tick().requests, 0);

    // reset forgets history but keeps the baseline
    for _ in 0..7 {
        stats.record(&outcome(&http::Method::GET, 200, Some(10), true));
    }
    w.tick(&stats.reading());
    assert_eq!(w.window().requests, 7);
    w.reset();
    assert_eq!(w.window().requests, 0);
    stats.record(&outcome(&http::Method::GET, 200, Some(10), true));
    w.tick(&stats.reading());
    assert_eq!(w.window().requests, 1, "only what came after the reset");
}

#[test]
fn span_queries_fine_and_coarse() {
    // 250 ms ticks, 60 s window; coarse slots of 10 s over 1 h
    let interval = Duration::from_millis(250);
    let mut w = Windows::new(interval, Duration::from_secs(60));
    assert_eq!(w.coarse_slot(), Duration::from_secs(10));
    let mut cumulative = Reading::default();
    let (slow, fast) = (reading(2, 0, 5), reading(4, 0, 5));
    // 20 minutes at 2 requests per tick (8 req/s), then 5 minutes at 4 per tick
    for tick in 0..(25 * 60 * 4) {
        cumulative.add(if tick < 20 * 60 * 4 { &slow } else { &fast });
        w.tick(&cumulative);
    }
    let (r, covered) = w.span_covered(Duration::from_secs(30)).expect("≤ 1h");
    assert_eq!((r.requests, covered), (30 * 4 * 4, Duration::from_secs(30)));
    assert_eq!(w.window().requests, 60 * 4 * 4);
    // 5 minutes: beyond the window, from coarse slots, exact on slot boundaries
    let (r, covered) = w.span_covered(Duration::from_secs(300)).expect("≤ 1h");
    assert_eq!(covered, Duration::from_secs(300));
    assert_eq!(r.requests, 300 * 4 * 4);
    // 10 minutes straddles the rate change
    let r = w.span(Duration::from_secs(600)).expect("≤ 1h");
    assert_eq!(r.requests, 300 * 16 + 300 * 8);
    // 1 h asked, 25 min of history: the covered time says so
    let (r, covered) = w.span_covered(Duration::from_secs(3600)).expect("≤ 1h");
    assert_eq!(covered, Duration::from_secs(25 * 60));
    assert_eq!(r.requests, 20 * 60 * 8 + 5 * 60 * 16);
    assert!(w.span(Duration::from_secs(3601)).is_none());
}

#[test]
fn apm_values_for_a_known_mix() {
    // 6000 requests over 5 minutes, 161 errors, all at 45 ms
    let r = reading(6000, 161, 45);
    let m = apm_metrics(&r, Duration::from_secs(300));
    assert_eq!(m.error_rate, 2.68);
    assert_eq!(m.response_time, 45.0);
    assert_eq!(m.throughput, 1200.0);
    let json = serde_json::to_value(m).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"errorRate": 2.68, "responseTime": 45.0, "throughput": 1200.0})
    );
    // nothing recorded: zeros, never NaN
    let empty = apm_metrics(&Reading::default(), Duration::from_secs(60));
    assert_eq!(
        (empty.error_rate, empty.response_time, empty.throughput),
        (0.0, 0.0, 0.0)
    );

    assert_eq!(parse_window("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_window("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_window("1h"), Ok(Duration::from_secs(3600)));
    assert!(matches!(parse_window("61m"), Err(WindowError::TooLong(_))));
    assert!(matches!(parse_window("2h"), Err(WindowError::TooLong(_))));
    assert!(matches!(parse_window("0s"), Err(WindowError::Zero)));
    assert!(matches!(parse_window("5"), Err(WindowError::Invalid(..))));
    assert!(matches!(
        parse_window("fast"),
        Err(WindowError::Invalid(..))
    ));
}

#[test]
fn status_figures() {
    let r = reading(1200, 30, 20);
    let f = version_figures(&r, Duration::from_secs(60));
    assert_eq!((f.requests, f.errors, f.error_rate), (1200, 30, 2.5));
    assert_eq!(f.rps, 20.0);
    let p50 = f.p50_ms.expect("timed requests");
    let p99 = f.p99_ms.expect("timed requests");
    assert!((20.0..22.0).contains(&p50) && (20.0..22.0).contains(&p99));
    let json = serde_json::to_value(&f).expect("serializes");
    for key in [
        "requests",
        "errors",
        "error_rate",
        "p50_ms",
        "p99_ms",
        "rps",
    ] {
        assert!(json.get(key).is_some(), "{key} missing in {json}");
    }
    let empty = version_figures(&Reading::default(), Duration::ZERO);
    assert_eq!((empty.p99_ms, empty.rps), (None, 0.0));
}

const CONFIG: &str = r#"
listen: 127.0.0.1:0
upstreams:
  stable:
    version: v1-stable
    endpoints: [http://127.0.0.1:18081, http://127.0.0.1:18082]
  canary:
    version: v2-canary
    endpoints: [http://127.0.0.1:18083]
"#;

/// One exposition sample: `name{k="v",...} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let (series, value) = line.rsplit_once(' ').ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse::<f64>().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}').ok_or("unclosed labels")?),
        None => (series, ""),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad name {name:?}"));
    }
    let mut map = HashMap::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        // value runs to the first unescaped quote
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or("unterminated label value")?;
        map.insert(k.to_string(), after[..end].to_string());
        rest = after[end + 1..].trim_start_matches(',');
    }
    Ok(Sample {
        name: name.to_string(),
        labels: map,
        value,
    })
}

#[test]
fn exported_text_has_spec_families_and_parses() {
    let config = canary_proxy::config::parse(CONFIG, &|_| None).expect("valid config");
    let registry = Registry::default();
    let snap = Snapshot::build(&config, &registry, None, 0, false).expect("snapshot");
    record_mix(&snap.backend(Role::Canary).stats);
    let mut rng = StdRng::seed_from_u64(11);
    let lognormal = LogNormal::new(f64::ln(0.040), 0.6).expect("valid lognormal");
    let mut stable_lat: Vec<f64> = Vec::new();
    for _ in 0..20_000 {
        let s = lognormal.sample(&mut rng);
        stable_lat.push(s);
        snap.backend(Role::Stable).stats.record(&Outcome {
            method: 0,
            status: 200,
            latency: Some(Duration::from_secs_f64(s)),
            evidence: true,
            error: false,
        });
    }
    // the second stable endpoint is down
    snap.backend(Role::Stable).endpoints.endpoints[1]
        .healthy
        .store(false, Relaxed);
    let endpoints = snap.endpoint_health();
    registry.gauges.weight_bp.store(2550, Relaxed);
    registry.gauges.phase.store(3, Relaxed);
    registry.gauges.aborts.store(2, Relaxed);

    let text = export::encode(&registry, endpoints);
    assert!(
        !text.contains("# EOF"),
        "Prometheus 0.0.4 text, not OpenMetrics"
    );
    for (family, kind) in [
        ("http_requests_total", "counter"),
        ("http_request_duration_seconds", "histogram"),
        ("canary_weight", "gauge"),
        ("canary_phase", "gauge"),
        ("canary_aborts_total", "counter"),
        ("upstream_endpoint_healthy", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "TYPE of {family}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "HELP of {family}"
        );
    }
    let samples: Vec<Sample> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| parse_sample(l).unwrap_or_else(|e| panic!("line {l:?}: {e}")))
        .collect();
    let find = |name: &str, labels: &[(&str, &str)]| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    };
    let one = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let found = find(name, labels);
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    };

    let c = [("role", "canary"), ("version", "v2-canary")];
    let req = |m: &str, s: &str| {
        let mut l = c.to_vec();
        l.extend([("method", m), ("status", s)]);
        one("http_requests_total", &l)
    };
    assert_eq!(req("GET", "200"), 950.0);
    assert_eq!(req("GET", "502"), 17.0);
    assert_eq!(req("POST", "504"), 9.0);
    assert_eq!(req("GET", "499"), 5.0);
    assert_eq!(req("OTHER", "200"), 4.0);
    for s in find("http_requests_total", &[]) {
        let mut keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["method", "role", "status", "version"]);
    }

    // histogram: weighted + override, cumulative buckets ending at +Inf == count
    assert_eq!(one("http_request_duration_seconds_count", &c), 1000.0);
    let buckets = find("http_request_duration_seconds_bucket", &c);
    assert_eq!(buckets.len(), 154);
    let mut prev = 0.0;
    for b in &buckets {
        assert!(b.value >= prev, "cumulative");
        prev = b.value;
    }
    assert_eq!(
        buckets.last().map(|b| b.labels["le"].as_str()),
        Some("+Inf")
    );
    assert_eq!(prev, 1000.0);

    // histogram_quantile as Prometheus computes it, within 10% of the truth
    let s = [("role", "stable"), ("version", "v1-stable")];
    let sb: Vec<(f64, f64)> = find("http_request_duration_seconds_bucket", &s)
        .iter()
        .map(|b| {
            let le = match b.labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("numeric le"),
            };
            (le, b.value)
        })
        .collect();
    stable_lat.sort_by(f64::total_cmp);
    for q in [0.5, 0.99] {
        let truth = stable_lat[(q * stable_lat.len() as f64) as usize - 1];
        let got = histogram_quantile(q, &sb);
        assert!((got / truth - 1.0).abs() < 0.1, "q{q}: {got} vs {truth}");
    }

    assert_eq!(one("canary_weight", &[]), 25.5);
    assert_eq!(one("canary_phase", &[("phase", "Degraded")]), 1.0);
    for p in ["Progressing", "Paused", "Healthy"] {
        assert_eq!(one("canary_phase", &[("phase", p)]), 0.0);
    }
    assert_eq!(one("canary_aborts_total", &[]), 2.0);
    let ep = |role: &str, e: &str| {
        one(
            "upstream_endpoint_healthy",
            &[("role", role), ("endpoint", e)],
        )
    };
    assert_eq!(ep("stable", "http://127.0.0.1:18081"), 1.0);
    assert_eq!(ep("stable", "http://127.0.0.1:18082"), 0.0);
    assert_eq!(ep("canary", "http://127.0.0.1:18083"), 1.0);
}

/// Prometheus' `histogram_quantile`: linear interpolation inside the bucket.
fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            return lower.0 + (le - lower.0) * (rank - lower.1) / (count - lower.1);
        }
        lower = (le, count);
    }
    lower.0
}
