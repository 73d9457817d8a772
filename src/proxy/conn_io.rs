//! Per-connection deadlines and checks, in the IO wrapper every client
//! connection is served through. hyper's own header timer starts when it
//! begins waiting for a request, so it cannot tell a slow client (slowloris)
//! from a quiet keep-alive connection; this wrapper sees the bytes and the
//! requests in flight. One timer per connection, never one per request:
//! - `header_read`: from the first byte of a request (or the connection's
//!   start) until hyper hands the request to the service;
//! - `idle`: a kept-alive connection with nothing in flight waiting for the
//!   next request's first byte;
//! - `send` (writes): a write the socket cannot take arms a second timer,
//!   armed only then and disarmed by the next successful write, so a client
//!   that stops reading is cut off after `send` without a write since. A
//!   write that goes through costs nothing;
//! - `send` (h2 flow control): a client that keeps a stream's window at 0
//!   causes no pending write at all: hyper simply stops polling that
//!   response body. Each h2 response body says when it starts and stops
//!   waiting for the client ([`Waiting`]), in a per-connection ring of
//!   counters by epoch ([`Stalls`]); while requests are in flight the
//!   connection's one timer ticks every `send / 4` and closes the connection
//!   once a body has waited through 4 ticks, so a stalled stream is released
//!   between `send` and `1.25 × send` after it stalled. HTTP/2 gives the
//!   proxy no way to reset one stream from outside hyper, so the whole
//!   connection (every stream on it) goes, as its client stopped taking
//!   what it asked for.
//!
//! A missed deadline fails the read (or the write) with `TimedOut`, and hyper
//! closes the connection.
//!
//! The wrapper also finds HTTP/1.x request heads that carry both
//! `Content-Length` and `Transfer-Encoding` ([`FramingScan`]): hyper lets
//! chunked win and drops `Content-Length` from the header map, so the
//! service cannot see it any more; it reads [`Activity::framing_conflict`]
//! and answers 400.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Watchdog ticks per `send` on an h2 connection with requests in flight.
const TICKS: u32 = 4;
/// Epoch ring size: the ticks of one `send` plus the one being checked, rounded up.
const SLOTS: usize = 8;
const _: () = assert!(SLOTS >= TICKS as usize + 2);

/// What the IO and the service share about one client connection.
#[derive(Default)]
pub(crate) struct Activity {
    /// Requests in flight (their response bodies not yet done).
    in_flight: AtomicUsize,
    /// A request head on this connection had both `Content-Length` and
    /// `Transfer-Encoding` (set before hyper hands that request over).
    framing_conflict: AtomicBool,
    /// h2: response bodies waiting for the client, by epoch.
    stalls: Stalls,
}

impl Activity {
    /// Marks a request in flight until the guard is dropped (with the response body).
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn in_flight(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Did a request head on this connection carry both `Content-Length`
    /// and `Transfer-Encoding`? hyper closes such a connection after that
    /// request, so no later request sees the flag. A chunked request
    /// pipelined just before it, in bytes read together, may see it too and
    /// be refused as well: only on the connection that tried to smuggle.
    pub(crate) fn framing_conflict(&self) -> bool {
        self.framing_conflict.load(Ordering::Acquire)
    }
}

pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per h2 connection: how many response bodies are waiting for the client,
/// by the watchdog epoch in which each began to wait.
#[derive(Default)]
struct Stalls {
    epoch: AtomicU32,
    waiting: [AtomicU32; SLOTS],
}

impl Stalls {
    /// Moves to the next epoch; true when a body has been waiting since an
    /// epoch `TICKS` ticks ago or more (each earlier slot was found empty
    /// by an earlier tick).
    fn tick(&self) -> bool {
        let e = self.epoch.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        let old = e.wrapping_sub(TICKS + 1) as usize % SLOTS;
        self.waiting[old].load(Ordering::Acquire) > 0
    }
}

/// One h2 response body's wait for its client: `begin` when it handed a frame
/// to hyper (or was handed over itself), `end` when hyper polls it again.
/// Two atomic operations per frame, h2 only.
pub(crate) struct Waiting {
    activity: Arc<Activity>,
    slot: Option<u8>,
}

impl Waiting {
    pub(crate) fn new(activity: Arc<Activity>) -> Self {
        Waiting {
            activity,
            slot: None,
        }
    }

