//! A tiny synchronous W3C WebDriver client for the dashboard tests: plain HTTP/1.1 over
//! `std::net::TcpStream` to a chromedriver this process starts on a free loopback port,
//! driving a headless Chromium with a fresh profile.
//!
//! Every failure is a `String` carrying the WebDriver error and message (or the transport
//! problem); nothing chromedriver returns is unwrapped.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long one WebDriver command may take (navigation included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A WebDriver error: its `error` code (`no such alert`, `javascript error` ...) and message.
#[derive(Debug)]
struct WdError {
    code: String,
    message: String,
}

impl From<WdError> for String {
    fn from(e: WdError) -> String {
        // chromedriver's messages mostly start with the code already.
        if e.code.is_empty() || e.message.starts_with(&e.code) {
            e.message
        } else {
            format!("{}: {}", e.code, e.message)
        }
    }
}

fn transport(message: String) -> WdError {
    WdError {
        code: String::new(),
        message,
    }
}

/// A chromedriver process and one browser session in it. Dropping it ends the session,
/// kills chromedriver (and what it started) and removes the browser profile.
pub struct Driver {
    child: Child,
    port: u16,
    session: String,
    dir: tempfile::TempDir,
}

impl Driver {
    /// Chromium and chromedriver are installed where [`Driver::start`] looks for them.
    pub fn available() -> bool {
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
    }

    /// Start chromedriver on a free loopback port, wait until it is ready and open a
    /// headless Chromium session (insecure certificates accepted, browser logs kept).
    pub fn start() -> Result<Driver, String> {
        let dir = tempfile::Builder::new()
            .prefix("sensor-webdriver.")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).map_err(|e| format!("{}: {e}", profile.display()))?;
        let log_path = dir.path().join("chromedriver.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let port = free_port()?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path.display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Its own process group, so that dropping the driver also ends the browser.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))?;
        let mut d = Driver {
            child,
            port,
            session: String::new(),
            dir,
        };
        d.wait_ready(Duration::from_secs(20))
            .map_err(|e| format!("{e}\n{}", d.log_tail()))?;
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "acceptInsecureCerts": true,
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-dev-shm-usage",
                            format!("--user-data-dir={}", profile.display()),
                            "--window-size=1400,1000",
                        ]
                    }
                }
            }
        });
        let v = d
            .raw("POST", "/session", Some(&caps))
            .map_err(|e| format!("new session: {}\n{}", String::from(e), d.log_tail()))?;
        d.session = v
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("new session: no sessionId in {v}"))?
            .to_owned();
        Ok(d)
    }

    /// The port chromedriver listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The last lines chromedriver logged (for error messages).
    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(20);
        format!("chromedriver log (tail):\n{}", lines[from..].join("\n"))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{CHROMEDRIVER} exited early: {status}"));
            }
            match self.raw("GET", "/status", None) {
                Ok(v) if v.get("ready").and_then(Value::as_bool) == Some(true) => return Ok(()),
                Ok(v) => last = format!("not ready: {v}"),
                Err(e) => last = String::from(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{CHROMEDRIVER} on port {} not ready after {timeout:?}: {last}",
            self.port
        ))
    }

    /// One command to the session (`path` below `/session/{id}`).
    fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, WdError> {
        let full = format!("/session/{}{path}", self.session);
        self.raw(method, &full, body)
    }

    /// One HTTP request to chromedriver; the response's `value`, or its error.
    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, WdError> {
        let payload = match (method, body) {
            (_, Some(b)) => b.to_string(),
            ("POST", None) => "{}".to_owned(),
            _ => String::new(),
        };
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| transport(format!("connect to chromedriver: {e}")))?;
        s.set_read_timeout(Some(COMMAND_TIMEOUT))
            .and_then(|()| s.set_write_timeout(Some(COMMAND_TIMEOUT)))
            .map_err(|e| transport(format!("socket timeout: {e}")))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.port
        );
        if method != "GET" {
            req.push_str(&format!(
                "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
                payload.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(&payload);
        s.write_all(req.as_bytes())
            .map_err(|e| transport(format!("{method} {path}: write: {e}")))?;
        // chromedriver keeps the connection open whatever we ask: read until the response
        // is complete by its own framing, not to the end of the stream.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        let (status, body) = loop {
            match parse_response(&raw) {
                Ok(Some(done)) => break done,
                Ok(None) => {}
                Err(e) => return Err(transport(format!("{method} {path}: {e}"))),
            }
            let n = s
                .read(&mut buf)
                .map_err(|e| transport(format!("{method} {path}: read: {e}")))?;
            if n == 0 {
                // The peer closed: a body without a length ends here.
                match parse_complete(&raw) {
                    Ok(done) => break done,
                    Err(e) => return Err(transport(format!("{method} {path}: {e}"))),
                }
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let _ = s.shutdown(Shutdown::Both);
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            transport(format!(
                "{method} {path}: HTTP {status}, not JSON ({e}): {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ))
        })?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if let Some(code) = value.get("error").and_then(Value::as_str) {
            return Err(WdError {
                code: code.to_owned(),
                message: value
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        if !(200..300).contains(&status) {
            return Err(transport(format!("{method} {path}: HTTP {status}: {v}")));
        }
        Ok(value)
    }

    /// Navigate and wait for the page to load.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", Some(&json!({ "url": url })))?;
        Ok(())
    }

    /// The current page's URL.
    pub fn url(&self) -> Result<String, String> {
        let v = self.cmd("GET", "/url", None)?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("url: not a string: {v}"))
    }

    /// Reload the page.
    pub fn refresh(&self) -> Result<(), String> {
        self.cmd("POST", "/refresh", None)?;
        Ok(())
    }

    /// Resize the browser window (CSS pixels).
    pub fn set_window_size(&self, width: u32, height: u32) -> Result<(), String> {
        self.cmd(
            "POST",
            "/window/rect",
            Some(&json!({ "width": width, "height": height })),
        )?;
        Ok(())
    }

    /// Run `script` (a function body: use `return`, and `arguments[i]`) synchronously in the
    /// page; its return value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Result<Value, String> {
        Ok(self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )?)
    }

    /// Ids of the elements matching a CSS selector (possibly none).
    pub fn find_css(&self, selector: &str) -> Result<Vec<String>, String> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(&json!({ "using": "css selector", "value": selector })),
        )?;
        let list = v
            .as_array()
            .ok_or_else(|| format!("find {selector}: not a list: {v}"))?;
        list.iter()
            .map(|e| {
                e.get(ELEMENT_KEY)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("find {selector}: not an element: {e}"))
            })
            .collect()
    }

    /// The one element matching `selector`, waiting up to `timeout` for it to appear.
    pub fn wait_css(&self, selector: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find_css(selector)?.into_iter().next() {
                return Ok(e);
            }
            if Instant::now() >= deadline {
                return Err(format!("no element matches {selector} after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The rendered (visible) text of an element.
    pub fn text(&self, elem: &str) -> Result<String, String> {
        let v = self.cmd("GET", &format!("/element/{elem}/text"), None)?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("text: not a string: {v}"))
    }

    pub fn click(&self, elem: &str) -> Result<(), String> {
        self.cmd("POST", &format!("/element/{elem}/click"), None)?;
        Ok(())
    }

    /// Type `text` into an element (appended to what it holds).
    pub fn send_keys(&self, elem: &str, text: &str) -> Result<(), String> {
        self.cmd(
            "POST",
            &format!("/element/{elem}/value"),
            Some(&json!({ "text": text })),
        )?;
        Ok(())
    }

    /// The text of an open `alert()`/`confirm()`/`prompt()` dialog; `None` when there is none.
    pub fn alert_text(&self) -> Result<Option<String>, String> {
        match self.cmd("GET", "/alert/text", None) {
            Ok(v) => Ok(Some(v.as_str().unwrap_or_default().to_owned())),
            Err(e) if e.code == "no such alert" => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<(), String> {
        let v = self.cmd("GET", "/screenshot", None)?;
        let b64 = v
            .as_str()
            .ok_or_else(|| "screenshot: not a string".to_owned())?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("screenshot: bad base64: {e}"))?;
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Poll `script` (which returns a boolean) every 100 ms until it returns true (→ true) or
    /// `timeout` passes (→ false). Script errors count as false (the page may be loading).
    pub fn wait_until(&self, timeout: Duration, script: &str) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Value::Bool(true)) = self.execute(script, &[]) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Browser console entries since the last call (`LEVEL message`): script errors and CSP
    /// violations show here.
    pub fn console_logs(&self) -> Result<Vec<String>, String> {
        let v = self.cmd("POST", "/se/log", Some(&json!({ "type": "browser" })))?;
        let list = v
            .as_array()
            .ok_or_else(|| format!("logs: not a list: {v}"))?;
        Ok(list
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.get("level").and_then(Value::as_str).unwrap_or("?"),
                    e.get("message").and_then(Value::as_str).unwrap_or("")
                )
            })
            .collect())
    }

    /// Where the browser profile and chromedriver's log live (removed on drop).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        // The group holds chromedriver and the browser it started (made with process_group(0)).
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// (status, body) of an HTTP/1.1 response once `raw` holds all of it (by Content-Length or
/// chunked framing); `None` while more is needed. Chunked bodies are decoded.
fn parse_response(raw: &[u8]) -> Result<Option<(u16, Vec<u8>)>, String> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = Some(
                    v.parse::<usize>()
                        .map_err(|_| format!("bad Content-Length {v:?}"))?,
                );
            }
        }
    }
    let body = &raw[end + 4..];
    if chunked {
        return Ok(dechunk(body)?.map(|b| (status, b)));
    }
    match length {
        Some(n) if n <= body.len() => Ok(Some((status, body[..n].to_vec()))),
        Some(_) => Ok(None),
        // No length: the body runs to the end of the connection.
        None => Ok(None),
    }
}

