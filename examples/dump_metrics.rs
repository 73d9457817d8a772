//! Prints the `/metrics` text for a realistic mix of recorded outcomes, without
//! starting any listener: `cargo run --quiet --example dump_metrics | promtool check metrics`
//! (scripts/check-metrics.sh does exactly that).
use canary_proxy::snapshot::Snapshot;
use canary_proxy::telemetry::{export, method_index, Outcome, Registry};
use canary_proxy::Role;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

const CONFIG: &str = r#"
listen: 127.0.0.1:0
upstreams:
  stable:
    version: v1-stable
    endpoints: [http://127.0.0.1:18081, http://127.0.0.1:18082]
  canary:
    version: "v2-canary \"quoted\""
    endpoints: [http://127.0.0.1:18083]
routing:
  canary_weight: 25
"#;

fn main() -> std::process::ExitCode {
    let config = match canary_proxy::config::parse(CONFIG, &|_| None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let registry = Registry::default();
    let snap = match Snapshot::build(&config, &registry, None, 2500, false) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let methods = [
        http::Method::GET,
        http::Method::POST,
        http::Method::PUT,
        http::Method::from_bytes(b"PURGE").unwrap_or(http::Method::GET),
    ];
    for i in 0..5000u64 {
        let role = if i.is_multiple_of(4) {
            Role::Canary
        } else {
            Role::Stable
        };
        let status = match i % 100 {
            0..=2 if role == Role::Canary => 502,
            3 => 504,
            4 => 499,
            5 => 404,
            6 => 503,
            _ => 200,
        };
        let latency = Duration::from_micros(800 + (i * 7919) % 400_000);
        let outcome = Outcome {
            method: method_index(&methods[(i / 4 % 4) as usize]),
            status,
            latency: Some(latency),
            // every 20th request is override-routed (QA traffic): not evidence
            evidence: !i.is_multiple_of(20),
            error: matches!(status, 500..=599),
        };
        snap.backend(role).stats.record(&outcome);
    }
    // a WebSocket upgrade: counted, not timed
    snap.backend(Role::Stable).stats.record(&Outcome {
        method: method_index(&http::Method::GET),
        status: 101,
        latency: None,
        evidence: true,
        error: false,
    });
    // the second stable endpoint is down
    if let Some(e) = snap.backend(Role::Stable).endpoints.endpoints.get(1) {
        e.healthy.store(false, Relaxed);
    }
    let endpoints = snap.endpoint_health();
    registry.gauges.weight_bp.store(2500, Relaxed);
    registry.gauges.phase.store(0, Relaxed);
    registry.gauges.aborts.store(1, Relaxed);
    print!("{}", export::encode(&registry, endpoints));
    std::process::ExitCode::SUCCESS
}
