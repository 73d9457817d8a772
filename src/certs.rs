//! Certificates and keys from PEM files: the HTTPS listener's pair and the
//! extra CA an upstream version may trust. Config validation and the snapshot
//! builder load them with the same functions, so `check`, `run` and a reload
//! accept the same files; never on the request path.
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

const NO_CERT: &str =
    "no PEM certificate in the file (expected `-----BEGIN CERTIFICATE-----` blocks)";

/// Every certificate in a PEM file; at least one.
pub fn cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| describe(path, e))?;
    if certs.is_empty() {
        return Err(format!("{}: {NO_CERT}", shown(path)));
    }
    Ok(certs)
}

/// A CA bundle: at least one certificate, each one usable as a trust anchor.
pub fn ca_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = cert_chain(path)?;
    let mut roots = rustls::RootCertStore::empty();
    for (i, c) in certs.iter().enumerate() {
        roots.add(c.clone()).map_err(|e| {
            format!(
                "{}: certificate {} of {} is not a usable CA certificate: {e}",
                shown(path),
                i + 1,
                certs.len()
            )
        })?;
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "{}: no PEM private key in the file (expected a `-----BEGIN PRIVATE KEY-----` block)",
            shown(path)
        ),
        e => describe(path, e),
    })
}

/// The chain and key as the HTTPS listener serves them: the key must be
/// supported and belong to the first certificate.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| e.to_string())
}

fn shown(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn describe(path: &Path, e: pem::Error) -> String {
    match e {
        pem::Error::NoItemsFound => format!("{}: {NO_CERT}", shown(path)),
        e => format!("{}: not valid PEM: {e}", shown(path)),
    }
}

/// The one crypto provider (ring: builds without cmake).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate file the listener or an upstream cannot use; the message
/// names the config field.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.cert: {0}")]
    Cert(String),
    #[error("tls.key: {0}")]
    Key(String),
    #[error("tls: {0}")]
    Config(String),
}

/// Reads the listener's PEM chain and key and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = cert_chain(cert).map_err(TlsError::Cert)?;
    let der = private_key(key).map_err(TlsError::Key)?;
    certified_key(chain, der).map_err(|m| {
        TlsError::Key(format!(
            "{} does not match the certificate in tls.cert {}: {m}",
            shown(key),
            shown(cert)
        ))
    })
}

#[derive(Debug, thiserror::Error)]
#[error("upstreams.{role}.ca: {message}")]
pub struct CaError {
    pub role: &'static str,
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
    if let Some(path) = ca {
        for c in ca_certs(path).map_err(|message| CaError { role, message })? {
            roots.add(c).map_err(|e| CaError {
                role,
                message: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_empty_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).expect("write");
            p
        };
        let empty = f("empty.pem", "");
        assert!(ca_certs(&empty)
            .expect_err("empty")
            .contains("no PEM certificate"));
        let junk = f("junk.pem", "hello\n");
        assert!(cert_chain(&junk)
            .expect_err("junk")
            .contains("no PEM certificate"));
        let torn = f("torn.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
        assert!(ca_certs(&torn).is_err());
        // Valid PEM around bytes that are no certificate.
        let fake = f(
            "fake.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        );
        let e = ca_certs(&fake).expect_err("not DER");
        assert!(
            e.contains("certificate 1 of 1 is not a usable CA certificate"),
            "{e}"
        );
        assert!(private_key(&fake)
            .expect_err("no key")
            .contains("no PEM private key"));
    }

    #[test]
    fn a_real_pair_loads_and_a_foreign_key_does_not_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).expect("cert a");
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).expect("cert b");
        let (cert, key, other) = (
            dir.path().join("a.pem"),
            dir.path().join("a.key"),
            dir.path().join("b.key"),
        );
        std::fs::write(&cert, a.cert.pem()).expect("write");
        std::fs::write(&key, a.key_pair.serialize_pem()).expect("write");
        std::fs::write(&other, b.key_pair.serialize_pem()).expect("write");
        assert_eq!(ca_certs(&cert).expect("ca").len(), 1);
        let chain = cert_chain(&cert).expect("chain");
        certified_key(chain.clone(), private_key(&key).expect("key")).expect("pair");
        assert!(certified_key(chain, private_key(&other).expect("key")).is_err());
    }
}
