//! One sink: its filter, queue, counters, and the task that drains the queue to the
//! destination with retries (exponential backoff with jitter). A sink's task only ever waits
//! on its own destination; the pipeline only appends to the queue.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hmac::Mac as _;
use tokio::{io::AsyncWriteExt, sync::Notify};

use crate::{
    alert::{Alert, Severity},
    clock::Clock,
};

use super::{
    config::{OutputConfig, SinkKind, SyslogTransport},
    format::{self, Context, Format},
    http::{self, Url},
    queue::Queue,
    smtp,
    transport::{self, Stream},
};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("output {name}: {message}")]
    Setup { name: String, message: String },
    #[error("output {name}: {source}")]
    Spool {
        name: String,
        source: super::spool::SpoolError,
    },
}

/// Delivery latency buckets (seconds), Prometheus style.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
];

#[derive(Debug, Default)]
pub struct SinkStats {
    pub sent: AtomicU64,
    /// Failed delivery attempts (each retried later).
    pub failed: AtomicU64,
    /// Alerts the destination refused for good (HTTP 4xx, SMTP 5xx), or unreadable records.
    pub rejected: AtomicU64,
    /// Alerts the queue could not take (disk error).
    pub enqueue_errors: AtomicU64,
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    pub latency_sum_us: AtomicU64,
    pub latency_count: AtomicU64,
    pub latency_max_us: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    pub last_sent_unix: AtomicU64,
}

impl SinkStats {
    fn observe(&self, secs: f64) {
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let us = (secs * 1e6) as u64;
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
    }

    pub fn set_error(&self, e: Option<String>) {
        if let Ok(mut cur) = self.last_error.lock() {
            *cur = e;
        }
    }
}

/// Which alerts a sink takes.
#[derive(Debug, Clone)]
pub struct Filter {
    min: Severity,
    rules: Vec<String>,
    exclude: Vec<String>,
}

impl Filter {
    pub fn from_config(c: &OutputConfig) -> Self {
        Self {
            min: c.min_severity.unwrap_or(Severity::Info),
            rules: c.rules.clone(),
            exclude: c.exclude_rules.clone(),
        }
    }

    pub fn accepts(&self, a: &Alert) -> bool {
        let glob = crate::baseline::workload::glob;
        a.severity >= self.min
            && (self.rules.is_empty() || self.rules.iter().any(|p| glob(p, &a.rule.id)))
            && !self.exclude.iter().any(|p| glob(p, &a.rule.id))
    }
}

pub struct Sink {
    pub config: OutputConfig,
    pub filter: Filter,
    pub queue: Mutex<Queue>,
    pub notify: Notify,
    pub stats: SinkStats,
}

impl Sink {
    pub fn open(config: &OutputConfig, spool_root: &Path) -> Result<Self, SinkError> {
        let queue = match config.kind() {
            SinkKind::Stdout => Queue::memory(config.queue_max.unwrap_or(10_000)),
            _ => Queue::Disk(
                super::spool::Spool::open(
                    &spool_root.join(&config.name),
                    config.spool_max_bytes.unwrap_or(64 << 20),
                )
                .map_err(|source| SinkError::Spool {
                    name: config.name.clone(),
                    source,
                })?,
            ),
        };
        Ok(Self {
            config: config.clone(),
            filter: Filter::from_config(config),
            queue: Mutex::new(queue),
            notify: Notify::new(),
            stats: SinkStats::default(),
        })
    }
}

/// Why a send failed, and whether trying again can help.
#[derive(Debug)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

impl SendError {
    fn retry(message: impl ToString) -> Self {
        Self {
            permanent: false,
            message: message.to_string(),
        }
    }
}

