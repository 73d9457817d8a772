//! Per-connection read deadlines. hyper's own header timer starts when it
//! begins waiting for a request, so it cannot tell a slow client (slowloris)
//! from a quiet keep-alive connection. This wrapper sees the bytes and the
//! requests in flight and applies two deadlines:
//! - `header_read`: from the first byte of a request (or the connection's
//!   start) until hyper hands the request to the service;
//! - `idle`: a kept-alive connection with nothing in flight waiting for the
//!   next request's first byte.
//!
//! A missed deadline fails the read, and hyper closes the connection.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests in flight on one connection (shared by the IO and the service).
#[derive(Default)]
pub struct Activity(AtomicUsize);

impl Activity {
    /// Marks a request in flight until the guard is dropped (with the response body).
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.0.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn in_flight(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Waiting for the end of a request's headers (deadline: header_read).
    Headers,
    /// A request is in flight: no deadline here (`timeouts.request` and the
    /// client's own patience govern it).
    Busy,
    /// Nothing in flight, waiting for the next request (deadline: idle).
    Idle,
}

pub struct TimedIo<T> {
    io: T,
    activity: Arc<Activity>,
    state: State,
    deadline: Pin<Box<Sleep>>,
    header_read: Duration,
    idle: Duration,
    /// h2 (prior knowledge or ALPN): frames like PING arrive between requests,
    /// so only the idle deadline applies once the first request came.
    h2: Option<bool>,
}

impl<T> TimedIo<T> {
    pub fn new(
        io: T,
        activity: Arc<Activity>,
        header_read: Duration,
        idle: Duration,
        h2: Option<bool>,
    ) -> Self {
        TimedIo {
            io,
            activity,
            state: State::Headers,
            deadline: Box::pin(tokio::time::sleep(header_read)),
            header_read,
            idle,
            h2,
        }
    }

    fn set(&mut self, state: State, after: Duration) {
        self.state = state;
        self.deadline.as_mut().reset(Instant::now() + after);
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
            this.state = State::Busy;
        } else if this.state == State::Busy {
            let idle = this.idle;
            this.set(State::Idle, idle);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if this.h2.is_none() && !new.is_empty() {
                    this.h2 = Some(new.starts_with(b"PRI "));
                }
                if !new.is_empty() && this.state == State::Idle && this.h2 != Some(true) {
                    let hr = this.header_read;
                    this.set(State::Headers, hr);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.state != State::Busy && this.deadline.as_mut().poll(cx).is_ready() {
                    let what = match this.state {
                        State::Headers => "header read timeout",
                        _ => "idle timeout",
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
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
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