    #[inline]
    pub(crate) fn begin(&mut self) {
        if self.slot.is_none() {
            let s = &self.activity.stalls;
            let slot = s.epoch.load(Ordering::Acquire) as usize % SLOTS;
            s.waiting[slot].fetch_add(1, Ordering::AcqRel);
            self.slot = Some(slot as u8);
        }
    }

    #[inline]
    pub(crate) fn end(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.activity.stalls.waiting[slot as usize].fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.end();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Waiting for the end of a request's headers (deadline: header_read).
    Headers,
    /// A request is in flight: no read deadline (`timeouts.request` and the
    /// client's own patience govern it); on h2 the stall watchdog ticks.
    Busy,
    /// Nothing in flight, waiting for the next request (deadline: idle).
    Idle,
}

/// Connection deadlines from the snapshot at accept.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    pub header_read: Duration,
    pub idle: Duration,
    pub send: Duration,
}

pub(crate) struct TimedIo<T> {
    io: T,
    activity: Arc<Activity>,
    state: State,
    deadline: Pin<Box<Sleep>>,
    limits: Deadlines,
    /// The write deadline: made on the first write the socket could not
    /// take (most connections never need one), armed while writes wait.
    write_deadline: Option<Pin<Box<Sleep>>>,
    write_armed: bool,
    /// h2 (prior knowledge or ALPN): frames like PING arrive between requests,
    /// so only the idle deadline applies once the first request came.
    h2: Option<bool>,
    scan: FramingScan,
}

impl<T> TimedIo<T> {
    pub(crate) fn new(io: T, activity: Arc<Activity>, limits: Deadlines, h2: Option<bool>) -> Self {
        TimedIo {
            io,
            activity,
            state: State::Headers,
            deadline: Box::pin(tokio::time::sleep(limits.header_read)),
            limits,
            write_deadline: None,
            write_armed: false,
            h2,
            scan: FramingScan::default(),
        }
    }

    fn set(&mut self, state: State, after: Duration) {
        self.state = state;
        self.deadline.as_mut().reset(Instant::now() + after);
    }

    fn tick(&self) -> Duration {
        (self.limits.send / TICKS).max(Duration::from_millis(1))
    }

