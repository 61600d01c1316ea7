//! TLS client settings for every network sink: rustls with strict certificate validation
//! (system roots, or only a configured CA), optional SPKI pinning, optional client
//! certificate (mTLS). Nothing here can turn validation off.

use std::{path::Path, sync::Arc};

use base64::Engine as _;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {message}")]
    File {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("no trusted CA certificates: the system store is empty and no ca_file is set")]
    NoRoots,
    #[error("pin_sha256 {0:?} is not the base64 of a 32-byte SHA-256")]
    BadPin(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS setup: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// What the config says about TLS for one sink.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions<'a> {
    pub ca_file: Option<&'a Path>,
    pub client_cert: Option<&'a Path>,
    pub client_key: Option<&'a Path>,
    pub pin_sha256: &'a [String],
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |message: String| TlsError::File {
        what,
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    Ok(certs)
}

pub fn client_config(o: &TlsOptions<'_>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match o.ca_file {
        Some(path) => {
            for cert in read_certs("ca_file", path)? {
                roots.add(cert).map_err(|e| TlsError::File {
                    what: "ca_file",
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let pins = o
        .pin_sha256
        .iter()
        .map(|p| parse_pin(p))
        .collect::<Result<Vec<_>, _>>()?;
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
    let verifier: Arc<dyn ServerCertVerifier> = if pins.is_empty() {
        webpki
    } else {
        Arc::new(Pinned {
            inner: webpki,
            pins,
        })
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (o.client_cert, o.client_key) {
        (Some(cert), Some(key)) => {
            let certs = read_certs("client_cert", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
                what: "client_key",
                path: key.display().to_string(),
                message: e.to_string(),
            })?;
            builder.with_client_auth_cert(certs, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

pub fn parse_pin(p: &str) -> Result<[u8; 32], TlsError> {
    base64::engine::general_purpose::STANDARD
        .decode(p.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| TlsError::BadPin(p.to_owned()))
}

/// The name a certificate must be valid for.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_owned()).ok()
}

/// Full validation first, then the end-entity key must match a pin.
#[derive(Debug)]
struct Pinned {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        let spki = spki(end_entity).ok_or_else(|| {
            rustls::Error::General("cannot find the certificate's public key".into())
        })?;
        let digest: [u8; 32] = Sha256::digest(spki).into();
        if self.pins.contains(&digest) {
            Ok(ok)
        } else {
            Err(rustls::Error::General(format!(
                "certificate key sha256 {} matches no pin_sha256",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One DER element: (tag, header + content).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    Some((tag, input.get(..end)?, input.get(hdr..end)?))
}

/// The DER of a certificate's SubjectPublicKeyInfo (what HPKP-style pins hash).
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    let (_, _, cert_body) = der(cert)?;
    let (_, _, mut tbs) = der(cert_body)?;
    // version [0] (optional), serial, signature, issuer, validity, subject, spki
    let mut skip = 5;
    if tbs.first() == Some(&0xa0) {
        skip += 1;
    }
    for _ in 0..skip {
        let (_, whole, _) = der(tbs)?;
        tbs = &tbs[whole.len()..];
    }
    let (tag, whole, _) = der(tbs)?;
    (tag == 0x30).then_some(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_reader_refuses_truncated_input() {
        assert!(spki(&[]).is_none());
        assert!(spki(&[0x30, 0x82, 0xff]).is_none());
        assert!(spki(&[0x30, 0x03, 0x30, 0x01]).is_none());
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let _ = spki(&junk);
        }
    }

    #[test]
    fn pins_must_be_32_byte_base64() {
        assert!(parse_pin(&base64::engine::general_purpose::STANDARD.encode([7u8; 32])).is_ok());
        assert!(parse_pin("abc").is_err());
        assert!(parse_pin(&base64::engine::general_purpose::STANDARD.encode([7u8; 31])).is_err());
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not pem").unwrap();
        for path in [dir.path().join("nope.pem"), empty] {
            let err = client_config(&TlsOptions {
                ca_file: Some(&path),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("ca_file") && err.contains(&path.display().to_string()),
                "{err}"
            );
        }
    }
}
