//! A small HTTP/1.1 client for webhooks: POSTs on a kept-alive connection, status code back.
//! Small on purpose: it shares the sinks' TLS (pinning, mTLS) and never follows redirects.
//!
//! A connection is reused only when the answer said it could be (HTTP/1.1, no
//! `Connection: close`) and its body was read whole (Content-Length or chunked, at most
//! 1 MiB); it is dropped after `IDLE` unused. A reused connection that fails before any
//! answer byte (the server closed it while idle) is replaced once by a fresh one: receivers
//! deduplicate on the alert id, so a repeat is harmless.

use std::time::{Duration, Instant};

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

/// Longest a connection is kept unused (servers commonly close idle ones after 5 to 60 s).
const IDLE: Duration = Duration::from_secs(4);
/// Largest answer body read to keep a connection.
const MAX_BODY: usize = 1024 * 1024;

/// The connection a webhook sink keeps between POSTs.
#[derive(Default)]
pub struct KeepAlive {
    conn: Option<(BufReader<Stream>, Instant)>,
    /// Connections opened, for tests and status.
    pub opened: u64,
}

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepAlive")
            .field("open", &self.conn.is_some())
            .field("opened", &self.opened)
            .finish()
    }
}

/// What an exchange ended with.
enum Outcome {
    Answered {
        code: u16,
        reusable: bool,
    },
    /// Nothing came back at all (only then is a retry on a fresh connection right).
    NoAnswer(std::io::Error),
}

