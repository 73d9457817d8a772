//! Sliding windows over cumulative readings. The controller reads a version's
//! `VersionStats::reading()` once per `analysis.interval` and calls [`Windows::tick`],
//! which keeps the delta in two rings:
//! - fine: one slot per tick, spanning `analysis.window`, with a running sum so
//!   [`Windows::window`] is free;
//! - coarse: slots of about 10 s spanning one hour, for `/v1/metrics?window=1h`.
//!
//! Nothing here touches the hot path; all of it is owned by the controller task.
use super::Reading;
use crate::config::{MAX_WINDOW_SLOTS, MIN_INTERVAL};
use std::collections::VecDeque;
use std::time::Duration;

/// The longest span [`Windows::span`] serves (`/v1/metrics` serves windows up to 1 h).
pub const MAX_SPAN: Duration = Duration::from_secs(3600);
/// Target width of a coarse slot; rounded to a whole number of ticks.
const COARSE_TARGET: Duration = Duration::from_secs(10);
pub struct Windows {
    interval: Duration,
    window: Duration,
    fine: VecDeque<Reading>,
    fine_cap: usize,
    window_sum: Reading,
    ticks_per_coarse: u32,
    coarse: VecDeque<Reading>,
    coarse_cap: usize,
    /// The coarse slot being filled, `acc_ticks` ticks so far.
    coarse_acc: Reading,
    acc_ticks: u32,
    /// The cumulative reading of the previous tick (zero at start).
    prev: Reading,
    last: Reading,
}

fn slots(span: Duration, slot: Duration) -> usize {
    (span.as_nanos().div_ceil(slot.as_nanos().max(1))).max(1) as usize
}

