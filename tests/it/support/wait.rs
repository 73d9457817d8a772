//! Waiting for state that changes on a timer (health checks, the guard).
use std::time::Duration;

/// Polls `cond` every 10 ms until it holds or `within` passes (for state that
/// changes on a timer, like health checks). Returns whether it held.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `probe` every 10 ms until `ok` holds for its value, and returns that
/// value; after `within`, panics with `what` and the last value seen.
pub async fn settle<T: std::fmt::Debug>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> T,
    ok: impl Fn(&T) -> bool,
) -> T {
    let end = tokio::time::Instant::now() + within;
    loop {
        let v = probe();
        if ok(&v) {
            return v;
        }
        if tokio::time::Instant::now() >= end {
            panic!("{what}: not reached within {within:?}; last value seen: {v:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
