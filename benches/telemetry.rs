//! Cost of recording one outcome in the hot path: one thread alone, and two
//! threads recording into the same `VersionStats` at once (contention), each
//! with the default sharded stats and with a single shard (the unsharded
//! layout) so the two compare under the same machine load.
//!
//! `cargo bench --bench telemetry`
use canary_proxy::telemetry::{Outcome, VersionStats};
use canary_proxy::Role;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn outcome(i: u64) -> Outcome {
    Outcome {
        method: 0,
        status: if i.is_multiple_of(50) { 502 } else { 200 },
        latency: Some(Duration::from_micros(500 + (i * 7919) % 50_000)),
        evidence: !i.is_multiple_of(10),
        error: i.is_multiple_of(50),
    }
}

fn variants() -> [(&'static str, Arc<VersionStats>); 2] {
    [
        (
            "sharded",
            Arc::new(VersionStats::new(Role::Canary, Arc::from("v2"))),
        ),
        (
            "1-shard",
            Arc::new(VersionStats::with_shards(Role::Canary, Arc::from("v2"), 1)),
        ),
    ]
}

fn single(c: &mut Criterion) {
    for (name, stats) in variants() {
        let mut i = 0u64;
        c.bench_function(&format!("record/1-thread/{name}"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                stats.record(black_box(&outcome(i)));
            })
        });
    }
}

type Job = (Arc<VersionStats>, u64, Arc<Barrier>);

/// A long-lived second recording thread, like a runtime worker: it keeps the
/// shard it was given on its first record.
struct Partner {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Partner {
    fn start() -> Self {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            while let Ok((stats, iters, barrier)) = rx.recv() {
                barrier.wait();
                for i in 0..iters {
                    stats.record(black_box(&outcome(i)));
                }
                if done_tx.send(()).is_err() {
                    return;
                }
            }
        });
        Partner {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        }
    }

    /// Both threads record `iters` outcomes into `stats` at once; returns the
    /// main thread's time (per record: wall time / iters).
    fn run(&self, stats: &Arc<VersionStats>, iters: u64) -> Duration {
        let barrier = Arc::new(Barrier::new(2));
        if let Some(jobs) = &self.jobs {
            jobs.send((stats.clone(), iters, barrier.clone()))
                .expect("partner thread alive");
        }
        barrier.wait();
        let start = Instant::now();
        for i in 0..iters {
            stats.record(black_box(&outcome(i)));
        }
        let elapsed = start.elapsed();
        self.done.recv().expect("partner finished");
        elapsed
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn contended(c: &mut Criterion) {
    let partner = Partner::start();
    for (name, stats) in variants() {
        c.bench_function(&format!("record/2-threads-same-stats/{name}"), |b| {
            b.iter_custom(|iters| partner.run(&stats, iters))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = single, contended
}
criterion_main!(benches);
