//! Accepting connections: the connection cap, TLS (a plain request on the HTTPS port gets a
//! plain refusal), then per request the source rate limit, routing, authentication (every
//! attempt audited), the scope check, the token rate limit and the answer.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};

use super::{
    Counters, RemoteConfig,
    http::{self, Request, Response},
    limit::{FailureWindow, Limiter},
    routes::{self, Handler},
    tokens::{Grant, Refusal},
};
use crate::{alert::Alert, api::server::ApiContext, audit::Record};

/// How long a stream ticket lives, and most tickets outstanding.
pub const TICKET_SECS: u64 = 30;
const MAX_TICKETS: usize = 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest request path kept in audit records.
const AUDIT_PATH: usize = 200;

pub struct Remote {
    pub cfg: RemoteConfig,
    pub ctx: Arc<ApiContext>,
    pub counters: Arc<Counters>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    per_source: Mutex<Limiter<IpAddr>>,
    per_token: Mutex<Limiter<String>>,
    failures: Mutex<FailureWindow<IpAddr>>,
    tickets: Mutex<HashMap<String, (Grant, Instant)>>,
    /// Raises an alert through the pipeline (the failed-authentication spike).
    raise: Box<dyn Fn(Alert) + Send + Sync>,
}

impl Remote {
    pub fn new(
        cfg: RemoteConfig,
        ctx: Arc<ApiContext>,
        counters: Arc<Counters>,
        raise: Box<dyn Fn(Alert) + Send + Sync>,
    ) -> Result<Arc<Self>, super::RemoteError> {
        cfg.check()?;
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) if !cfg.plain_http => {
                Some(tokio_rustls::TlsAcceptor::from(super::tls::server_config(
                    cert,
                    key,
                    cfg.client_ca.as_deref(),
                    !cfg.client_cert_optional,
                )?))
            }
            _ => None,
        };
        Ok(Arc::new(Self {
            per_source: Mutex::new(Limiter::new(cfg.rate_per_source, cfg.burst_per_source)),
            per_token: Mutex::new(Limiter::new(cfg.rate_per_token, cfg.burst_per_token)),
            failures: Mutex::new(FailureWindow::new(
                Duration::from_secs(cfg.auth_failure_window_secs),
                cfg.auth_failure_threshold as usize,
            )),
            tickets: Mutex::new(HashMap::new()),
            cfg,
            ctx,
            counters,
            tls,
            raise,
        }))
    }

    /// Bind the listener (at start, so a taken port fails the start with a clear error).
    pub async fn bind(&self) -> Result<TcpListener, super::RemoteError> {
        let addr = self.cfg.check()?;
        TcpListener::bind(addr)
            .await
            .map_err(|source| super::RemoteError::Bind {
                addr: addr.to_string(),
                source,
            })
    }

    /// A one-use ticket for opening the stream from a browser (which cannot set headers on
    /// a WebSocket).
    pub fn ticket(&self, grant: Grant) -> String {
        let mut raw = [0u8; 24];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw);
        let t = crate::ioc::hashes::hex(&raw);
        if let Ok(mut m) = self.tickets.lock() {
            let now = Instant::now();
            m.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(TICKET_SECS));
            if m.len() < MAX_TICKETS {
                m.insert(t.clone(), (grant, now));
            }
        }
        t
    }

    fn redeem(&self, ticket: &str) -> Option<Grant> {
        let (grant, at) = self.tickets.lock().ok()?.remove(ticket)?;
        (at.elapsed() < Duration::from_secs(TICKET_SECS)).then_some(grant)
    }

    pub fn token_valid(&self, id: &str) -> bool {
        let now = crate::clock::Clock::unix_now();
        self.ctx
            .tokens
            .lock()
            .map(|t| t.still_valid(id, now))
            .unwrap_or(false)
    }

    fn audit(&self, actor: String, req: &Request, outcome: &str, source: IpAddr, reason: &str) {
        let Some(a) = &self.ctx.audit else { return };
        let mut path = req.path.clone();
        if path.len() > AUDIT_PATH {
            let mut cut = AUDIT_PATH;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            path.truncate(cut);
        }
        crate::audit::log(
            a,
            Record {
                actor,
                action: "api-auth".into(),
                target: format!("{} {path}", req.method),
                mode: if self.tls.is_some() { "https" } else { "http" }.into(),
                outcome: outcome.into(),
                detail: serde_json::json!({ "source": source.to_string(), "reason": reason }),
                ..Default::default()
            },
        );
    }

    /// Authenticate: a bearer token, or (for the stream only) a ticket.
    fn authenticate(&self, req: &Request, h: Handler, source: IpAddr) -> Result<Grant, Refusal> {
        if h == Handler::Stream
            && req.bearer().is_none()
            && let Some(t) = req.query("ticket")
        {
            return self.redeem(t).ok_or(Refusal::Unknown);
        }
        let token = req.bearer().ok_or(Refusal::Missing)?;
        let now = crate::clock::Clock::unix_now();
        self.ctx
            .tokens
            .lock()
            .map_err(|_| Refusal::Unknown)?
            .verify(token, &source.to_string(), now)
    }

    fn auth_failed(&self, source: IpAddr, refusal: Refusal) {
        self.counters.auth_failed.fetch_add(1, Ordering::Relaxed);
        let spike = self
            .failures
            .lock()
            .ok()
            .and_then(|mut f| f.fail(&source, Instant::now()));
        if let Some(n) = spike {
            self.counters.auth_alerts.fetch_add(1, Ordering::Relaxed);
            let window = self.cfg.auth_failure_window_secs;
            let mut alert = Alert::new(
                "sensor.api.auth_failures",
                "Repeated API authentication failures",
                crate::alert::Severity::High,
                format!("{n} failed API authentications from {source} within {window} s"),
            )
            .with_tag("sensor-api")
            .with_field("source", source.to_string())
            .with_field("failures", n)
            .with_field("window_secs", window)
            .with_field("last_reason", refusal.reason());
            alert.mitre = vec!["T1110".into()];
            (self.raise)(alert);
        }
    }
}

