//! Upgrade (WebSocket) pass-through: once both sides switched protocols, the
//! two upgraded connections are spliced byte for byte.
use super::conn_io::Busy;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Splices the client's and the upstream's upgraded connections in a task.
/// `busy` keeps the client connection exempt from header/idle deadlines.
pub(super) fn tunnel(client: OnUpgrade, upstream: OnUpgrade, busy: Busy) {
    tokio::spawn(async move {
        let _busy = busy;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
        }
    });
}
