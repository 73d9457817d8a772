//! Hot-path telemetry: per-version atomic counters and histograms, resolved
//! into the routing snapshot when it is built, so recording a request is a few
//! relaxed `fetch_add`s and never a lock or a map lookup.
pub mod apm;
pub mod export;
pub mod figures;
pub mod histogram;
pub mod window;

use crate::Role;
use histogram::{AtomicHistogram, HistogramCounts};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// The nine standard methods plus `OTHER`: a closed label set so clients
/// cannot grow the series count.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER",
];

#[inline]
pub fn method_index(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::CONNECT => 5,
        http::Method::OPTIONS => 6,
        http::Method::TRACE => 7,
        http::Method::PATCH => 8,
        _ => 9,
    }
}

/// Status codes 100..=999 are counted individually (hyper's `StatusCode` range).
const STATUS_MIN: u16 = 100;
const STATUS_SLOTS: usize = 900;

/// What happened to one proxied request, recorded once when its response body
/// ended or was dropped.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub method: usize,
    /// The status the client saw (`499` if it left before the headers).
    pub status: u16,
    /// `None` for `101` upgrades, which are not timed.
    pub latency: Option<Duration>,
    /// Weighted (not override-routed): evidence for the guard.
    pub evidence: bool,
    /// An error by the guard's definition (a status in `analysis.error_statuses`).
    pub error: bool,
}

/// Counters for one `(role, version)`. Shared by every snapshot that routes to it.
///
/// The counters are sharded: each recording thread writes to its own
/// cache-line-aligned shard, so two workers recording at once do not bounce a
/// line between cores (one shared line made a contended `record` ~3× slower).
/// Readers sum the shards.
pub struct VersionStats {
    pub role: Role,
    pub version: Arc<str>,
    shards: Box<[Shard]>,
}

#[repr(align(128))]
struct Shard {
    /// `[method][status - 100]`, every request (weighted and override-routed).
    status: Box<[AtomicU64]>,
    /// Latency of weighted requests; `override_latency` the rest. Exported summed.
    latency: AtomicHistogram,
    override_latency: AtomicHistogram,
    evidence_requests: AtomicU64,
    evidence_errors: AtomicU64,
}

impl Shard {
    fn new() -> Self {
        Shard {
            status: (0..METHODS.len() * STATUS_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: AtomicHistogram::default(),
            override_latency: AtomicHistogram::default(),
            evidence_requests: AtomicU64::new(0),
            evidence_errors: AtomicU64::new(0),
        }
    }
}

/// Shards per `VersionStats`: the core count rounded up to a power of two, at
/// most 8 (each shard holds 72 KiB of status counters).
static SHARDS: LazyLock<usize> = LazyLock::new(|| {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .next_power_of_two()
        .min(8)
});

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard number, assigned round robin on first use (runtime
    /// worker threads live for the whole process).
    static THREAD_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn thread_shard() -> usize {
    THREAD_SHARD.with(|c| {
        let mut i = c.get();
        if i == usize::MAX {
            i = NEXT_THREAD.fetch_add(1, Relaxed);
            c.set(i);
        }
        i
    })
}

/// Cumulative evidence (weighted requests only) at one instant; windows diff these.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Reading {
    pub requests: u64,
    pub errors: u64,
    pub latency: HistogramCounts,
}

impl Reading {
    pub fn delta(&self, earlier: &Reading) -> Reading {
        Reading {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            latency: self.latency.delta(&earlier.latency),
        }
    }

    pub fn add(&mut self, other: &Reading) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.add(&other.latency);
    }

    /// Error rate in percent, `None` without requests.
    pub fn error_rate_pct(&self) -> Option<f64> {
        (self.requests > 0).then(|| 100.0 * self.errors as f64 / self.requests as f64)
    }
}

impl VersionStats {
    pub fn new(role: Role, version: Arc<str>) -> Self {
        Self::with_shards(role, version, *SHARDS)
    }

