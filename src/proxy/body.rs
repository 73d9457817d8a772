//! Response bodies and the per-request recorder: exactly one `Outcome` per
//! request, written when the response body ends, fails, or is dropped.
use super::conn_io::{Busy, Waiting};
use crate::telemetry::{Outcome, VersionStats};
use crate::upstream::{BodyError, UpstreamResponseBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// Status recorded when the client left before the response headers.
pub(crate) const CLIENT_CLOSED: u16 = 499;

/// Records one request's outcome exactly once: explicitly via `finish`, or on drop.
pub(crate) struct Recorder {
    stats: Arc<VersionStats>,
    method: usize,
    start: Instant,
    evidence: bool,
    /// Status the client saw; `CLIENT_CLOSED` until response headers exist.
    status: u16,
    /// Counts as an error whatever the status (connect failure, timeout, body failure).
    forced_error: bool,
    error_statuses_hit: bool,
    timed: bool,
    done: bool,
}

impl Recorder {
    pub(crate) fn new(
        stats: Arc<VersionStats>,
        method: usize,
        start: Instant,
        evidence: bool,
    ) -> Self {
        Recorder {
            stats,
            method,
            start,
            evidence,
            status: CLIENT_CLOSED,
            forced_error: false,
            error_statuses_hit: false,
            timed: true,
            done: false,
        }
    }

    /// The response headers are about to go out with `status`; `is_error` is
    /// whether that status is in `error_statuses`.
    pub(crate) fn responded(&mut self, status: u16, is_error: bool) {
        self.status = status;
        self.error_statuses_hit = is_error;
        // 101 upgrades are not timed: the tunnel can live for hours.
        self.timed = status != 101;
    }

    /// Connect failure, upstream timeout, or upstream failure after headers.
    pub(crate) fn force_error(&mut self) {
        self.forced_error = true;
    }

    pub(crate) fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        // The benchmark build without recording (`benches/compare.sh` runs
        // both side by side to price the telemetry); never for production.
        if cfg!(feature = "bench-no-record") {
            return;
        }
        // A client that left before the headers (499) is not the upstream's fault.
        let error = self.status != CLIENT_CLOSED && (self.forced_error || self.error_statuses_hit);
        self.stats.record(&Outcome {
            method: self.method,
            status: self.status,
            latency: self.timed.then(|| self.start.elapsed()),
            evidence: self.evidence,
            error,
        });
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What a response carries: the upstream's streamed body or a short local text.
enum Inner {
    Upstream(UpstreamResponseBody),
    Full(Option<Bytes>),
}

/// The body handed to hyper for every client response.
pub(crate) struct ProxyBody {
    inner: Inner,
    recorder: Option<Recorder>,
    /// Keeps the connection marked busy until the body is done (see `conn_io`).
    busy: Option<Busy>,
    /// h2 only: marks the stretches in which this body waits for the client
    /// (handed to hyper, or a frame handed out, and not polled since), for
    /// the connection's `timeouts.send` watchdog (see `conn_io`). `None` on
    /// HTTP/1.1, where the write deadline covers a client that stops reading.
    waiting: Option<Waiting>,
}

impl ProxyBody {
    pub(crate) fn upstream(body: UpstreamResponseBody, recorder: Option<Recorder>) -> Self {
        let mut b = ProxyBody {
            inner: Inner::Upstream(body),
            recorder,
            busy: None,
            waiting: None,
        };
        b.finish_if_ended();
        b
    }

    pub(crate) fn text(text: impl Into<Bytes>, recorder: Option<Recorder>) -> Self {
        let bytes: Bytes = text.into();
        let mut b = ProxyBody {
            inner: Inner::Full((!bytes.is_empty()).then_some(bytes)),
            recorder,
            busy: None,
            waiting: None,
        };
        b.finish_if_ended();
        b
    }

    /// Hands the body to hyper: the connection stays busy until it is done,
    /// and (h2) it waits for the client until hyper first polls it.
    pub(crate) fn handed_over(mut self, busy: Busy, waiting: Option<Waiting>) -> Self {
        self.busy = Some(busy);
        self.waiting = waiting;
        let ended = self.is_end_stream();
        if let (Some(w), false) = (&mut self.waiting, ended) {
            w.begin();
        }
        self
    }

    fn finish_if_ended(&mut self) {
        if self.is_end_stream() {
            self.ended();
        }
    }

    /// The body was delivered whole: record it.
    fn ended(&mut self) {
        if let Some(mut r) = self.recorder.take() {
            r.finish();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(w) = &mut this.waiting {
            w.end();
        }
        let res: Option<Result<Frame<Bytes>, BodyError>> = match &mut this.inner {
            Inner::Upstream(b) => match Pin::new(b).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            },
            Inner::Full(data) => data.take().map(|d| Ok(Frame::data(d))),
        };
        match &res {
            None => this.ended(),
            Some(Err(_)) => {
                // The upstream failed after the headers: the client sees a
                // truncated body, the guard sees an error.
                if let Some(mut r) = this.recorder.take() {
                    r.force_error();
                    r.finish();
                }
            }
            Some(Ok(_)) => {
                if this.is_end_stream() {
                    this.ended();
                } else if let Some(w) = &mut this.waiting {
                    w.begin();
                }
            }
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream(b) => b.is_end_stream(),
            Inner::Full(d) => d.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream(b) => b.size_hint(),
            Inner::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}
