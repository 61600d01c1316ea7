//! The remote API (`[api.remote]`, off by default): HTTPS (TLS 1.2+, optional mTLS) with
//! scoped bearer tokens, per-source and per-token rate limits, an audit record for every
//! authentication attempt, a failed-authentication alert, JSON endpoints, a WebSocket alert
//! stream and the dashboard. Plain HTTP only on a loopback address with `plain_http = true`.
//!
//! `routes` is the one table of endpoints (docs/openapi.json is checked against it);
//! `server` accepts connections and applies limits and authentication; `stream` is the
//! WebSocket; `client` is the CLI's HTTPS client (`sensor api get|post`).

pub mod client;
pub mod http;
pub mod limit;
pub mod routes;
pub mod server;
pub mod stream;
pub mod tls;
pub mod tokens;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("api.remote.listen {0:?} is not an address:port (e.g. 127.0.0.1:8443)")]
    Listen(String),
    #[error(
        "api.remote: plain HTTP is refused on {0}; it is allowed only on a loopback address \
         with plain_http = true. Set tls_cert and tls_key to serve HTTPS"
    )]
    PlainNotLoopback(String),
    #[error("api.remote: tls_cert and tls_key are required (or plain_http = true on loopback)")]
    NoCertificate,
    #[error("api.remote: plain_http and TLS settings exclude each other")]
    PlainWithTls,
    #[error("api.remote.{0}: {1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error(transparent)]
    Tokens(#[from] tokens::TokenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Write `bytes` to `path` whole or not at all: a temporary file made with `mode` before any
/// byte is written (secrets are never readable by others, even briefly), synced, renamed.
pub(crate) fn write_private(
    path: &std::path::Path,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `[api.remote]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteConfig {
    pub enabled: bool,
    pub listen: String,
    /// PEM server certificate chain and key.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// PEM CA(s) client certificates must chain to: mTLS.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: accept clients without a certificate (a presented one must still
    /// verify). Tokens are required either way.
    pub client_cert_optional: bool,
    /// Serve plain HTTP. Refused unless `listen` is a loopback address.
    pub plain_http: bool,
    /// Lifetime of a new token when `sensor token create` gives none.
    pub token_ttl_hours: u64,
    /// How long a rotated token keeps working.
    pub rotation_grace_secs: u64,
    /// Requests per second and burst, per source address (before authentication) and per
    /// token (after). 0 turns a limit off.
    pub rate_per_source: f64,
    pub burst_per_source: u32,
    pub rate_per_token: f64,
    pub burst_per_token: u32,
    /// This many failed authentications from one address within the window raise a
    /// `sensor.api.auth_failures` alert (once per window).
    pub auth_failure_threshold: u32,
    pub auth_failure_window_secs: u64,
    pub max_connections: usize,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "127.0.0.1:8443".into(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            client_cert_optional: false,
            plain_http: false,
            token_ttl_hours: 24,
            rotation_grace_secs: 300,
            rate_per_source: 20.0,
            burst_per_source: 40,
            rate_per_token: 20.0,
            burst_per_token: 40,
            auth_failure_threshold: 10,
            auth_failure_window_secs: 60,
            max_connections: 256,
        }
    }
}

impl RemoteConfig {
    /// The address to bind, after every rule about TLS and plain HTTP.
    pub fn check(&self) -> Result<SocketAddr, RemoteError> {
        let addr: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| RemoteError::Listen(self.listen.clone()))?;
        let has_tls = self.tls_cert.is_some() || self.tls_key.is_some() || self.client_ca.is_some();
        if self.plain_http {
            if has_tls {
                return Err(RemoteError::PlainWithTls);
            }
            if !addr.ip().is_loopback() {
                return Err(RemoteError::PlainNotLoopback(self.listen.clone()));
            }
        } else if self.tls_cert.is_none() || self.tls_key.is_none() {
            return Err(RemoteError::NoCertificate);
        }
        if self.token_ttl_hours == 0 {
            return Err(RemoteError::Invalid(
                "token_ttl_hours",
                "must be at least 1".into(),
            ));
        }
        for (key, v) in [
            ("rate_per_source", self.rate_per_source),
            ("rate_per_token", self.rate_per_token),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(RemoteError::Invalid(key, format!("{v} must be 0 or more")));
            }
        }
        if self.auth_failure_window_secs == 0 || self.auth_failure_threshold == 0 {
            return Err(RemoteError::Invalid(
                "auth_failure_threshold",
                "the threshold and window must be at least 1".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(RemoteError::Invalid(
                "max_connections",
                "must be at least 1".into(),
            ));
        }
        Ok(addr)
    }
}

/// Counters shown in `sensor status` and the metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub tls_failures: AtomicU64,
    pub plain_refused: AtomicU64,
    pub requests: AtomicU64,
    pub auth_ok: AtomicU64,
    pub auth_failed: AtomicU64,
    pub forbidden: AtomicU64,
    pub rate_limited: AtomicU64,
    pub bad_requests: AtomicU64,
    pub streams: AtomicU64,
    pub stream_lost: AtomicU64,
    pub auth_alerts: AtomicU64,
}

/// The remote API in `sensor status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RemoteStatus {
    pub listen: String,
    pub tls: bool,
    pub mtls: bool,
    pub active_tokens: usize,
    pub connections: u64,
    pub connections_refused: u64,
    pub tls_failures: u64,
    pub plain_refused: u64,
    pub requests: u64,
    pub auth_ok: u64,
    pub auth_failed: u64,
    pub forbidden: u64,
    pub rate_limited: u64,
    pub bad_requests: u64,
    pub streams: u64,
    pub stream_lost: u64,
    pub auth_alerts: u64,
}

impl Counters {
    pub fn snapshot(&self, cfg: &RemoteConfig, active_tokens: usize) -> RemoteStatus {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RemoteStatus {
            listen: cfg.listen.clone(),
            tls: !cfg.plain_http,
            mtls: cfg.client_ca.is_some(),
            active_tokens,
            connections: g(&self.connections),
            connections_refused: g(&self.connections_refused),
            tls_failures: g(&self.tls_failures),
            plain_refused: g(&self.plain_refused),
            requests: g(&self.requests),
            auth_ok: g(&self.auth_ok),
            auth_failed: g(&self.auth_failed),
            forbidden: g(&self.forbidden),
            rate_limited: g(&self.rate_limited),
            bad_requests: g(&self.bad_requests),
            streams: g(&self.streams),
            stream_lost: g(&self.stream_lost),
            auth_alerts: g(&self.auth_alerts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(listen: &str) -> RemoteConfig {
        RemoteConfig {
            enabled: true,
            listen: listen.into(),
            ..Default::default()
        }
    }

    #[test]
    fn plain_http_only_on_loopback_and_tls_needs_both_files() {
        let plain = |l: &str| RemoteConfig {
            plain_http: true,
            ..cfg(l)
        };
        assert!(plain("127.0.0.1:8080").check().is_ok());
        assert!(plain("[::1]:8080").check().is_ok());
        for l in ["0.0.0.0:8080", "10.1.2.3:80", "[::]:80"] {
            let e = plain(l).check().unwrap_err().to_string();
            assert!(e.contains("plain HTTP is refused"), "{e}");
        }
        assert!(matches!(
            cfg("0.0.0.0:8443").check(),
            Err(RemoteError::NoCertificate)
        ));
        let half = RemoteConfig {
            tls_cert: Some("/c".into()),
            ..cfg("0.0.0.0:8443")
        };
        assert!(matches!(half.check(), Err(RemoteError::NoCertificate)));
        let both = RemoteConfig {
            tls_key: Some("/k".into()),
            ..half.clone()
        };
        assert!(both.check().is_ok());
        let mixed = RemoteConfig {
            plain_http: true,
            ..both.clone()
        };
        assert!(matches!(mixed.check(), Err(RemoteError::PlainWithTls)));
        assert!(matches!(
            cfg("localhost").check(),
            Err(RemoteError::Listen(_))
        ));
        let bad_rate = RemoteConfig {
            rate_per_token: f64::NAN,
            ..both
        };
        assert!(bad_rate.check().is_err());
    }
}