    /// With `shards` shards (rounded up to a power of two); the benches compare
    /// one shard against the default.
    pub fn with_shards(role: Role, version: Arc<str>, shards: usize) -> Self {
        VersionStats {
            role,
            version,
            shards: (0..shards.max(1).next_power_of_two())
                .map(|_| Shard::new())
                .collect(),
        }
    }

    #[inline]
    pub fn record(&self, o: &Outcome) {
        // shard count is a power of two
        let shard = &self.shards[thread_shard() & (self.shards.len() - 1)];
        let slot = (o
            .status
            .clamp(STATUS_MIN, STATUS_MIN + STATUS_SLOTS as u16 - 1)
            - STATUS_MIN) as usize;
        shard.status[o.method.min(METHODS.len() - 1) * STATUS_SLOTS + slot].fetch_add(1, Relaxed);
        if o.evidence {
            shard.evidence_requests.fetch_add(1, Relaxed);
            if o.error {
                shard.evidence_errors.fetch_add(1, Relaxed);
            }
        }
        if let Some(l) = o.latency {
            if o.evidence {
                shard.latency.record(l)
            } else {
                shard.override_latency.record(l)
            }
        }
    }

    /// Cumulative weighted evidence. O(shards × buckets); never blocks the hot path.
    pub fn reading(&self) -> Reading {
        let mut r = Reading::default();
        for s in self.shards.iter() {
            r.requests += s.evidence_requests.load(Relaxed);
            r.errors += s.evidence_errors.load(Relaxed);
            s.latency.read_into(&mut r.latency);
        }
        r
    }

    /// Latency of every request (weighted + override), for the Prometheus histogram.
    pub fn all_latency(&self) -> HistogramCounts {
        let mut c = HistogramCounts::default();
        for s in self.shards.iter() {
            s.latency.read_into(&mut c);
            s.override_latency.read_into(&mut c);
        }
        c
    }

    /// Non-zero `(method, status, count)` triples, for export and tests.
    pub fn status_counts(&self) -> Vec<(&'static str, u16, u64)> {
        let mut out = Vec::new();
        for i in 0..METHODS.len() * STATUS_SLOTS {
            let n: u64 = self.shards.iter().map(|s| s.status[i].load(Relaxed)).sum();
            if n > 0 {
                out.push((
                    METHODS[i / STATUS_SLOTS],
                    STATUS_MIN + (i % STATUS_SLOTS) as u16,
                    n,
                ));
            }
        }
        out
    }

    /// Total requests of every method and status.
    pub fn total(&self) -> u64 {
        self.shards
            .iter()
            .flat_map(|s| s.status.iter())
            .map(|c| c.load(Relaxed))
            .sum()
    }
}

/// All per-version stats ever created, for export. The mutex is taken only when
/// a snapshot is built (start, reload, new canary version) and on scrape.
#[derive(Default)]
pub struct Registry {
    versions: Mutex<Vec<Arc<VersionStats>>>,
    /// Written by the controller, read on scrape.
    pub gauges: ControllerGauges,
}

impl Registry {
    /// The stats for `(role, version)`, created on first use and reused after,
    /// so counters survive reloads and weight changes.
    pub fn version(&self, role: Role, version: &str) -> Arc<VersionStats> {
        let mut v = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = v.iter().find(|s| s.role == role && &*s.version == version) {
            return s.clone();
        }
        let s = Arc::new(VersionStats::new(role, Arc::from(version)));
        v.push(s.clone());
        s
    }

    pub fn all(&self) -> Vec<Arc<VersionStats>> {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Controller-owned gauges, written by the controller task and read on scrape.
#[derive(Default)]
pub struct ControllerGauges {
    /// Canary weight in basis points.
    pub weight_bp: std::sync::atomic::AtomicU32,
    /// Index into `Phase::ALL`.
    pub phase: std::sync::atomic::AtomicU8,
    pub aborts: AtomicU64,
}
