//! The agent side of the control socket.

use std::{
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::Path,
    sync::{Arc, atomic::Ordering},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{ApiError, Request, Response, StatusReport, hub::Hub};

/// Longest request line accepted.
/// Large enough for an imported baseline.
const MAX_REQUEST: usize = 32 * 1024 * 1024;

pub struct ApiContext {
    pub hub: Arc<Hub>,
    pub status: Box<dyn Fn() -> StatusReport + Send + Sync>,
    pub incidents: Box<dyn Fn() -> Vec<crate::rules::incidents::Incident> + Send + Sync>,
    /// Hands a baseline command to the pipeline thread; the reply comes back on the channel.
    pub baseline: Box<
        dyn Fn(crate::baseline::Command) -> tokio::sync::oneshot::Receiver<crate::baseline::Reply>
            + Send
            + Sync,
    >,
    /// Hands a containment request (and who asked) to the responder.
    pub contain: Box<
        dyn Fn(
                crate::respond::responder::ContainRequest,
                String,
            )
                -> tokio::sync::oneshot::Receiver<crate::respond::responder::ContainReply>
            + Send
            + Sync,
    >,
    /// Queues test alerts on the pipeline; returns their ids.
    pub test_alert:
        Box<dyn Fn(u32, crate::alert::Severity, Option<String>) -> Vec<String> + Send + Sync>,
    /// Refused peers and state-changing requests are recorded here.
    pub audit: Option<crate::audit::SharedAudit>,
    /// Who may connect besides root and the agent's user.
    pub peers: super::peers::Peers,
    /// Alerts raised, for `sensor alerts watch` and the remote API.
    pub feed: Arc<super::feed::AlertFeed>,
    /// Remote API tokens, and the default lifetime and rotation grace (seconds).
    pub tokens: Arc<std::sync::Mutex<crate::remote::tokens::TokenStore>>,
    pub token_ttl_secs: i64,
    pub token_grace_secs: i64,
    /// Ask the reload task to reload rules and indicators now.
    pub reload_rules: Box<dyn Fn() + Send + Sync>,
    /// Prometheus text, for the remote API and the `[metrics]` endpoint.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    pub stats: Arc<crate::stats::Stats>,
}

/// Record a baseline or profile change (the local socket and the remote API both make them).
pub fn audit_baseline(
    audit: &crate::audit::SharedAudit,
    cmd: &crate::baseline::Command,
    reply: &crate::baseline::Reply,
    actor: &str,
) {
    let Some((action, workload)) = baseline_change(cmd) else {
        return;
    };
    let error = match reply {
        crate::baseline::Reply::Error(e) => Some(e.clone()),
        _ => None,
    };
    crate::audit::log(
        audit,
        crate::audit::Record {
            actor: actor.to_owned(),
            action,
            target: workload,
            mode: "manual".into(),
            outcome: if error.is_some() { "failed" } else { "ok" }.into(),
            detail: serde_json::json!({ "error": error }),
            ..Default::default()
        },
    );
}

/// A token command, run on the store.
fn token_command(
    ctx: &ApiContext,
    cmd: crate::remote::tokens::TokenCommand,
    actor: &str,
) -> crate::remote::tokens::TokenReply {
    use crate::remote::tokens::{TokenCommand as C, TokenReply as R};
    let now = crate::clock::Clock::unix_now();
    let Ok(mut store) = ctx.tokens.lock() else {
        return R::Error("token store unavailable".into());
    };
    let (action, target, result) = match cmd {
        C::List { all } => return R::List(store.list(all, now)),
        C::Create {
            name,
            scope,
            ttl_secs,
        } => {
            let ttl = ttl_secs.unwrap_or(ctx.token_ttl_secs);
            let r = store.create(&name, scope, ttl, actor, now).map(R::Issued);
            ("token-create", name, r)
        }
        C::Rotate { id, grace_secs } => {
            let grace = grace_secs.unwrap_or(ctx.token_grace_secs);
            let r = store.rotate(&id, grace, actor, now).map(R::Issued);
            ("token-rotate", id, r)
        }
        C::Revoke { id } => {
            let r = store.revoke(&id, now).map(|()| R::Revoked(id.clone()));
            ("token-revoke", id, r)
        }
    };
    drop(store);
    let reply = result.unwrap_or_else(|e| R::Error(e.to_string()));
    if let Some(a) = &ctx.audit {
        let (outcome, detail) = match &reply {
            R::Error(e) => ("failed", serde_json::json!({ "error": e })),
            R::Issued(i) => (
                "ok",
                serde_json::json!({ "id": i.id, "scope": i.scope, "expires": i.expires }),
            ),
            _ => ("ok", serde_json::Value::Null),
        };
        crate::audit::log(
            a,
            crate::audit::Record {
                actor: actor.to_owned(),
                action: action.into(),
                target: crate::escape::escape_str(&target, 80),
                mode: "manual".into(),
                outcome: outcome.into(),
                detail,
                ..Default::default()
            },
        );
    }
    reply
}

/// What an audited request changes: the baseline command's name and workload, or `None` for
/// the read-only ones.
fn baseline_change(cmd: &crate::baseline::Command) -> Option<(String, String)> {
    use crate::baseline::Command as C;
    let workload = match cmd {
        C::List | C::Show { .. } | C::Diff { .. } | C::Export { .. } | C::ProfileStatus => {
            return None;
        }
        C::Import { baseline } => baseline.workload.key(),
        C::Learn { workload, .. }
        | C::Freeze { workload }
        | C::Reset { workload }
        | C::ProfileShadow { workload }
        | C::ProfileEnforce { workload, .. }
        | C::ProfileOff { workload }
        | C::ProfileApprove { workload } => workload.clone(),
    };
    let name = serde_json::to_value(cmd)
        .ok()
        .and_then(|v| v.get("cmd").and_then(|c| c.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "baseline".into());
    Some((format!("baseline-{}", name.replace('_', "-")), workload))
}

/// Bind the socket: a stale socket from a previous run is replaced, anything else at the path
/// is left alone (an error, not a deletion).
pub fn bind(path: &Path) -> Result<UnixListener, ApiError> {
    let bind_err = |source| ApiError::Bind {
        path: path.display().to_string(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(bind_err(std::io::Error::other(
                "path exists and is not a socket",
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(bind_err(std::io::Error::other(
                "another agent is listening on it",
            )));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, ctx: Arc<ApiContext>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(error) = handle(stream, ctx).await {
                        tracing::debug!(%error, "control connection ended");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "accept on control socket failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Root, the agent's own user, or an allowed user or group.
fn peer_allowed(stream: &UnixStream, peers: &super::peers::Peers) -> bool {
    stream.peer_cred().is_ok_and(|c| {
        // Supplementary groups only matter when the primary ones are not enough.
        peers.allows(c.uid(), c.gid(), &[]) || {
            let groups = super::peers::peer_groups(stream);
            peers.allows(c.uid(), c.gid(), &groups)
        }
    })
}

async fn write_line(w: &mut (impl AsyncWriteExt + Unpin), r: &Response) -> Result<(), ApiError> {
    let mut line = serde_json::to_vec(r).map_err(|e| ApiError::Protocol {
        side: "agent",
        message: e.to_string(),
    })?;
    line.push(b'\n');
    w.write_all(&line).await?;
    Ok(())
}

async fn handle(stream: UnixStream, ctx: Arc<ApiContext>) -> Result<(), ApiError> {
    let peer_uid = stream.peer_cred().map(|c| c.uid()).ok();
    if !peer_allowed(&stream, &ctx.peers) {
        if let Some(a) = &ctx.audit {
            let pid = stream.peer_cred().ok().and_then(|c| c.pid());
            crate::audit::log(
                a,
                crate::audit::Record {
                    actor: format!("cli:uid={}", peer_uid.map_or("?".into(), |u| u.to_string())),
                    action: "api-auth".into(),
                    target: "control socket".into(),
                    mode: "unix".into(),
                    outcome: "refused".into(),
                    detail: serde_json::json!({"reason": "peer uid not allowed", "pid": pid}),
                    ..Default::default()
                },
            );
        }
        let (_, mut w) = stream.into_split();
        return write_line(&mut w, &Response::Error("permission denied".into())).await;
    }
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r.take(MAX_REQUEST as u64));
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let req: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => {
            return write_line(&mut w, &Response::Error(format!("bad request: {e}"))).await;
        }
    };
    match req {
        Request::Status => write_line(&mut w, &Response::Status(Box::new((ctx.status)()))).await,
        Request::Incidents => write_line(&mut w, &Response::Incidents((ctx.incidents)())).await,
        Request::TestAlert { count, .. } if count == 0 || count > super::MAX_TEST_ALERTS => {
            let msg = format!("count must be between 1 and {}", super::MAX_TEST_ALERTS);
            write_line(&mut w, &Response::Error(msg)).await
        }
        Request::TestAlert {
            count,
            severity,
            message,
        } => {
            let ids = (ctx.test_alert)(count, severity, message);
            write_line(&mut w, &Response::TestAlerts(ids)).await
        }
        Request::Contain { request } => {
            let actor = format!("cli:uid={}", peer_uid.map_or("?".into(), |u| u.to_string()));
            let reply = (ctx.contain)(request, actor).await.unwrap_or_else(|_| {
                crate::respond::responder::ContainReply::Failed(
                    "the responder is busy or shutting down; retry".into(),
                )
            });
            write_line(&mut w, &Response::Contain(Box::new(reply))).await
        }
        Request::Baseline { command } => {
            let cmd = command.clone();
            let reply = (ctx.baseline)(command).await.unwrap_or_else(|_| {
                crate::baseline::Reply::Error("the agent is shutting down".into())
            });
            if let Some(a) = &ctx.audit {
                let actor = format!("cli:uid={}", peer_uid.map_or("?".into(), |u| u.to_string()));
                audit_baseline(a, &cmd, &reply, &actor);
            }
            write_line(&mut w, &Response::Baseline(Box::new(reply))).await
        }
        Request::Token { command } => {
            let actor = format!("cli:uid={}", peer_uid.map_or("?".into(), |u| u.to_string()));
            let reply = token_command(&ctx, command, &actor);
            write_line(&mut w, &Response::Token(Box::new(reply))).await
        }
        Request::ReloadRules => {
            (ctx.reload_rules)();
            let msg = "reload requested; `sensor status` shows the rules generation".to_owned();
            write_line(&mut w, &Response::Accepted(msg)).await
        }
        Request::Alerts {
            follow,
            recent,
            filter,
        } => {
            // Subscribe first, so nothing falls between history and live alerts.
            let mut rx = follow.then(|| ctx.feed.subscribe());
            if rx.is_some() {
                write_line(&mut w, &Response::Subscribed).await?;
            }
            let (mut page, _) = ctx.feed.page(&super::feed::AlertQuery {
                limit: recent,
                ..filter.clone()
            });
            page.reverse();
            let mut last = 0;
            for n in page {
                last = n.seq;
                write_line(&mut w, &Response::Alert(Box::new(n))).await?;
            }
            w.flush().await?;
            let Some(rx) = rx.as_mut() else {
                return Ok(());
            };
            loop {
                match rx.recv().await {
                    Ok(n) if n.seq > last && filter.matches(&n.alert) => {
                        write_line(&mut w, &Response::Alert(Box::new(n))).await?;
                        w.flush().await?;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(lost)) => {
                        ctx.stats
                            .subscriber_dropped
                            .fetch_add(lost, Ordering::Relaxed);
                        write_line(&mut w, &Response::Lost(lost)).await?;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
        Request::Events {
            follow,
            recent,
            filter,
        } => {
            // Subscribe before reading history, so nothing falls between the two; say so, so a
            // client can start what it wants to watch only once it cannot miss it.
            let sub = follow.then(|| ctx.hub.subscribe(filter.clone()));
            if sub.is_some() {
                write_line(&mut w, &Response::Subscribed).await?;
                w.flush().await?;
            }
            for ev in ctx.hub.recent(recent, &filter) {
                write_line(&mut w, &Response::Event(Box::new((*ev).clone()))).await?;
            }
            let Some(mut sub) = sub else {
                return Ok(());
            };
            w.flush().await?;
            while let Some(ev) = sub.rx.recv().await {
                let lost = sub.lost.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    write_line(&mut w, &Response::Lost(lost)).await?;
                }
                write_line(&mut w, &Response::Event(Box::new((*ev).clone()))).await?;
            }
            Ok(())
        }
    }
}
