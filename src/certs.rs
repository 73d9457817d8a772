//! Certificates from PEM files: the HTTPS listener's certificate and key,
//! and the extra CA an upstream version may trust. Loaded when a snapshot is
//! built (start and reload), never on the request path.
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The one crypto provider (ring: builds without cmake).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.cert: cannot read certificates from {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("tls.cert: no certificate found in {0}")]
    NoCert(PathBuf),
    #[error("tls.key: cannot read a private key from {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("tls.key: {key} does not match the certificate in tls.cert {cert}: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("tls: {0}")]
    Config(String),
}

/// Reads a PEM certificate chain and private key and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.to_path_buf(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.to_path_buf()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        message: e.to_string(),
    })
}

#[derive(Debug, thiserror::Error)]
#[error("upstreams.{role}.ca: cannot load {path}: {message}")]
pub struct CaError {
    pub role: &'static str,
    pub path: String,
    pub message: String,
}

/// The public web roots plus every certificate in `ca` (when set).
pub fn upstream_roots(
    ca: Option<&Path>,
    role: &'static str,
) -> Result<rustls::RootCertStore, CaError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let Some(path) = ca else {
        return Ok(roots);
    };
    let err = |message: String| CaError {
        role,
        path: path.display().to_string(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in file".into()));
    }
    for c in certs {
        roots.add(c).map_err(|e| err(e.to_string()))?;
    }
    Ok(roots)
}