    /// After a write attempt: progress disarms the write deadline; a write
    /// the socket cannot take arms it (once) and polls it.
    fn on_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match res {
            Poll::Pending => {
                let send = self.limits.send;
                let d = self
                    .write_deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(send)));
                if !self.write_armed {
                    self.write_armed = true;
                    d.as_mut().reset(Instant::now() + send);
                }
                if d.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "send timeout: the client took no bytes",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.write_armed = false;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.in_flight() {
            if this.state != State::Busy {
                this.state = State::Busy;
                if this.h2 == Some(true) {
                    // The stall watchdog's first tick.
                    let t = this.tick();
                    this.deadline.as_mut().reset(Instant::now() + t);
                }
            }
        } else if this.state == State::Busy {
            let idle = this.limits.idle;
            this.set(State::Idle, idle);
            this.scan.resync();
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if this.h2.is_none() && !new.is_empty() {
                    this.h2 = Some(new.starts_with(b"PRI "));
                }
                if this.h2 == Some(false) && this.scan.feed(new) {
                    this.activity
                        .framing_conflict
                        .store(true, Ordering::Release);
                }
                if !new.is_empty() && this.state == State::Idle && this.h2 != Some(true) {
                    let hr = this.limits.header_read;
                    this.set(State::Headers, hr);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                match this.state {
                    State::Busy if this.h2 == Some(true) => {
                        while this.deadline.as_mut().poll(cx).is_ready() {
                            if this.activity.stalls.tick() {
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "send timeout: an h2 stream waited for the client's window",
                                )));
                            }
                            let t = this.tick();
                            this.deadline.as_mut().reset(Instant::now() + t);
                        }
                    }
                    State::Busy => {}
                    State::Headers | State::Idle => {
                        if this.deadline.as_mut().poll(cx).is_ready() {
                            let what = match this.state {
                                State::Headers => "header read timeout",
                                _ => "idle timeout",
                            };
                            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                        }
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        this.on_write(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.on_write(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_flush(cx);
        this.on_write(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_shutdown(cx);
        this.on_write(cx, res)
    }
}

/// The longest line start kept across reads: enough for
/// `transfer-encoding:` and a `content-length:` value.
const LINE_PREFIX: usize = 40;

/// Where the scan is in the client's byte stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Scan {
    /// In (or at the start of) a request head.
    #[default]
    Head,
    /// In a `Content-Length` body: this many bytes still to skip.
    Body(u64),
    /// After a chunked body or an upgrade: where the next head starts is
    /// unknown until the connection has nothing in flight again.
    Lost,
}

/// Follows HTTP/1.x request heads in the client's bytes and reports one that
/// carries both `Content-Length` and `Transfer-Encoding`. Per read: a `memchr`
/// for line ends over the head bytes and a few byte compares per header
/// line; `Content-Length` bodies are skipped by count. A chunked body (or an
/// upgrade) loses the place until the connection is idle again; a conflict
/// pipelined behind a chunked request is then handled as hyper does
/// (chunked wins, `Content-Length` dropped, the connection closed after it).
struct FramingScan {
    mode: Scan,
    /// The start of the current line when it spans reads.
    line: [u8; LINE_PREFIX],
    kept: u8,
    /// Bytes of the current line so far (kept or not).
    line_len: usize,
    /// Lines of the current head so far (the request line is the first).
    lines: u32,
    content_length: bool,
    length: Option<u64>,
    transfer_encoding: bool,
    upgrade: bool,
}

impl Default for FramingScan {
    fn default() -> Self {
        FramingScan {
            mode: Scan::Head,
            line: [0; LINE_PREFIX],
            kept: 0,
            line_len: 0,
            lines: 0,
            content_length: false,
            length: None,
            transfer_encoding: false,
            upgrade: false,
        }
    }
}

fn starts_with_ci(line: &[u8], name: &[u8]) -> bool {
    line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name)
}

impl FramingScan {
    fn resync(&mut self) {
        if self.mode == Scan::Lost {
            *self = FramingScan::default();
        }
    }

    /// Feeds bytes the client sent; true when a head ended that had both headers.
    fn feed(&mut self, mut data: &[u8]) -> bool {
        let mut conflict = false;
        while !data.is_empty() {
            match self.mode {
                Scan::Lost => break,
                Scan::Body(rem) => {
                    let n = rem.min(data.len() as u64);
                    data = &data[n as usize..];
                    self.mode = if n == rem {
                        Scan::Head
                    } else {
                        Scan::Body(rem - n)
                    };
                }
                Scan::Head => match memchr::memchr(b'\n', data) {
                    None => {
                        self.keep(data);
                        break;
                    }
                    Some(i) => {
                        let (line, rest) = (&data[..i], &data[i + 1..]);
                        data = rest;
                        if self.kept == 0 && self.line_len == 0 {
                            conflict |= self.end_line(line, line.len());
                        } else {
                            self.keep(line);
                            let (buf, len) = (self.line, self.line_len);
                            conflict |= self.end_line(&buf[..self.kept as usize], len);
                        }
                        self.kept = 0;
                        self.line_len = 0;
                    }
                },
            }
        }
        conflict
    }

    fn keep(&mut self, bytes: &[u8]) {
        let k = self.kept as usize;
        let n = bytes.len().min(LINE_PREFIX - k);
        self.line[k..k + n].copy_from_slice(&bytes[..n]);
        self.kept += n as u8;
        self.line_len += bytes.len();
    }

