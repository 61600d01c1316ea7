//! Just enough HTTP/1.1 for the API: one request head (bounded), an optional body with a
//! Content-Length (bounded; no chunked uploads), responses with the security headers every
//! answer carries, and WebSocket framing for the live stream.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body (containment requests and approvals are small).
pub const MAX_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 48;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connection closed")]
    Closed,
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("request body over {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("chunked request bodies are not accepted; send Content-Length")]
    Chunked,
}

impl HttpError {
    /// The status to answer with, if the connection can still take an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Closed | HttpError::Io(_) => None,
            HttpError::Malformed(_) => Some(400),
            HttpError::HeadTooLarge => Some(431),
            HttpError::BodyTooLarge => Some(413),
            HttpError::Chunked => Some(411),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// The client asked to keep the connection open (HTTP/1.1 default).
    pub fn keep_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// `%XX` and `+` decoding of a query component; invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .take(32)
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Parse a complete head (through the blank line).
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    if req.version != Some(1) {
        return Err(HttpError::Malformed("only HTTP/1.1 is spoken".into()));
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(HttpError::Malformed("the target must be a path".into()));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut out = Request {
        method,
        path: path.to_owned(),
        query: parse_query(query),
        ..Default::default()
    };
    let mut content_length = 0usize;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::Malformed(format!("header {name} is not UTF-8")))?
            .trim()
            .to_owned();
        if name == "transfer-encoding" {
            return Err(HttpError::Chunked);
        }
        if name == "content-length" {
            if out.header("content-length").is_some() {
                return Err(HttpError::Malformed("two Content-Length headers".into()));
            }
            content_length = value
                .parse()
                .map_err(|_| HttpError::Malformed("bad Content-Length".into()))?;
            if content_length > MAX_BODY {
                return Err(HttpError::BodyTooLarge);
            }
        }
        out.headers.push((name, value));
    }
    Ok(Some((out, head_len, content_length)))
}

