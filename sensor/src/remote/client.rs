//! The CLI's client for the remote API (`sensor api get|post`): HTTPS with the CA given (or
//! the system roots), an optional client certificate, the token from a file or
//! `SENSOR_API_TOKEN` (never an argument: arguments show in `ps`). Tests use it too.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpSocket,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad API URL {0:?}: use https://host:port (or http://127.0.0.1:port)")]
    Url(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        addr: String,
        reason: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::output::tls::TlsError),
    #[error("TLS handshake with {host} failed: {reason}")]
    Handshake {
        host: String,
        reason: std::io::Error,
    },
    #[error("I/O with the API: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad answer from the API: {0}")]
    Answer(String),
    #[error("no answer within {0} s")]
    Timeout(u64),
}

#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub url: String,
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub token: Option<String>,
    /// Local address to connect from.
    pub bind: Option<IpAddr>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
}

fn parse_url(url: &str) -> Result<Target, ClientError> {
    let bad = || ClientError::Url(url.to_owned());
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let hostport = rest.trim_end_matches('/');
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (hostport, if tls { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok(Target {
        tls,
        host: host.to_owned(),
        port,
    })
}

/// One request on its own connection.
pub async fn request(
    o: &ClientOptions,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Reply, ClientError> {
    let secs = if o.timeout_secs == 0 {
        30
    } else {
        o.timeout_secs
    };
    tokio::time::timeout(
        Duration::from_secs(secs),
        request_inner(o, method, path, body),
    )
    .await
    .map_err(|_| ClientError::Timeout(secs))?
}

async fn connect(o: &ClientOptions, t: &Target) -> Result<tokio::net::TcpStream, ClientError> {
    let addr: SocketAddr = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|_| ClientError::Resolve(t.host.clone()))?
        .next()
        .ok_or_else(|| ClientError::Resolve(t.host.clone()))?;
    let fail = |reason| ClientError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(fail)?;
    if let Some(ip) = o.bind {
        sock.bind(SocketAddr::new(ip, 0)).map_err(fail)?;
    }
    sock.connect(addr).await.map_err(fail)
}

/// Anything the client can speak HTTP over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connect (and handshake, for https).
async fn open(o: &ClientOptions) -> Result<(Box<dyn Io>, Target), ClientError> {
    let t = parse_url(&o.url)?;
    if !t.tls {
        return Ok((Box::new(connect(o, &t).await?), t));
    }
    // Certificate files first: a missing CA is reported as such, whatever the network says.
    let cfg = crate::output::tls::client_config(&crate::output::tls::TlsOptions {
        ca_file: o.ca.as_deref(),
        client_cert: o.client_cert.as_deref(),
        client_key: o.client_key.as_deref(),
        pin_sha256: &[],
    })?;
    let tcp = connect(o, &t).await?;
    let name =
        crate::output::tls::server_name(&t.host).ok_or_else(|| ClientError::Url(o.url.clone()))?;
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|reason| ClientError::Handshake {
            host: t.host.clone(),
            reason,
        })?;
    Ok((Box::new(tls), t))
}

fn head(o: &ClientOptions, t: &Target, method: &str, path: &str) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\n",
        t.host, t.port
    );
    if let Some(token) = &o.token {
        head.push_str(&format!("Authorization: Bearer {}\r\n", token.trim()));
    }
    head
}

async fn request_inner(
    o: &ClientOptions,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Reply, ClientError> {
    let (io, t) = open(o).await?;
    let mut head = head(o, &t, method, path);
    head.push_str("Connection: close\r\nAccept: application/json\r\n");
    let body = body.unwrap_or_default();
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut msg = head.into_bytes();
    msg.extend_from_slice(body);
    exchange(io, &msg).await
}

/// A message of the live stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamMessage {
    Json(serde_json::Value),
    /// The server closed the stream with this code.
    Closed(u16),
}

/// The live alert stream (`sensor api stream`).
pub struct Stream {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

/// Open `path` (normally `/api/v1/stream?...`) as a WebSocket.
pub async fn open_stream(o: &ClientOptions, path: &str) -> Result<Stream, ClientError> {
    use base64::Engine as _;
    let (mut io, t) = open(o).await?;
    let mut key = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key);
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let mut h = head(o, &t, "GET", path);
    h.push_str(&format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: {key}\r\n\r\n"
    ));
    io.write_all(h.as_bytes()).await?;
    io.flush().await?;
    let mut buf = Vec::new();
    let (status, accept, used) = loop {
        let mut chunk = [0u8; 4096];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(ClientError::Answer("closed before the upgrade".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(used)) => {
                let accept = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                break (resp.code.unwrap_or(0), accept, used);
            }
            Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => {}
            Ok(httparse::Status::Partial) => {
                return Err(ClientError::Answer("head too long".into()));
            }
            Err(e) => return Err(ClientError::Answer(e.to_string())),
        }
    };
    if status != 101 {
        let body = String::from_utf8_lossy(&buf[used..]).into_owned();
        return Err(ClientError::Answer(format!("HTTP {status}: {body}")));
    }
    if accept.as_deref() != Some(super::http::ws::accept_key(&key).as_str()) {
        return Err(ClientError::Answer("bad Sec-WebSocket-Accept".into()));
    }
    buf.drain(..used);
    Ok(Stream { io, buf })
}

impl Stream {
    /// The next text message (pings and other frames are handled or skipped).
    pub async fn next(&mut self) -> Result<StreamMessage, ClientError> {
        use super::http::ws;
        loop {
            match ws::parse_from(&self.buf, false) {
                ws::Parsed::Frame(op, payload, used) => {
                    self.buf.drain(..used);
                    match op {
                        1 => {
                            let v = serde_json::from_slice(&payload)
                                .map_err(|e| ClientError::Answer(e.to_string()))?;
                            return Ok(StreamMessage::Json(v));
                        }
                        8 => {
                            let code = payload
                                .get(..2)
                                .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                            return Ok(StreamMessage::Closed(code));
                        }
                        _ => continue,
                    }
                }
                ws::Parsed::Bad(_, why) => return Err(ClientError::Answer(why.into())),
                ws::Parsed::NeedMore => {}
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return Ok(StreamMessage::Closed(1006));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

async fn exchange(mut io: Box<dyn Io>, msg: &[u8]) -> Result<Reply, ClientError> {
    io.write_all(msg).await?;
    io.flush().await?;
    let mut raw = Vec::new();
    // A server refusing a client certificate says so at the first read.
    match io.read_to_end(&mut raw).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(ClientError::Io(e)),
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(ClientError::Answer("truncated".into())),
        Err(e) => return Err(ClientError::Answer(e.to_string())),
    };
    Ok(Reply {
        status: resp.code.unwrap_or(0),
        headers: resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: raw[n..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://127.0.0.1:8443").unwrap();
        assert!(t.tls && t.host == "127.0.0.1" && t.port == 8443);
        let t = parse_url("https://[::1]:9/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
        assert_eq!(parse_url("https://h").unwrap().port, 443);
        for bad in [
            "ftp://x",
            "127.0.0.1:8443",
            "https://",
            "https://h:notaport",
            "https://h:8/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
