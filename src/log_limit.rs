//! Rate limit for repetitive log lines: at most one line per period, with the
//! number of lines held back since the last one written. A dead endpoint
//! failing ten thousand requests a second writes one WARN a second, not ten
//! thousand, and the count says how bad it is.
//!
//! One `LogLimiter` per thing that can storm (an endpoint, abusive client
//! connections): lock-free, two atomics, so it can sit in a hot struct.
//! A neutral low module: upstreams (failed requests) and the proxy (clients
//! closed for h2 abuse) both use it.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The log filter when `RUST_LOG` is not set: `info`, but the h2 crate's
/// own WARN lines off. It writes one per connection it closes for a
/// rapid-reset storm (`remotely-reset pending-accept streams reached limit`),
/// without the peer, so a storm of such connections flooded the log (6 MB in
/// 12 s); the proxy writes its own rate-limited line for those connections.
pub const DEFAULT_FILTER: &str = "info,h2=error";

#[derive(Debug)]
pub struct LogLimiter {
    /// Times are kept as nanoseconds since this instant (atomics hold no `Instant`).
    origin: Instant,
    period_ns: u64,
    /// When the next line may be written (ns since `origin`).
    next: AtomicU64,
    /// Lines held back since the last one written.
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// At most one line per `period`.
    pub fn new(period: Duration) -> Self {
        LogLimiter {
            origin: Instant::now(),
            period_ns: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX),
            next: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// May a line be written now? `Some(n)`: yes, and `n` lines were held
    /// back since the previous one (say so in the line). `None`: hold this
    /// one back (it is counted).
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    /// `admit` at a given time (tests inject it). Times before the limiter
    /// was created count as its creation.
    pub fn admit_at(&self, now: Instant) -> Option<u64> {
        let t = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX);
        let mut next = self.next.load(Relaxed);
        loop {
            if t < next {
                self.suppressed.fetch_add(1, Relaxed);
                return None;
            }
            match self.next.compare_exchange_weak(
                next,
                t.saturating_add(self.period_ns),
                Relaxed,
                Relaxed,
            ) {
                Ok(_) => return Some(self.suppressed.swap(0, Relaxed)),
                Err(seen) => next = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn one_line_per_period_with_the_count_held_back() {
        let l = LogLimiter::new(SEC);
        let t0 = Instant::now();
        assert_eq!(l.admit_at(t0), Some(0));
        for ms in [0, 1, 500, 999] {
            assert_eq!(l.admit_at(t0 + Duration::from_millis(ms)), None, "{ms}ms");
        }
        assert_eq!(l.admit_at(t0 + SEC), Some(4));
        // The count starts again after each line written.
        assert_eq!(l.admit_at(t0 + SEC + Duration::from_millis(10)), None);
        assert_eq!(l.admit_at(t0 + 2 * SEC), Some(1));
        // A quiet spell: the next line goes out at once, nothing held back.
        assert_eq!(l.admit_at(t0 + 60 * SEC), Some(0));
        // The period runs from the last line written, not from a fixed grid.
        assert_eq!(l.admit_at(t0 + 60 * SEC + Duration::from_millis(999)), None);
        assert_eq!(l.admit_at(t0 + 61 * SEC), Some(1));
    }

    #[test]
    fn times_before_creation_and_clock_jumps_are_harmless() {
        let before = Instant::now();
        let l = LogLimiter::new(SEC);
        assert_eq!(l.admit_at(before), Some(0));
        assert_eq!(l.admit_at(before), None);
        let l = LogLimiter::new(Duration::MAX);
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit_at(Instant::now() + 3600 * SEC), None);
    }

    #[test]
    fn concurrent_callers_write_one_line_and_lose_no_count() {
        let l = Arc::new(LogLimiter::new(SEC));
        let t0 = Instant::now();
        let at = t0 + Duration::from_millis(10);
        // (lines admitted, held-back counts those lines reported)
        let (lines, reported) = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter_map(|_| l.admit_at(at))
                        .fold((0u64, 0u64), |(n, r), held| (n + 1, r + held))
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |(n, r), (n2, r2)| (n + n2, r + r2));
        assert_eq!(lines, 1);
        // Every call held back is reported once, by this line or the next.
        let next = l.admit_at(t0 + 2 * SEC).unwrap();
        assert_eq!(reported + next, 3999);
    }
}
