//! The PEM files a config names, loaded in validation the way the proxy loads
//! them at start-up, so `check`, `run` and a reload accept the same files.
//!
//! NOTE for src/proxy: `tls::load_certified_key` and the CA loop in
//! `client::build_client` repeat this loading; they can call these functions
//! (pure: read and parse, no global state) instead of keeping their own copies.
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

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
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| e.to_string())
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