/// The destination end of a sink.
pub enum Sender {
    Stdout {
        format: Format,
        ctx: Context,
    },
    Syslog {
        transport: SyslogTransport,
        host: String,
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
        server_name: String,
        format: Format,
        ctx: Context,
        conn: Option<Stream>,
        udp: Option<tokio::net::UdpSocket>,
        relp: Option<Box<super::relp::Session>>,
        timeout: Duration,
    },
    Webhook {
        url: Url,
        tls: Option<Arc<rustls::ClientConfig>>,
        headers: Vec<(String, String)>,
        hmac: Option<Vec<u8>>,
        format: Format,
        ctx: Context,
        timeout: Duration,
        conn: http::KeepAlive,
    },
    Email {
        host: String,
        port: u16,
        security: smtp::Security,
        tls: Option<Arc<rustls::ClientConfig>>,
        credentials: Option<(String, String)>,
        from: String,
        to: Vec<String>,
        digest: Duration,
        max_per_mail: usize,
        last_sent: Option<Instant>,
        ctx: Context,
        timeout: Duration,
    },
}

fn read_secret(name: &str, field: &str, path: &Path) -> Result<String, SinkError> {
    let text = std::fs::read_to_string(path).map_err(|e| SinkError::Setup {
        name: name.into(),
        message: format!("{field} {}: {e}", path.display()),
    })?;
    let secret = text.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        return Err(SinkError::Setup {
            name: name.into(),
            message: format!("{field} {} is empty", path.display()),
        });
    }
    Ok(secret)
}

impl Sender {
    /// Builds the sender from a checked config (`Config::load` runs [`OutputConfig::check`]):
    /// reads secret files and TLS material (errors name the file).
    pub fn build(c: &OutputConfig) -> Result<Self, SinkError> {
        let setup = |message: String| SinkError::Setup {
            name: c.name.clone(),
            message,
        };
        let tls = if c.uses_tls() {
            Some(
                super::tls::client_config(&super::tls::TlsOptions {
                    ca_file: c.ca_file.as_deref(),
                    client_cert: c.client_cert.as_deref(),
                    client_key: c.client_key.as_deref(),
                    pin_sha256: &c.pin_sha256,
                })
                .map_err(|e| setup(e.to_string()))?,
            )
        } else {
            None
        };
        let ctx = Context::new(c.facility_number());
        let timeout = Duration::from_secs(c.timeout_secs.unwrap_or(10));
        let address = || {
            c.address
                .as_deref()
                .and_then(transport::split_address)
                .ok_or_else(|| setup("`address` is not host:port".into()))
        };
        Ok(match c.kind() {
            SinkKind::Stdout => Sender::Stdout {
                format: c.format(),
                ctx,
            },
            SinkKind::Syslog => {
                let (host, port) = address()?;
                Sender::Syslog {
                    transport: c.transport.unwrap_or(SyslogTransport::Tls),
                    server_name: c.server_name.clone().unwrap_or_else(|| host.clone()),
                    host,
                    port,
                    tls,
                    format: c.format(),
                    ctx,
                    conn: None,
                    udp: None,
                    relp: None,
                    timeout,
                }
            }
            SinkKind::Webhook => {
                let url = Url::parse(c.url.as_deref().unwrap_or("")).map_err(setup)?;
                let hmac = match &c.hmac_secret_file {
                    Some(p) => Some(read_secret(&c.name, "hmac_secret_file", p)?.into_bytes()),
                    None => None,
                };
                Sender::Webhook {
                    url,
                    tls,
                    headers: c
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    hmac,
                    format: c.format(),
                    ctx,
                    timeout,
                    conn: http::KeepAlive::default(),
                }
            }
            SinkKind::Email => {
                let (host, port) = address()?;
                let credentials = match (&c.username, &c.password_file) {
                    (Some(u), Some(p)) => {
                        Some((u.clone(), read_secret(&c.name, "password_file", p)?))
                    }
                    _ => None,
                };
                Sender::Email {
                    host,
                    port,
                    security: c.security.unwrap_or(smtp::Security::Starttls),
                    tls,
                    credentials,
                    from: c.from.clone().unwrap_or_default(),
                    to: c.to.clone(),
                    digest: Duration::from_secs(c.digest_secs.unwrap_or(60)),
                    max_per_mail: c.max_per_mail.unwrap_or(200),
                    last_sent: None,
                    ctx,
                    timeout,
                }
            }
        })
    }