/// Read one request. `buf` carries bytes already read past the previous request.
pub async fn read_request(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Result<Request, HttpError> {
    loop {
        if let Some((mut req, head_len, body_len)) = parse_head(buf)? {
            while buf.len() < head_len + body_len {
                let mut chunk = [0u8; 8192];
                let n = io.read(&mut chunk).await?;
                if n == 0 {
                    return Err(HttpError::Closed);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            req.body = buf[head_len..head_len + body_len].to_vec();
            buf.drain(..head_len + body_len);
            return Ok(req);
        }
        if buf.len() >= MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        let mut chunk = [0u8; 4096];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(HttpError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Content-Security-Policy of every answer: the dashboard's scripts and styles come from the
/// agent only; no inline code, no framing, no form posts.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub extra: Vec<(&'static str, String)>,
}

impl Response {
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
            extra: Vec::new(),
        }
    }

    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, &serde_json::json!({ "error": message.into() }))
    }

    pub fn bytes(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            extra: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

pub fn encode(resp: &Response, tls: bool, keep_alive: bool) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
X-Frame-Options: DENY\r\nContent-Security-Policy: {CSP}\r\nConnection: {}\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    if tls {
        head.push_str("Strict-Transport-Security: max-age=31536000\r\n");
    }
    for (n, v) in &resp.extra {
        // Values are the server's own; control characters would split headers, so they go.
        let v: String = v.chars().filter(|c| !c.is_control()).collect();
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&resp.body);
    out
}

pub async fn write(
    io: &mut (impl AsyncWrite + Unpin),
    resp: &Response,
    tls: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    io.write_all(&encode(resp, tls, keep_alive)).await?;
    io.flush().await
}

/// WebSocket (RFC 6455) pieces.
pub mod ws {
    use base64::Engine as _;

    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /// Largest frame accepted from a client (it only sends pings and closes).
    pub const MAX_CLIENT_FRAME: u64 = 64 * 1024;
    /// Largest frame the CLI takes from a server (a status is a few kilobytes).
    pub const MAX_SERVER_FRAME: u64 = 16 * 1024 * 1024;

    pub fn accept_key(key: &str) -> String {
        let d = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            format!("{}{GUID}", key.trim()).as_bytes(),
        );
        base64::engine::general_purpose::STANDARD.encode(d.as_ref())
    }

    /// An unmasked server frame.
    pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 10);
        out.push(0x80 | (opcode & 0x0f));
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= u16::MAX as usize => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    pub fn close(code: u16, reason: &str) -> Vec<u8> {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(&reason.as_bytes()[..reason.len().min(120)]);
        frame(8, &p)
    }

    #[derive(Debug, PartialEq, Eq)]
    pub enum Parsed {
        /// A whole frame: opcode, unmasked payload, bytes used.
        Frame(u8, Vec<u8>, usize),
        NeedMore,
        /// Protocol error: close with this code.
        Bad(u16, &'static str),
    }

    /// Parse one client frame from `buf`.
    pub fn parse(buf: &[u8]) -> Parsed {
        parse_from(buf, true)
    }

    /// Parse one frame; client frames are masked, server frames are not.
    pub fn parse_from(buf: &[u8], masked: bool) -> Parsed {
        if buf.len() < 2 {
            return Parsed::NeedMore;
        }
        let opcode = buf[0] & 0x0f;
        if buf[0] & 0x70 != 0 {
            return Parsed::Bad(1002, "reserved bits set");
        }
        if (buf[1] & 0x80 != 0) != masked {
            return Parsed::Bad(1002, "wrong masking for this direction");
        }
        let (len, mut at) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 if buf.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            126 | 127 => return Parsed::NeedMore,
            n => (u64::from(n), 2),
        };
        if len
            > if masked {
                MAX_CLIENT_FRAME
            } else {
                MAX_SERVER_FRAME
            }
        {
            return Parsed::Bad(1009, "frame too large");
        }
        if opcode >= 8 && (len > 125 || buf[0] & 0x80 == 0) {
            return Parsed::Bad(1002, "bad control frame");
        }
        let len = len as usize;
        let mask_len = if masked { 4 } else { 0 };
        if buf.len() < at + mask_len + len {
            return Parsed::NeedMore;
        }
        let mask = if masked {
            [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
        } else {
            [0; 4]
        };
        at += mask_len;
        let payload = buf[at..at + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        Parsed::Frame(opcode, payload, at + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_bad_ones_are_named() {
        let raw = b"GET /api/v1/alerts?limit=5&rule=a%2Fb+c&x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer  abc \r\n\r\nrest";
        let (r, n, body) = parse_head(raw).unwrap().unwrap();
        assert_eq!(r.path, "/api/v1/alerts");
        assert_eq!(r.query("limit"), Some("5"));
        assert_eq!(r.query("rule"), Some("a/b c"));
        assert_eq!(r.query("x"), Some(""));
        assert_eq!(r.bearer(), Some("abc"));
        assert_eq!((n, body), (raw.len() - 4, 0));
        assert!(
            parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n")
                .unwrap()
                .is_none()
        );
        for (bad, status) in [
            (&b"GET / HTTP/1.0\r\n\r\n"[..], 400),
            (b"GET http://x/ HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                400,
            ),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
            (b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n", 400),
        ] {
            let e = parse_head(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(e.status(), Some(status), "{bad:?}: {e}");
        }
    }

    #[test]
    fn percent_decoding_never_panics_on_odd_input() {
        for q in [
            "%", "%4", "%zz", "%e9%", "a=%C3%A9", "é%41", "%%%", "k=%ff%fe",
        ] {
            let _ = parse_query(q);
        }
        assert_eq!(percent_decode("a%C3%A9"), "aé");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn response_headers_cannot_be_split() {
        let r = Response::error(429, "slow").with("Retry-After", "1\r\nSet-Cookie: x");
        let text = String::from_utf8(encode(&r, true, false)).unwrap();
        assert!(text.contains("Retry-After: 1Set-Cookie: x\r\n"));
        assert!(text.contains("Content-Security-Policy: default-src 'none'"));
        assert!(text.contains("Strict-Transport-Security"));
    }

    #[test]
    fn websocket_frames() {
        // RFC 6455's example key.
        assert_eq!(
            ws::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let masked = [
            0x81u8, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            ws::parse(&masked),
            ws::Parsed::Frame(1, b"Hello".to_vec(), 11)
        );
        assert_eq!(ws::parse(&masked[..5]), ws::Parsed::NeedMore);
        assert!(matches!(
            ws::parse(&[0x81, 0x05, b'H']),
            ws::Parsed::Bad(1002, _)
        ));
        assert!(matches!(
            ws::parse(&[0x81, 0xff, 0, 0, 0, 0, 0, 2, 0, 0]),
            ws::Parsed::Bad(1009, _)
        ));
        assert!(matches!(
            ws::parse(&[0x09, 0x80, 0, 0, 0, 0]),
            ws::Parsed::Bad(1002, _)
        ));
        // Server frames parse back unmasked (the client side of the stream).
        let f = ws::frame(1, b"{}");
        assert_eq!(
            ws::parse_from(&f, false),
            ws::Parsed::Frame(1, b"{}".to_vec(), 4)
        );
        assert!(matches!(ws::parse(&f), ws::Parsed::Bad(1002, _)));
        let big = ws::frame(1, &vec![b'x'; 70_000]);
        assert_eq!(big[1], 127);
        assert_eq!(ws::frame(1, &[0; 200])[1], 126);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_head(&bytes);
            let _ = ws::parse(&bytes);
        }
    }
}