impl Windows {
    /// `interval`: time between ticks; `window`: span of [`Windows::window`].
    pub fn new(interval: Duration, window: Duration) -> Self {
        let interval = interval.max(MIN_INTERVAL);
        let window = window.max(interval);
        let ticks_per_coarse =
            ((COARSE_TARGET.as_secs_f64() / interval.as_secs_f64()).round() as u32).max(1);
        let coarse_slot = interval * ticks_per_coarse;
        let fine_cap = slots(window, interval);
        let coarse_cap = slots(MAX_SPAN, coarse_slot);
        Windows {
            interval,
            window,
            // Grown as ticks arrive past the validated bound, never reserved
            // up front: an unchecked config must not abort on allocation.
            fine: VecDeque::with_capacity(fine_cap.min(MAX_WINDOW_SLOTS as usize)),
            fine_cap,
            window_sum: Reading::default(),
            ticks_per_coarse,
            coarse: VecDeque::with_capacity(coarse_cap),
            coarse_cap,
            coarse_acc: Reading::default(),
            acc_ticks: 0,
            prev: Reading::default(),
            last: Reading::default(),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The configured `analysis.window` (at least one interval).
    pub fn window_span(&self) -> Duration {
        self.window
    }

    /// Width of a coarse slot (a whole number of intervals, about 10 s).
    pub fn coarse_slot(&self) -> Duration {
        self.interval * self.ticks_per_coarse
    }

    /// One tick: the evidence since the previous tick is `cumulative - previous`.
    /// Counters only grow; a smaller reading (new stats) counts as zero.
    pub fn tick(&mut self, cumulative: &Reading) {
        let delta = cumulative.delta(&self.prev);
        self.prev = cumulative.clone();

        if self.fine.len() == self.fine_cap {
            if let Some(old) = self.fine.pop_front() {
                self.window_sum = self.window_sum.delta(&old);
            }
        }
        self.window_sum.add(&delta);
        self.fine.push_back(delta.clone());

        self.coarse_acc.add(&delta);
        self.acc_ticks += 1;
        if self.acc_ticks == self.ticks_per_coarse {
            if self.coarse.len() == self.coarse_cap {
                self.coarse.pop_front();
            }
            self.coarse.push_back(std::mem::take(&mut self.coarse_acc));
            self.acc_ticks = 0;
        }
        self.last = delta;
    }

    /// Takes `cumulative` as the new baseline without recording anything: for
    /// windows created over stats that already have counts.
    pub fn rebase(&mut self, cumulative: &Reading) {
        self.prev = cumulative.clone();
    }

    /// Evidence of the most recent tick.
    pub fn last_tick(&self) -> &Reading {
        &self.last
    }

    /// Evidence over `analysis.window` (or since start/reset if shorter).
    pub fn window(&self) -> &Reading {
        &self.window_sum
    }

    /// The time [`Windows::window`] actually covers: less than the window until
    /// it has filled.
    pub fn window_covered(&self) -> Duration {
        self.interval * self.fine.len() as u32
    }

    /// Evidence over the last `d` (rounded up to whole slots; coarse slots
    /// beyond `analysis.window`). `None` when `d` exceeds one hour.
    pub fn span(&self, d: Duration) -> Option<Reading> {
        self.span_covered(d).map(|(r, _)| r)
    }

    /// Like [`Windows::span`], with the time the reading really covers (less
    /// than `d` until that much history exists), for rates.
    pub fn span_covered(&self, d: Duration) -> Option<(Reading, Duration)> {
        if d > MAX_SPAN {
            return None;
        }
        let mut sum = Reading::default();
        let want_fine = slots(d, self.interval);
        if want_fine <= self.fine_cap {
            let n = want_fine.min(self.fine.len());
            for r in self.fine.iter().rev().take(n) {
                sum.add(r);
            }
            return Some((sum, self.interval * n as u32));
        }
        sum.add(&self.coarse_acc);
        let partial = self.interval * self.acc_ticks;
        let m = slots(d.saturating_sub(partial), self.coarse_slot()).min(self.coarse.len());
        for r in self.coarse.iter().rev().take(m) {
            sum.add(r);
        }
        Some((sum, partial + self.coarse_slot() * m as u32))
    }

    /// Forgets all history (slots and sums); the baseline stays, so the next
    /// tick counts only what arrives after the reset.
    pub fn reset(&mut self) {
        self.fine.clear();
        self.coarse.clear();
        self.window_sum = Reading::default();
        self.coarse_acc = Reading::default();
        self.acc_ticks = 0;
        self.last = Reading::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::window_slots;

    fn cum(n: u64) -> Reading {
        Reading {
            requests: n,
            errors: n / 10,
            ..Reading::default()
        }
    }

    #[test]
    fn window_slides_and_sums() {
        let mut w = Windows::new(Duration::from_secs(1), Duration::from_secs(3));
        for t in 1..=5 {
            w.tick(&cum(t * 10));
        }
        assert_eq!(w.last_tick().requests, 10);
        assert_eq!(w.window().requests, 30);
        assert_eq!(w.window_covered(), Duration::from_secs(3));
    }

    #[test]
    fn slot_count_matches_the_rings() {
        let (i, w) = (Duration::from_millis(250), Duration::from_secs(60));
        assert_eq!(window_slots(i, w), 240);
        assert_eq!(Windows::new(i, w).fine_cap, 240);
        // Sub-millisecond intervals run at 1 ms.
        assert_eq!(
            window_slots(Duration::from_micros(10), Duration::from_secs(1)),
            1000
        );
        // The configuration that used to abort `run` on allocation: counted, and
        // building it anyway reserves only the bounded capacity.
        let huge = Duration::from_secs(277_000 * 3600);
        assert_eq!(window_slots(MIN_INTERVAL, huge), 997_200_000_000);
        let ring = Windows::new(MIN_INTERVAL, huge);
        assert!(ring.fine.capacity() <= 2 * MAX_WINDOW_SLOTS as usize);
    }

    #[test]
    fn coarse_serves_beyond_window() {
        let mut w = Windows::new(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(w.coarse_slot(), Duration::from_secs(10));
        for t in 1..=35 {
            w.tick(&cum(t));
        }
        // 30 s from 5 ticks of partial coarse slot + 3 coarse slots = 35 s
        let (r, covered) = w.span_covered(Duration::from_secs(30)).unwrap();
        assert_eq!(covered, Duration::from_secs(35));
        assert_eq!(r.requests, 35);
        assert!(w.span(Duration::from_secs(3601)).is_none());
    }
}
