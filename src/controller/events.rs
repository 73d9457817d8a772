//! The controller's event log: the last events, newest last, for
//! `GET /api/v1/events`, the status page and webhooks.
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many events are kept.
pub(crate) const CAPACITY: usize = 200;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// RFC 3339 UTC, millisecond precision.
    pub time: String,
    /// One of `config::EVENT_KINDS`.
    pub kind: &'static str,
    pub message: String,
    pub canary_weight: f64,
}

/// Shared, so publishing the status view after every change copies 200
/// pointers instead of 400 strings (that copy once stalled the request path
/// for hundreds of µs per weight change on a one-thread runtime).
#[derive(Debug, Default)]
pub(crate) struct Events {
    ring: VecDeque<Arc<Event>>,
}

impl Events {
    pub(crate) fn push(
        &mut self,
        kind: &'static str,
        message: String,
        canary_weight: f64,
    ) -> Event {
        let e = Event {
            time: rfc3339(SystemTime::now()),
            kind,
            message,
            canary_weight,
        };
        if self.ring.len() == CAPACITY {
            self.ring.pop_front();
        }
        self.ring.push_back(Arc::new(e.clone()));
        e
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    pub(crate) fn last(&self) -> Option<&Event> {
        self.ring.back().map(|e| &**e)
    }

    pub(crate) fn list(&self) -> Vec<Arc<Event>> {
        self.ring.iter().cloned().collect()
    }
}

/// `2026-11-22T08:00:12.345Z` without a date crate (civil-from-days, H. Hinnant).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_334_412_345);
        assert_eq!(rfc3339(t), "2026-11-22T08:00:12.345Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
    }

    #[test]
    fn ring_keeps_the_newest() {
        let mut ev = Events::default();
        for i in 0..(CAPACITY + 5) {
            ev.push("weight", format!("{i}"), 0.0);
        }
        let l = ev.list();
        assert_eq!(l.len(), CAPACITY);
        assert_eq!(l.last().map(|e| e.message.as_str()), Some("204"));
    }
}