    /// Alerts per send: webhooks post one at a time, email sends a digest.
    fn chunk(&self) -> usize {
        match self {
            Sender::Webhook { .. } => 1,
            Sender::Email { max_per_mail, .. } => *max_per_mail,
            _ => 512,
        }
    }

    /// How long until the next send may go (the email digest interval).
    fn wait(&self) -> Option<Duration> {
        match self {
            Sender::Email {
                last_sent: Some(t),
                digest,
                ..
            } => digest.checked_sub(t.elapsed()),
            _ => None,
        }
    }

    /// Connects (and completes TLS) without sending: `sensor config check` and start-up use
    /// it to report an unreachable or misconfigured destination.
    pub async fn probe(&mut self) -> Result<(), String> {
        let (host, port, tls, name, timeout) = match self {
            Sender::Stdout { .. } => return Ok(()),
            Sender::Syslog {
                transport: SyslogTransport::Udp,
                ..
            } => return Ok(()),
            Sender::Syslog {
                host,
                port,
                tls,
                server_name,
                timeout,
                ..
            } => (
                host.clone(),
                *port,
                tls.clone(),
                server_name.clone(),
                *timeout,
            ),
            Sender::Webhook {
                url, tls, timeout, ..
            } => (
                url.host.clone(),
                url.port,
                tls.clone(),
                url.host.clone(),
                *timeout,
            ),
            Sender::Email {
                host,
                port,
                security,
                tls,
                timeout,
                ..
            } => (
                host.clone(),
                *port,
                tls.clone().filter(|_| *security == smtp::Security::Tls),
                host.clone(),
                *timeout,
            ),
        };
        transport::connect(&host, port, tls.map(|t| (t, name.as_str())), timeout)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn send(&mut self, alerts: &[Alert]) -> Result<(), SendError> {
        match self {
            Sender::Stdout { format, ctx } => {
                let mut out = Vec::new();
                for a in alerts {
                    out.extend(format::render(*format, a, ctx));
                    out.push(b'\n');
                }
                let mut stdout = tokio::io::stdout();
                stdout.write_all(&out).await.map_err(SendError::retry)?;
                stdout.flush().await.map_err(SendError::retry)
            }
            Sender::Syslog {
                transport: SyslogTransport::Udp,
                host,
                port,
                format,
                ctx,
                udp,
                ..
            } => {
                if udp.is_none() {
                    let bind = if host.contains(':') {
                        "[::]:0"
                    } else {
                        "0.0.0.0:0"
                    };
                    let s = tokio::net::UdpSocket::bind(bind)
                        .await
                        .map_err(SendError::retry)?;
                    s.connect((host.as_str(), *port))
                        .await
                        .map_err(SendError::retry)?;
                    *udp = Some(s);
                }
                let Some(sock) = udp.as_ref() else {
                    return Err(SendError::retry("no socket"));
                };
                for a in alerts {
                    let msg = format::render(*format, a, ctx);
                    // A datagram can hold 65 507 bytes; rendered alerts are bounded far below.
                    if let Err(e) = sock.send(&msg).await {
                        *udp = None;
                        return Err(SendError::retry(format!("udp {host}:{port}: {e}")));
                    }
                }
                Ok(())
            }
            Sender::Syslog {
                transport: SyslogTransport::Relp | SyslogTransport::RelpTls,
                host,
                port,
                tls,
                server_name,
                format,
                ctx,
                relp,
                timeout,
                ..
            } => {
                if relp.as_ref().is_some_and(|s| s.peer_gone()) {
                    *relp = None;
                }
                if relp.is_none() {
                    let t = tls.clone().map(|t| (t, server_name.as_str()));
                    let stream = transport::connect(host, *port, t, *timeout)
                        .await
                        .map_err(SendError::retry)?;
                    let session = super::relp::Session::open(stream, *timeout)
                        .await
                        .map_err(|e| SendError::retry(format!("{host}:{port}: {e}")))?;
                    *relp = Some(Box::new(session));
                }
                let Some(session) = relp.as_mut() else {
                    return Err(SendError::retry("not connected"));
                };
                let messages: Vec<Vec<u8>> = alerts
                    .iter()
                    .map(|a| format::render(*format, a, ctx))
                    .collect();
                // Unacknowledged messages are sent again on a new session: at-least-once.
                if let Err(e) = session.send(&messages).await {
                    *relp = None;
                    return Err(SendError::retry(format!("{host}:{port}: {e}")));
                }
                Ok(())
            }
            Sender::Syslog {
                host,
                port,
                tls,
                server_name,
                format,
                ctx,
                conn,
                timeout,
                ..
            } => {
                if conn.as_ref().is_some_and(|c| c.peer_gone()) {
                    *conn = None;
                }
                if conn.is_none() {
                    let t = tls.clone().map(|t| (t, server_name.as_str()));
                    *conn = Some(
                        transport::connect(host, *port, t, *timeout)
                            .await
                            .map_err(SendError::retry)?,
                    );
                }
                let mut frames = Vec::new();
                for a in alerts {
                    frames.extend(super::syslog::frame(&format::render(*format, a, ctx)));
                }
                let Some(stream) = conn.as_mut() else {
                    return Err(SendError::retry("not connected"));
                };
                let write = async {
                    stream.write_all(&frames).await?;
                    stream.flush().await
                };
                match tokio::time::timeout(*timeout, write).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => {
                        *conn = None;
                        Err(SendError::retry(format!("{host}:{port}: {e}")))
                    }
                    Err(_) => {
                        *conn = None;
                        Err(SendError::retry(format!("{host}:{port}: write timed out")))
                    }
                }
            }
            Sender::Webhook {
                url,
                tls,
                headers,
                hmac,
                format,
                ctx,
                timeout,
                conn,
            } => {
                for a in alerts {
                    let body = format::render(*format, a, ctx);
                    let mut hs = headers.clone();
                    hs.push(("X-Sensor-Alert-Id".into(), format::safe(&a.id)));
                    if let Some(key) = hmac {
                        let ts = Clock::unix_now().to_string();
                        hs.push(("X-Sensor-Timestamp".into(), ts.clone()));
                        hs.push(("X-Sensor-Signature".into(), sign(key, &ts, &body)));
                    }
                    let code = http::post(conn, url, tls.clone(), &hs, &body, *timeout)
                        .await
                        .map_err(SendError::retry)?;
                    match code {
                        200..=299 => {}
                        408 | 429 | 500..=599 => {
                            return Err(SendError::retry(format!(
                                "{} answered HTTP {code}",
                                url.origin()
                            )));
                        }
                        _ => {
                            return Err(SendError {
                                permanent: true,
                                message: format!("{} refused the alert: HTTP {code}", url.origin()),
                            });
                        }
                    }
                }
                Ok(())
            }
            Sender::Email {
                host,
                port,
                security,
                tls,
                credentials,
                from,
                to,
                last_sent,
                ctx,
                timeout,
                ..
            } => {
                let (subject, body) = digest(alerts, &ctx.hostname);
                let first = alerts
                    .first()
                    .map(|a| format::safe(&a.id))
                    .unwrap_or_default();
                let server = smtp::Server {
                    host,
                    port: *port,
                    security: *security,
                    tls: tls.clone(),
                    credentials: credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
                    helo: &ctx.hostname,
                    timeout: *timeout,
                };
                let msg = smtp::Message {
                    from,
                    to,
                    subject: &subject,
                    body: &body,
                    message_id: &first,
                };
                let r = smtp::send(&server, &msg).await;
                *last_sent = Some(Instant::now());
                r.map_err(|e| SendError {
                    permanent: e.permanent(),
                    message: e.to_string(),
                })
            }
        }
    }
}

