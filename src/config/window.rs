//! The bound on the guard's sliding window, shared by validation and the
//! telemetry rings that allocate it (so `check` and `run` agree).
use std::time::Duration;

/// Shortest tick the controller runs (a shorter `analysis.interval` is this).
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Most fine slots (`analysis.window` / `analysis.interval`) a config may ask
/// for. A slot is ~1.3 KB (a latency histogram) per version, so this caps the
/// rings at ~130 MB each; config validation refuses more.
pub const MAX_WINDOW_SLOTS: u64 = 100_000;

/// Fine slots the telemetry window keeps for `window` at `interval`, unclamped (so
/// validation sees the true figure, however large).
pub fn window_slots(interval: Duration, window: Duration) -> u128 {
    let interval = interval.max(MIN_INTERVAL);
    window
        .max(interval)
        .as_nanos()
        .div_ceil(interval.as_nanos())
}
