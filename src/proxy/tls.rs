//! The HTTPS listener's TLS: the certificate comes from the current snapshot
//! at each handshake, so a reload swaps it without a restart.
use crate::certs::{provider, TlsError};
use crate::snapshot::Live;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Serves the certificate of whatever snapshot is current.
struct SnapshotCert(Live);

impl std::fmt::Debug for SnapshotCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotCert")
    }
}

impl ResolvesServerCert for SnapshotCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().tls_cert.clone()
    }
}

/// TLS 1.2+ acceptor offering h2 and http/1.1 by ALPN.
pub(crate) fn acceptor(live: Live) -> Result<TlsAcceptor, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SnapshotCert(live)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}
