//! A small HTTP/1.1 client for webhooks: one POST per connection, status code back. Small on
//! purpose: it shares the sinks' TLS (pinning, mTLS) and never follows redirects.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};

use super::transport::{self, Stream, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: timed out")]
    Timeout(String),
    #[error("{0}: not an HTTP response: {1:?}")]
    BadResponse(String, String),
}

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "{s:?}: the URL must start with https:// or http://"
            ));
        };
        if s.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!(
                "{s:?}: spaces and control characters are not allowed"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!(
                "{s:?}: credentials in the URL would be logged; use `headers` instead"
            ));
        }
        let default = if https { 443 } else { 80 };
        let (host, port) = if authority.ends_with(']') || !authority.contains(':') {
            (authority.trim_matches(['[', ']']).to_owned(), default)
        } else {
            transport::split_address(authority).ok_or_else(|| format!("{s:?}: bad host or port"))?
        };
        if host.is_empty() {
            return Err(format!("{s:?}: no host"));
        }
        Ok(Self {
            https,
            host,
            port,
            path: path.to_owned(),
        })
    }

    /// For logs and status: no path (which may hold a token, as Slack's do).
    pub fn origin(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.https { "https" } else { "http" },
            self.host,
            self.port
        )
    }
}

/// POSTs `body`; returns the status code.
pub async fn post(
    url: &Url,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<u16, HttpError> {
    let origin = url.origin();
    let tls = tls.filter(|_| url.https);
    let stream = transport::connect(
        &url.host,
        url.port,
        tls.map(|t| (t, url.host.as_str())),
        timeout,
    )
    .await?;
    let exchange = async {
        let mut stream: Stream = stream;
        let mut req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sensor/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            url.path,
            url.host,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        (&mut reader).take(8192).read_line(&mut line).await?;
        Ok::<_, std::io::Error>(line)
    };
    let line = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => return Err(HttpError::Io(origin, e)),
        Err(_) => return Err(HttpError::Timeout(origin)),
    };
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(HttpError::BadResponse(
            origin,
            crate::escape::escape_str(&line, 120),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://hooks.example.com/services/T0/B0/secret").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port),
            (true, "hooks.example.com", 443)
        );
        assert_eq!(u.path, "/services/T0/B0/secret");
        assert_eq!(u.origin(), "https://hooks.example.com:443");
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.port, u.path.as_str()), (8080, "/"));
        let u = Url::parse("https://[::1]:8443/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8443));
        for bad in [
            "ftp://x",
            "https://",
            "https://user:pw@host/",
            "https://host:99999/",
            "https://host/a b",
            "https://host/\r\nX: y",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