/// `sha256=<hex HMAC-SHA256(key, timestamp "." body)>`: the timestamp in the signed text lets
/// receivers refuse replays.
pub fn sign(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Subject and body of a mail for one or more alerts.
pub fn digest(alerts: &[Alert], host: &str) -> (String, String) {
    let safe = format::safe;
    let top = alerts
        .iter()
        .map(|a| a.severity)
        .max()
        .unwrap_or(Severity::Info);
    let subject = match alerts {
        [one] => format!(
            "[sensor] {} {}: {} on {}",
            one.severity.as_str().to_uppercase(),
            safe(&one.rule.id),
            safe(&one.rule.name),
            safe(host)
        ),
        many => format!(
            "[sensor] {} alerts on {} (highest: {})",
            many.len(),
            safe(host),
            top.as_str()
        ),
    };
    let mut body = format!(
        "{} alert(s) from the sensor on {}.\n\n",
        alerts.len(),
        safe(host)
    );
    for a in alerts {
        let a = format::bounded(a);
        body.push_str(&format!(
            "{} {} {} {}\n  {}\n",
            a.time,
            a.severity.as_str().to_uppercase(),
            safe(&a.rule.id),
            safe(&a.rule.name),
            safe(&a.message)
        ));
        if let Some(p) = &a.process {
            body.push_str(&format!(
                "  process: pid {} {}\n",
                p.pid,
                safe(&p.executable)
            ));
        }
        if let Some(cmd) = format::command_line(&a) {
            body.push_str(&format!("  command line: {}\n", safe(&cmd)));
        }
        if let Some(c) = &a.container {
            body.push_str(&format!("  container: {}\n", safe(&c.id)));
        }
        if !a.mitre.is_empty() {
            body.push_str(&format!("  MITRE ATT&CK: {}\n", a.mitre.join(", ")));
        }
        body.push_str(&format!("  alert id: {}\n\n", safe(&a.id)));
    }
    (format::cap(&subject, 250), body)
}

impl Sink {
    /// Appends an accepted alert (as its JSON) to the queue and wakes the sender.
    pub fn offer(&self, json: &str) {
        let pushed = match self.queue.lock() {
            Ok(mut q) => q.push(Clock::unix_ms(), json).map_err(|e| e.to_string()),
            Err(_) => Err("queue lock poisoned".into()),
        };
        match pushed {
            Ok(()) => self.notify.notify_one(),
            Err(error) => {
                self.stats.enqueue_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(sink = %self.config.name, %error, "cannot queue an alert");
            }
        }
    }

    /// Group commit for the disk spool: every `SYNC_INTERVAL`, fsync the head segment if
    /// alerts were appended. A failed fsync is counted as an enqueue error and shown.
    pub async fn flush_spool(self: Arc<Self>) {
        let mut every = tokio::time::interval(super::spool::SYNC_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some((file, path)) = self.queue.lock().ok().and_then(|mut q| q.take_sync()) else {
                continue;
            };
            let synced = tokio::task::spawn_blocking(move || file.sync_data()).await;
            if let Ok(Err(error)) | Err(error) = synced.map_err(std::io::Error::other) {
                self.stats.enqueue_errors.fetch_add(1, Ordering::Relaxed);
                let msg = format!("fsync of {} failed: {error}", path.display());
                tracing::error!(sink = %self.config.name, "{msg}");
                self.stats.set_error(Some(msg));
            }
        }
    }

    /// Drains the queue forever. Cancel the task to stop; the spool keeps what is left.
    pub async fn run(self: Arc<Self>, mut sender: Sender) {
        let min = Duration::from_millis(self.config.retry_min_ms.unwrap_or(500).max(10));
        let max = Duration::from_secs(self.config.retry_max_secs.unwrap_or(60).max(1));
        let mut backoff = min;
        let mut last_logged: Option<String> = None;
        loop {
            if let Some(wait) = sender.wait() {
                tokio::time::sleep(wait).await;
            }
            // Bound first: a guard in a match scrutinee would live across the awaits below.
            let read = match self.queue.lock() {
                Ok(mut q) => q.read(sender.chunk()),
                Err(_) => return,
            };
            let batch = match read {
                Ok(b) => b,
                Err(error) => {
                    tracing::error!(sink = %self.config.name, %error, "cannot read the spool");
                    self.stats.set_error(Some(error.to_string()));
                    tokio::time::sleep(max).await;
                    continue;
                }
            };
            let Some((_, end)) = batch.last().cloned() else {
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            };
            let mut alerts = Vec::with_capacity(batch.len());
            let mut enqueued = Vec::with_capacity(batch.len());
            for (rec, _) in &batch {
                match serde_json::from_str::<Alert>(&rec.body) {
                    Ok(a) => {
                        alerts.push(a);
                        enqueued.push(rec.enqueued_ms);
                    }
                    Err(_) => {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let result = if alerts.is_empty() {
                Ok(())
            } else {
                sender.send(&alerts).await
            };
            let done = match result {
                Ok(()) => {
                    let now = Clock::unix_ms();
                    for t in &enqueued {
                        self.stats.observe(now.saturating_sub(*t) as f64 / 1000.0);
                    }
                    self.stats
                        .sent
                        .fetch_add(alerts.len() as u64, Ordering::Relaxed);
                    self.stats
                        .last_sent_unix
                        .store(now / 1000, Ordering::Relaxed);
                    if last_logged.take().is_some() {
                        tracing::info!(sink = %self.config.name, "delivering again");
                    }
                    self.stats.set_error(None);
                    backoff = min;
                    true
                }
                Err(e) if e.permanent => {
                    self.stats
                        .rejected
                        .fetch_add(alerts.len() as u64, Ordering::Relaxed);
                    tracing::warn!(sink = %self.config.name, error = %e.message, alerts = alerts.len(), "destination refused alerts; not retried");
                    self.stats.set_error(Some(e.message));
                    true
                }
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if last_logged.as_deref() != Some(e.message.as_str()) {
                        tracing::warn!(sink = %self.config.name, error = %e.message, queued = self.pending(), "delivery failed; retrying with backoff");
                        last_logged = Some(e.message.clone());
                    }
                    self.stats.set_error(Some(e.message));
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(max);
                    false
                }
            };
            if done
                && let Ok(mut q) = self.queue.lock()
                && let Err(error) = q.ack(end)
            {
                tracing::error!(sink = %self.config.name, %error, "cannot persist the spool cursor");
            }
        }
    }

    pub fn pending(&self) -> u64 {
        self.queue.lock().map(|q| q.pending()).unwrap_or(0)
    }
}

/// Between half and all of `d`, so many sensors retrying one SIEM do not retry in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0) as u64;
    // A cheap mix of the clock: enough to spread retries, not for secrets.
    let r = (nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % 1000;
    d / 2 + d / 2 * (r as u32) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_severity_and_rule_globs() {
        let c: OutputConfig = toml::from_str(
            "name = \"x\"\ntype = \"stdout\"\nmin_severity = \"medium\"\nrules = [\"SEN-*\"]\nexclude_rules = [\"SEN-NOISY-*\"]",
        )
        .unwrap();
        let f = Filter::from_config(&c);
        let a = |id: &str, s| Alert::new(id, "n", s, "m");
        assert!(f.accepts(&a("SEN-CRED-001", Severity::High)));
        assert!(!f.accepts(&a("SEN-CRED-001", Severity::Low)));
        assert!(!f.accepts(&a("sensor.test", Severity::High)));
        assert!(!f.accepts(&a("SEN-NOISY-1", Severity::Critical)));
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // Computed independently: Python's hmac.new(b"Jefe", b'1700000000.{"a":1}', sha256).
        assert_eq!(
            sign(b"Jefe", "1700000000", br#"{"a":1}"#),
            "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        for ms in [10u64, 500, 60_000] {
            let d = Duration::from_millis(ms);
            let j = jitter(d);
            assert!(j >= d / 2 && j <= d, "{j:?} for {d:?}");
        }
    }

    #[test]
    fn digests_name_the_count_and_escape_content() {
        let mut a = Alert::new("R-1", "n\nforged", Severity::Critical, "m\x1b[2J");
        a.id = "id-1".into();
        let (subject, body) = digest(&[a.clone()], "h");
        assert!(!subject.contains('\n') && subject.contains("CRITICAL R-1"));
        assert!(!body.contains('\x1b'));
        let (subject, _) = digest(&[a.clone(), a], "h");
        assert!(subject.contains("2 alerts") && subject.contains("critical"));
    }
}
