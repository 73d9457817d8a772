//! Cost of recording one outcome in the hot path: one thread alone, and two
//! threads recording into the same `VersionStats` at once (contention).
//!
//! `cargo bench --bench telemetry`
use canary_proxy::telemetry::{Outcome, VersionStats};
use canary_proxy::Role;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn outcome(i: u64) -> Outcome {
    Outcome {
        method: 0,
        status: if i % 50 == 0 { 502 } else { 200 },
        latency: Some(Duration::from_micros(500 + (i * 7919) % 50_000)),
        evidence: i % 10 != 0,
        error: i % 50 == 0,
    }
}

fn single(c: &mut Criterion) {
    let stats = VersionStats::new(Role::Canary, Arc::from("v2"));
    let mut i = 0u64;
    c.bench_function("record/1-thread", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            stats.record(black_box(&outcome(i)));
        })
    });
}

/// Both threads record `iters` outcomes each into the same stats; the time
/// reported is per record on one thread (wall time / iters).
fn contended(c: &mut Criterion) {
    let stats = Arc::new(VersionStats::new(Role::Canary, Arc::from("v2")));
    c.bench_function("record/2-threads-same-stats", |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(2));
            let other = {
                let (stats, barrier) = (stats.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..iters {
                        stats.record(black_box(&outcome(i)));
                    }
                })
            };
            barrier.wait();
            let start = Instant::now();
            for i in 0..iters {
                stats.record(black_box(&outcome(i)));
            }
            let elapsed = start.elapsed();
            let _ = other.join();
            elapsed
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = single, contended
}
criterion_main!(benches);
