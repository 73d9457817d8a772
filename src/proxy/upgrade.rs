//! Upgrade (WebSocket) pass-through: once both sides switched protocols, the
//! two upgraded connections are spliced byte for byte.
//!
//! A tunnel keeps what its connection held: the client connection's slot of
//! `limits.max_connections` (through its `ConnCtx`), the upstream endpoint's
//! `max_connections` permit, and the connection's busy mark (no header/idle
//! deadline). It ends when either side closes, or after `timeouts.tunnel_idle`
//! with no byte either way. Writes to the client still go through the
//! connection's `timeouts.send` deadline.
use super::conn_io::Busy;
use super::ConnCtx;
use crate::upstream::endpoints::ConnPermit;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a tunnel holds while it lives (released on drop).
pub(super) struct Hold {
    _busy: Busy,
    _conn: Arc<ConnCtx>,
    _upstream: Option<ConnPermit>,
}

impl Hold {
    pub(super) fn new(busy: Busy, conn: Arc<ConnCtx>, upstream: Option<ConnPermit>) -> Self {
        Hold {
            _busy: busy,
            _conn: conn,
            _upstream: upstream,
        }
    }
}

/// Idle checks per `tunnel_idle`: a quiet tunnel closes between
/// `tunnel_idle` and `1.25 × tunnel_idle` after its last byte.
const IDLE_TICKS: u32 = 4;

/// Splices the client's and the upstream's upgraded connections in a task.
/// `hold` keeps the client connection's slot and exemption from header/idle
/// deadlines for the tunnel's life.
pub(super) fn tunnel(client: OnUpgrade, upstream: OnUpgrade, hold: Hold, idle: Duration) {
    tokio::spawn(async move {
        let _hold = hold;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let moved = Arc::new(AtomicU64::new(0));
        let mut client = Counted::new(TokioIo::new(client), moved.clone());
        let mut upstream = Counted::new(TokioIo::new(upstream), moved.clone());
        let splice = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::select! {
            r = splice => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                }
            }
            () = quiet_for(&moved, idle) => {
                tracing::debug!(?idle, "upgraded connection closed: idle");
            }
        }
    });
}

/// Resolves once no byte moved during `IDLE_TICKS` whole ticks of `idle / IDLE_TICKS`.
async fn quiet_for(moved: &AtomicU64, idle: Duration) {
    let tick = (idle / IDLE_TICKS).max(Duration::from_millis(1));
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut seen, mut quiet) = (moved.load(Relaxed), 0);
    loop {
        interval.tick().await;
        let now = moved.load(Relaxed);
        if now == seen {
            quiet += 1;
            if quiet >= IDLE_TICKS {
                return;
            }
        } else {
            (seen, quiet) = (now, 0);
        }
    }
}

/// Counts the bytes read from one side of a tunnel (what is read is what
/// moves: `copy_bidirectional` writes it to the other side).
struct Counted<T> {
    io: T,
    moved: Arc<AtomicU64>,
}

impl<T> Counted<T> {
    fn new(io: T, moved: Arc<AtomicU64>) -> Self {
        Counted { io, moved }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.moved.fetch_add(n as u64, Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