/// The response in `raw` after the peer closed the connection.
fn parse_complete(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    if let Some(done) = parse_response(raw)? {
        return Ok(done);
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "connection closed after {} bytes, no HTTP header",
                raw.len()
            )
        })?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    if head.contains("content-length:") || head.contains("transfer-encoding:") {
        return Err(format!(
            "connection closed mid-response ({} bytes)",
            raw.len()
        ));
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("bad status line")?;
    Ok((status, raw[end + 4..].to_vec()))
}

/// A decoded chunked body, or `None` while its last chunk has not arrived.
fn dechunk(mut body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&body[..nl]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("chunked body: bad size {size_hex:?}"))?;
        body = &body[nl + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if body.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length:13\r\n\r\n{\"value\":1}\r\nextra";
        assert_eq!(
            parse_response(plain).unwrap(),
            Some((200, b"{\"value\":1}\r\n".to_vec()))
        );
        assert_eq!(parse_response(&plain[..30]).unwrap(), None);
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"va\r\n7\r\nlue\":2}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            Some((404, b"{\"value\":2}".to_vec()))
        );
        assert_eq!(parse_response(&chunked[..60]).unwrap(), None);
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert_eq!(
            parse_complete(b"HTTP/1.0 200 OK\r\n\r\n{}").unwrap(),
            (200, b"{}".to_vec())
        );
        assert!(parse_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
    }
}
