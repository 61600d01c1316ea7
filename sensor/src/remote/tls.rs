//! The API's TLS: a rustls server (TLS 1.2 and 1.3 only, ring provider), optionally verifying
//! client certificates against a CA (mTLS), and `sensor api tls-init`, which makes a private
//! CA with a server and a client certificate for deployments without a PKI.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

use crate::output::tls::{provider, read_certs};

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(transparent)]
    Files(#[from] crate::output::tls::TlsError),
    #[error("tls_key {path}: {message}")]
    Key { path: String, message: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client_ca: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} exists; pass --force to replace the CA and certificates")]
    Exists(String),
}

/// Server settings from the `[api.remote]` paths.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    require_client_cert: bool,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let certs = read_certs("tls_cert", cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs("client_ca", ca)? {
                roots
                    .add(c)
                    .map_err(|e| crate::output::tls::TlsError::File {
                        what: "client_ca",
                        path: ca.display().to_string(),
                        message: e.to_string(),
                    })?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let v = if require_client_cert {
                v.build()?
            } else {
                v.allow_unauthenticated().build()?
            };
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What `tls-init` wrote.
#[derive(Debug, serde::Serialize)]
pub struct Generated {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), TlsSetupError> {
    super::write_private(path, text.as_bytes(), mode).map_err(|source| TlsSetupError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// A private CA (its key kept beside it, mode 0600), a server certificate for `hosts` (DNS
/// names or IP addresses) and a client certificate for mTLS, valid `days`.
pub fn init(
    dir: &Path,
    hosts: &[String],
    days: i64,
    force: bool,
) -> Result<Generated, TlsSetupError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let names = [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
    ];
    if !force && let Some(n) = names.iter().find(|n| dir.join(n).exists()) {
        return Err(TlsSetupError::Exists(dir.join(n).display().to_string()));
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsSetupError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let now = time::OffsetDateTime::now_utc();
    let validity = |p: &mut CertificateParams| {
        p.not_before = now - time::Duration::hours(1);
        p.not_after = now + time::Duration::days(days.max(1));
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // A name of its own: two CAs made here must never be mistaken for each other (a
    // client would otherwise report a bad signature instead of an unknown issuer).
    let tag = crate::ioc::hashes::hex(
        &ring::digest::digest(&ring::digest::SHA256, ca_key.public_key_raw()).as_ref()[..4],
    );
    ca.distinguished_name
        .push(DnType::CommonName, format!("sensor API private CA {tag}"));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(hosts.to_vec())?;
    server
        .distinguished_name
        .push(DnType::CommonName, "sensor API");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut server);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, "sensor API client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut client);
    let client_cert = client.signed_by(&client_key, &issuer)?;

    let files = [
        (names[0], ca_cert.pem(), 0o644),
        (names[1], ca_key.serialize_pem(), 0o600),
        (names[2], server_cert.pem(), 0o644),
        (names[3], server_key.serialize_pem(), 0o600),
        (names[4], client_cert.pem(), 0o644),
        (names[5], client_key.serialize_pem(), 0o600),
    ];
    for (name, text, mode) in &files {
        write_file(&dir.join(name), text, *mode)?;
    }
    Ok(Generated {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_material_makes_a_server_config_and_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let g = init(
            dir.path(),
            &["localhost".into(), "127.0.0.1".into()],
            30,
            false,
        )
        .unwrap();
        server_config(&g.server_cert, &g.server_key, None, false).unwrap();
        server_config(&g.server_cert, &g.server_key, Some(&g.ca_cert), true).unwrap();
        let err = init(dir.path(), &["localhost".into()], 30, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exists"), "{err}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&g.server_key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let g = init(dir.path(), &["localhost".into()], 1, false).unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "-----BEGIN NOTHING-----\n").unwrap();
        let e = server_config(&junk, &g.server_key, None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls_cert") && e.contains("junk.pem"), "{e}");
        let e = server_config(&g.server_cert, &junk, None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls_key") && e.contains("junk.pem"), "{e}");
        let e = server_config(&g.server_cert, &g.server_key, Some(&junk), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_ca"), "{e}");
        // A key that is not the certificate's.
        let e = server_config(&g.server_cert, &g.client_key, None, false)
            .unwrap_err()
            .to_string();
        assert!(!e.is_empty());
    }
}