    /// One complete line (`line`: its start, `len`: its whole length, both
    /// without the `\n`).
    fn end_line(&mut self, line: &[u8], len: usize) -> bool {
        let empty = len == 0 || (len == 1 && line.first() == Some(&b'\r'));
        if empty {
            if self.lines == 0 {
                return false; // an empty line before the request line is ignored
            }
            let conflict = self.content_length && self.transfer_encoding;
            self.mode = if self.transfer_encoding || self.upgrade {
                Scan::Lost
            } else {
                match self.length {
                    Some(n) if n > 0 => Scan::Body(n),
                    Some(_) => Scan::Head,
                    // A Content-Length line whose value we could not read.
                    None if self.content_length => Scan::Lost,
                    None => Scan::Head,
                }
            };
            self.lines = 0;
            self.content_length = false;
            self.length = None;
            self.transfer_encoding = false;
            self.upgrade = false;
            return conflict;
        }
        self.lines += 1;
        if self.lines == 1 {
            self.upgrade = starts_with_ci(line, b"CONNECT ");
            return false;
        }
        match line.first().map(u8::to_ascii_lowercase) {
            Some(b'c') if starts_with_ci(line, b"content-length:") => {
                self.content_length = true;
                let v = line[b"content-length:".len()..].trim_ascii();
                self.length = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
            }
            Some(b't') if starts_with_ci(line, b"transfer-encoding:") => {
                self.transfer_encoding = true;
            }
            Some(b'u') if starts_with_ci(line, b"upgrade:") => self.upgrade = true,
            _ => {}
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(chunks: &[&[u8]]) -> (bool, Scan) {
        let mut s = FramingScan::default();
        let mut hit = false;
        for c in chunks {
            hit |= s.feed(c);
        }
        (hit, s.mode)
    }

    #[test]
    fn finds_both_framing_headers_in_any_order_and_split_anywhere() {
        let both = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let rev = b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n";
        for msg in [&both[..], &rev[..]] {
            for cut in 0..msg.len() {
                assert!(scan_all(&[&msg[..cut], &msg[cut..]]).0, "cut at {cut}");
            }
        }
        let one = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(scan_all(&[one]), (false, Scan::Lost));
    }

    #[test]
    fn skips_content_length_bodies_and_finds_a_pipelined_conflict() {
        // A body that looks like headers is skipped by count.
        let body = "\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n";
        let first = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let first = first.as_bytes();
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let bad = b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(scan_all(&[first]), (false, Scan::Head));
        let mut all = Vec::new();
        all.extend_from_slice(get);
        all.extend_from_slice(get);
        all.extend_from_slice(bad);
        assert!(scan_all(&[&all]).0);
        for cut in 0..all.len() {
            assert!(scan_all(&[&all[..cut], &all[cut..]]).0, "cut at {cut}");
        }
    }

    #[test]
    fn a_chunked_body_loses_the_place_until_resync() {
        let mut s = FramingScan::default();
        assert!(!s
            .feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
        assert!(!s.feed(b"x\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n"));
        s.resync();
        assert!(
            s.feed(b"GET / HTTP/1.1\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n")
        );
    }

    #[test]
    fn stalls_are_reported_after_a_full_send_period() {
        let a = Arc::new(Activity::default());
        let mut w = Waiting::new(a.clone());
        w.begin();
        // Ticks 1..=TICKS: waited less than a full period so far.
        for _ in 0..TICKS {
            assert!(!a.stalls.tick());
        }
        assert!(a.stalls.tick(), "waiting through {TICKS} whole ticks");
        w.end();
        let mut fresh = Waiting::new(a.clone());
        fresh.begin();
        fresh.end();
        for _ in 0..3 * SLOTS {
            assert!(!a.stalls.tick());
        }
        // A body that waits and is polled again within each period is never reported.
        let mut busy = Waiting::new(a.clone());
        for _ in 0..3 * SLOTS {
            busy.begin();
            assert!(!a.stalls.tick());
            busy.end();
        }
        drop(busy);
        // Dropped while waiting: no longer counted.
        let mut gone = Waiting::new(a.clone());
        gone.begin();
        drop(gone);
        for _ in 0..3 * SLOTS {
            assert!(!a.stalls.tick());
        }
    }
}