/// Accept until the task is dropped.
pub async fn serve(listener: TcpListener, remote: Arc<Remote>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(remote.cfg.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(error) => {
                tracing::warn!(%error, "accept on the API port failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            remote
                .counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        remote.counters.connections.fetch_add(1, Ordering::Relaxed);
        let remote = remote.clone();
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, peer, remote).await;
        });
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, remote: Arc<Remote>) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = remote.tls.clone() else {
        return requests(stream, peer, remote, false).await;
    };
    // A TLS connection starts with a handshake record (0x16); anything else is somebody
    // speaking plain HTTP to the HTTPS port: tell them, in plain text, and close.
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != 0x16 => {
            remote
                .counters
                .plain_refused
                .fetch_add(1, Ordering::Relaxed);
            let mut s = stream;
            let r = Response::error(400, "this port speaks HTTPS only; plain HTTP is refused");
            let _ = http::write(&mut s, &r, false, false).await;
            return;
        }
        Ok(Ok(1)) => {}
        _ => return,
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => requests(tls, peer, remote, true).await,
        Ok(Err(error)) => {
            remote.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%error, %peer, "TLS handshake refused");
        }
        Err(_) => {
            remote.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn requests<S: AsyncRead + AsyncWrite + Unpin + Send>(
    mut io: S,
    peer: SocketAddr,
    remote: Arc<Remote>,
    tls: bool,
) {
    let source = peer.ip();
    let mut buf = Vec::new();
    loop {
        let req = match tokio::time::timeout(IDLE_TIMEOUT, http::read_request(&mut io, &mut buf))
            .await
        {
            Err(_) => return,
            Ok(Err(e)) => {
                if let Some(status) = e.status() {
                    remote.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
                    let _ =
                        http::write(&mut io, &Response::error(status, e.to_string()), tls, false)
                            .await;
                }
                return;
            }
            Ok(Ok(r)) => r,
        };
        remote.counters.requests.fetch_add(1, Ordering::Relaxed);
        let keep = req.keep_alive();
        let resp = match prepare(&req, source, &remote) {
            Err(resp) => resp,
            // The stream needs a scope, so it always comes with a grant.
            Ok((route, _, Some(grant))) if route.handler == Handler::Stream => {
                match super::stream::upgrade(&req) {
                    Ok(accept) => {
                        super::stream::run(io, accept, grant, &req, remote).await;
                        return;
                    }
                    Err(resp) => resp,
                }
            }
            Ok((route, params, grant)) => {
                routes::answer(
                    route.handler,
                    &req,
                    &params,
                    grant.as_ref(),
                    source,
                    &remote,
                )
                .await
            }
        };
        if http::write(&mut io, &resp, tls, keep).await.is_err() || !keep {
            return;
        }
    }
}

type Prepared = (&'static routes::Route, Vec<String>, Option<Grant>);

/// Everything before the answer: limits, route, authentication, scope.
fn prepare(req: &Request, source: IpAddr, remote: &Remote) -> Result<Prepared, Response> {
    let limited = |wait: Duration| {
        remote.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        Response::error(429, "rate limited").with("Retry-After", wait.as_secs().max(1).to_string())
    };
    if let Ok(mut l) = remote.per_source.lock()
        && let Err(wait) = l.take(&source, Instant::now())
    {
        return Err(limited(wait));
    }
    let (route, params) = routes::find(&req.method, &req.path).map_err(|status| {
        Response::error(
            status,
            if status == 405 {
                "method not allowed"
            } else {
                "not found"
            },
        )
    })?;
    let Some(needed) = route.scope else {
        return Ok((route, params, None));
    };
    let grant = match remote.authenticate(req, route.handler, source) {
        Ok(g) => g,
        Err(refusal) => {
            remote.audit("remote".into(), req, "refused", source, refusal.reason());
            remote.auth_failed(source, refusal);
            return Err(Response::error(401, refusal.reason()).with("WWW-Authenticate", "Bearer"));
        }
    };
    let who = format!("token:{}", grant.id);
    if grant.scope < needed {
        remote.counters.forbidden.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "needs scope {}, token has {}",
            needed.name(),
            grant.scope.name()
        );
        remote.audit(who, req, "forbidden", source, &reason);
        return Err(Response::error(403, reason));
    }
    remote.counters.auth_ok.fetch_add(1, Ordering::Relaxed);
    remote.audit(who, req, "ok", source, "token accepted");
    if let Ok(mut l) = remote.per_token.lock()
        && let Err(wait) = l.take(&grant.id, Instant::now())
    {
        return Err(limited(wait));
    }
    Ok((route, params, Some(grant)))
}
