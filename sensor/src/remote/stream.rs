//! The live alert stream (`GET /api/v1/stream`, WebSocket): a `hello`, then every new alert
//! (optionally filtered by `severity` and `rule`), the agent's status every 2 s, and `lost`
//! when this client fell behind. The token is re-checked every tick: a revoked or expired
//! token closes the stream.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    http::{Request, Response, ws},
    server::Remote,
    tokens::Grant,
};
use crate::api::feed::AlertQuery;

const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Check the upgrade request; the `Sec-WebSocket-Accept` value if it is one.
pub fn upgrade(req: &Request) -> Result<String, Response> {
    let has = |name: &str, token: &str| {
        req.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return Err(Response::error(426, "a WebSocket upgrade is required"));
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(Response::error(400, "Sec-WebSocket-Version must be 13")
            .with("Sec-WebSocket-Version", "13"));
    }
    // A page on another origin must not ride on a browser's ticket.
    if let Some(origin) = req.header("origin") {
        let host = req.header("host").unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if !origin_host.eq_ignore_ascii_case(host) {
            return Err(Response::error(403, "cross-origin stream refused"));
        }
    }
    let key = req
        .header("sec-websocket-key")
        .filter(|k| k.len() == 24)
        .ok_or_else(|| Response::error(400, "missing or bad Sec-WebSocket-Key"))?;
    Ok(ws::accept_key(key))
}

fn text(v: &serde_json::Value) -> Vec<u8> {
    ws::frame(1, v.to_string().as_bytes())
}

pub async fn run<S: AsyncRead + AsyncWrite + Unpin + Send>(
    io: S,
    accept: String,
    grant: Grant,
    req: &Request,
    remote: Arc<Remote>,
) {
    let filter = AlertQuery {
        severity: req.query("severity").and_then(|s| s.parse().ok()),
        rule: req.query("rule").map(str::to_owned),
        ..Default::default()
    };
    let (mut rd, mut wr) = tokio::io::split(io);
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if wr.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    remote.counters.streams.fetch_add(1, Ordering::Relaxed);
    let mut rx = remote.ctx.feed.subscribe();
    let hello = serde_json::json!({
        "type": "hello",
        "token": grant.id,
        "scopes": [grant.scope.name()],
    });
    if wr.write_all(&text(&hello)).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(STATUS_EVERY);
    let mut inbox = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let out: Option<Vec<u8>> = tokio::select! {
            got = rx.recv() => match got {
                Ok(n) if filter.matches(&n.alert) => Some(text(&serde_json::json!({
                    "type": "alert", "seq": n.seq, "alert": n.alert,
                }))),
                Ok(_) => None,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(lost)) => {
                    remote.counters.stream_lost.fetch_add(lost, Ordering::Relaxed);
                    remote.ctx.stats.subscriber_dropped.fetch_add(lost, Ordering::Relaxed);
                    Some(text(&serde_json::json!({ "type": "lost", "count": lost })))
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    let _ = wr.write_all(&ws::close(1001, "agent stopping")).await;
                    return;
                }
            },
            _ = tick.tick() => {
                if !remote.token_valid(&grant.id) {
                    let _ = wr.write_all(&ws::close(1008, "token revoked or expired")).await;
                    return;
                }
                Some(text(&serde_json::json!({ "type": "status", "status": (remote.ctx.status)() })))
            }
            n = rd.read(&mut chunk) => {
                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                inbox.extend_from_slice(&chunk[..n]);
                let mut reply = Vec::new();
                loop {
                    match ws::parse(&inbox) {
                        ws::Parsed::NeedMore => break,
                        ws::Parsed::Bad(code, why) => {
                            let _ = wr.write_all(&ws::close(code, why)).await;
                            return;
                        }
                        ws::Parsed::Frame(op, payload, used) => {
                            inbox.drain(..used);
                            match op {
                                8 => {
                                    let _ = wr.write_all(&ws::close(1000, "")).await;
                                    return;
                                }
                                9 => reply.extend(ws::frame(10, &payload)),
                                _ => {}
                            }
                        }
                    }
                }
                (!reply.is_empty()).then_some(reply)
            }
        };
        if let Some(bytes) = out
            && (wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err())
        {
            return;
        }
    }
}