/// POSTs `body`; returns the status code.
pub async fn post(
    keep: &mut KeepAlive,
    url: &Url,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<u16, HttpError> {
    let origin = url.origin();
    let req = request_head(url, headers, body.len());
    if let Some((mut conn, last)) = keep.conn.take()
        && last.elapsed() < IDLE
    {
        match tokio::time::timeout(timeout, exchange(&mut conn, &req, body)).await {
            Ok(Ok(Outcome::Answered { code, reusable })) => {
                if reusable {
                    keep.conn = Some((conn, Instant::now()));
                }
                return Ok(code);
            }
            // Closed while idle: fall through to a fresh connection.
            Ok(Ok(Outcome::NoAnswer(_))) => {}
            Ok(Err(e)) => return Err(HttpError::Io(origin, e)),
            Err(_) => return Err(HttpError::Timeout(origin)),
        }
    }
    let tls = tls.filter(|_| url.https);
    let stream = transport::connect(
        &url.host,
        url.port,
        tls.map(|t| (t, url.host.as_str())),
        timeout,
    )
    .await?;
    keep.opened += 1;
    let mut conn = BufReader::new(stream);
    match tokio::time::timeout(timeout, exchange(&mut conn, &req, body)).await {
        Ok(Ok(Outcome::Answered { code, reusable })) => {
            if reusable {
                keep.conn = Some((conn, Instant::now()));
            }
            Ok(code)
        }
        Ok(Ok(Outcome::NoAnswer(e))) | Ok(Err(e)) => Err(HttpError::Io(origin, e)),
        Err(_) => Err(HttpError::Timeout(origin)),
    }
}

fn request_head(url: &Url, headers: &[(String, String)], len: usize) -> String {
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sensor/{}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: keep-alive\r\n",
        url.path,
        url.host,
        env!("CARGO_PKG_VERSION"),
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

fn bad(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// One line of the answer, at most 8 KiB, without its line end.
async fn line(conn: &mut BufReader<Stream>) -> std::io::Result<String> {
    let mut raw = Vec::new();
    (&mut *conn).take(8192).read_until(b'\n', &mut raw).await?;
    if raw.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if !raw.ends_with(b"\n") {
        return Err(bad("answer line too long or cut"));
    }
    Ok(String::from_utf8_lossy(&raw).trim_end().to_owned())
}

async fn exchange(
    conn: &mut BufReader<Stream>,
    head: &str,
    body: &[u8],
) -> std::io::Result<Outcome> {
    let sent = async {
        let s = conn.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        s.flush().await
    }
    .await;
    if let Err(e) = sent {
        return Ok(Outcome::NoAnswer(e));
    }
    let status = match line(conn).await {
        Ok(l) if l.is_empty() => return Ok(Outcome::NoAnswer(bad("closed without an answer"))),
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(e),
        Err(e) => return Ok(Outcome::NoAnswer(e)),
    };
    let mut parts = status.split_whitespace();
    let (version, code) = match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => (v.to_owned(), code),
        _ => {
            return Err(bad(format!(
                "not an HTTP response: {}",
                crate::escape::escape_str(&status, 120)
            )));
        }
    };
    let mut reusable = version == "HTTP/1.1";
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for _ in 0..100 {
        let h = line(conn).await?;
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            reusable = false;
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" if value.eq_ignore_ascii_case("close") => reusable = false,
            _ => {}
        }
    }
    if !reusable {
        return Ok(Outcome::Answered { code, reusable });
    }
    // The body must be read whole for the next answer to start where it should.
    let read_whole = if chunked {
        read_chunked(conn).await
    } else if code == 204 || code == 304 || (100..200).contains(&code) {
        Ok(true)
    } else {
        match length {
            Some(n) if n <= MAX_BODY => {
                let mut sink = vec![0u8; n];
                conn.read_exact(&mut sink).await.map(|_| true)
            }
            _ => Ok(false),
        }
    };
    Ok(Outcome::Answered {
        code,
        reusable: read_whole.unwrap_or(false),
    })
}

/// Read and discard a chunked body; `false` if it is too large to bother.
async fn read_chunked(conn: &mut BufReader<Stream>) -> std::io::Result<bool> {
    let mut total = 0usize;
    loop {
        let size_line = line(conn).await?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("bad chunk size"))?;
        total = total.saturating_add(size);
        if total > MAX_BODY {
            return Ok(false);
        }
        if size == 0 {
            // Trailers, up to the blank line.
            while !line(conn).await?.is_empty() {}
            return Ok(true);
        }
        let mut chunk = vec![0u8; size + 2];
        conn.read_exact(&mut chunk).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback HTTP/1.1 server answering each request with the next canned answer
    /// (`None`: close the connection instead of answering); counts connections.
    async fn server(
        answers: Vec<Option<&'static str>>,
    ) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = conns.clone();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            'accept: loop {
                let (s, _) = l.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let mut r = BufReader::new(s);
                loop {
                    // Read one request: head, then Content-Length bytes.
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                            continue 'accept;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        if h == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).await.unwrap();
                    match answers.next().flatten() {
                        Some(a) => r.get_mut().write_all(a.as_bytes()).await.unwrap(),
                        None => continue 'accept,
                    }
                }
            }
        });
        (port, conns)
    }

    #[tokio::test]
    async fn connections_are_kept_only_when_the_answer_allows_it() {
        use std::sync::atomic::Ordering;
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let chunked =
            "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let close = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let old = "HTTP/1.0 200 OK\r\n\r\n";
        // ok, chunked, ok on one connection; close ends it; then the server drops the next
        // request without an answer (a stale keep-alive): the client retries on a fresh one.
        let (port, conns) = server(vec![
            Some(ok),
            Some(chunked),
            Some(ok),
            Some(close),
            Some(ok),
            None,
            Some(ok),
            Some(old),
            Some(ok),
        ])
        .await;
        let url = Url::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap();
        let mut keep = KeepAlive::default();
        let t = Duration::from_secs(5);
        let mut codes = Vec::new();
        for _ in 0..8 {
            codes.push(post(&mut keep, &url, None, &[], b"{}", t).await.unwrap());
        }
        assert_eq!(codes, [200, 202, 200, 200, 200, 200, 200, 200]);
        // 1: ok chunked ok close; 2: ok, dropped; 3: ok (the retry), old; 4: ok.
        assert_eq!(conns.load(Ordering::SeqCst), 4);
        assert_eq!(keep.opened, 4);
    }

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
