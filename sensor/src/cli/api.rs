//! `sensor token ...` (remote API tokens, through the agent) and `sensor api ...` (the HTTPS
//! client, and a private CA for deployments without a PKI).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::{
    api::{Request, Response, client::Client},
    config::StateDir,
    remote::{
        client::{ClientOptions, request},
        tokens::{Scope, TokenCommand, TokenReply},
    },
};

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCmd,
}

#[derive(Subcommand, Debug)]
enum TokenCmd {
    /// A new token; its secret is printed once (store it; only its hash is kept).
    Create {
        /// What it is for (shown in `token list`).
        #[arg(long)]
        name: String,
        /// read, respond (includes read) or admin (includes both).
        #[arg(long, default_value = "read")]
        scope: Scope,
        /// Lifetime, like 30m, 12h or 7d (default: api.remote.token_ttl_hours, 24 h).
        #[arg(long, value_parser = duration_secs)]
        ttl: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// A new secret for a token; the old one keeps working for the grace period.
    Rotate {
        id: String,
        /// Like 5m (default: api.remote.rotation_grace_secs).
        #[arg(long, value_parser = duration_secs)]
        grace: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Refuse a token from now on.
    Revoke { id: String },
    /// Active tokens (sessions): scope, expiry, last use and source address.
    List {
        /// Also rotated, expired and revoked ones still on record.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

/// `90`, `30s`, `15m`, `12h`, `7d` → seconds.
fn duration_secs(s: &str) -> Result<i64, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30m, 12h or 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: the unit is s, m, h or d")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} must be positive and not absurdly long"))
}

fn token_request(state: &StateDir, command: TokenCommand) -> anyhow::Result<TokenReply> {
    match Client::ask(&state.socket(), &Request::Token { command })? {
        Response::Token(r) => match *r {
            TokenReply::Error(e) => bail!("{e}"),
            r => Ok(r),
        },
        _ => bail!("unexpected response from the agent"),
    }
}

pub fn token(state: &StateDir, args: TokenArgs) -> anyhow::Result<()> {
    let issued = |r: TokenReply, json: bool| -> anyhow::Result<()> {
        let TokenReply::Issued(i) = r else {
            bail!("unexpected response from the agent");
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&i)?);
        } else {
            println!(
                "id:      {}\nscope:   {}\nexpires: {}\ntoken:   {}",
                i.id,
                i.scope.name(),
                i.expires,
                i.token
            );
            eprintln!("The token is shown once; only its hash is kept.");
        }
        Ok(())
    };
    match args.command {
        TokenCmd::Create {
            name,
            scope,
            ttl,
            json,
        } => issued(
            token_request(
                state,
                TokenCommand::Create {
                    name,
                    scope,
                    ttl_secs: ttl,
                },
            )?,
            json,
        ),
        TokenCmd::Rotate { id, grace, json } => issued(
            token_request(
                state,
                TokenCommand::Rotate {
                    id,
                    grace_secs: grace,
                },
            )?,
            json,
        ),
        TokenCmd::Revoke { id } => {
            token_request(state, TokenCommand::Revoke { id: id.clone() })?;
            println!("revoked {id}");
            Ok(())
        }
        TokenCmd::List { all, json } => {
            let TokenReply::List(list) = token_request(state, TokenCommand::List { all })? else {
                bail!("unexpected response from the agent");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!(
                "{:<16}  {:<8}  {:<8}  {:<20}  {:<20}  {:<16}  NAME",
                "ID", "SCOPE", "STATE", "EXPIRES", "LAST USED", "FROM"
            );
            for t in list {
                println!(
                    "{:<16}  {:<8}  {:<8}  {:<20}  {:<20}  {:<16}  {}",
                    t.id,
                    t.scope.name(),
                    serde_json::to_value(t.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    t.expires,
                    t.last_used.unwrap_or_else(|| "never".into()),
                    t.last_source
                        .as_deref()
                        .map(|s| crate::escape::escape_str(s, 40))
                        .unwrap_or_default(),
                    crate::escape::escape_str(&t.name, 64),
                );
            }
            Ok(())
        }
    }
}

#[derive(Args, Debug)]
pub struct ApiArgs {
    #[command(subcommand)]
    command: ApiCmd,
}

#[derive(Args, Debug)]
struct Conn {
    /// The API, like https://sensor-host:8443.
    #[arg(long, env = "SENSOR_API_URL")]
    url: String,
    /// CA certificate the server's must chain to (default: the system's roots).
    #[arg(long, env = "SENSOR_API_CA")]
    ca: Option<PathBuf>,
    /// Client certificate and key, for mTLS.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// File holding the token (default: the SENSOR_API_TOKEN variable).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Local address to connect from.
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
}

#[derive(Subcommand, Debug)]
enum ApiCmd {
    /// GET a path of the remote API and print the answer.
    Get {
        path: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// POST a JSON body to a path of the remote API.
    Post {
        path: String,
        /// The JSON body.
        #[arg(long, default_value = "{}")]
        data: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Live alerts from the remote API's stream, one JSON line each, until interrupted.
    Stream {
        /// Only alerts at least this severe.
        #[arg(long)]
        severity: Option<crate::alert::Severity>,
        /// Only this rule id (or a prefix ending in *).
        #[arg(long)]
        rule: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Make a private CA, a server certificate for the given names and a client certificate
    /// (for mTLS) in DIR. Keys are written mode 0600.
    TlsInit {
        #[arg(long)]
        dir: PathBuf,
        /// DNS names or IP addresses the server certificate is valid for.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

fn options(conn: Conn) -> anyhow::Result<ClientOptions> {
    let token = match &conn.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("SENSOR_API_TOKEN").ok(),
    };
    Ok(ClientOptions {
        url: conn.url,
        ca: conn.ca,
        client_cert: conn.cert,
        client_key: conn.key,
        token,
        bind: conn.bind,
        timeout_secs: 30,
    })
}

pub fn api(args: ApiArgs) -> anyhow::Result<()> {
    let (method, path, body, conn) = match args.command {
        ApiCmd::TlsInit {
            dir,
            hosts,
            days,
            force,
        } => {
            let g = crate::remote::tls::init(&dir, &hosts, days, force)?;
            println!("{}", serde_json::to_string_pretty(&g)?);
            return Ok(());
        }
        ApiCmd::Stream {
            severity,
            rule,
            conn,
        } => return stream(severity, rule, conn),
        ApiCmd::Get { path, conn } => ("GET", path, None, conn),
        ApiCmd::Post { path, data, conn } => {
            serde_json::from_str::<serde_json::Value>(&data).context("--data is not JSON")?;
            ("POST", path, Some(data), conn)
        }
    };
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("the path must start with / and hold no spaces or control characters");
    }
    let o = options(conn)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = rt.block_on(request(
        &o,
        method,
        &path,
        body.as_deref().map(str::as_bytes),
    ))?;
    let text = String::from_utf8_lossy(&reply.body);
    if (200..300).contains(&reply.status) {
        println!("{text}");
        Ok(())
    } else {
        bail!(
            "HTTP {}: {}",
            reply.status,
            crate::escape::escape_str(&text, 2000)
        )
    }
}

fn stream(
    severity: Option<crate::alert::Severity>,
    rule: Option<String>,
    conn: Conn,
) -> anyhow::Result<()> {
    use crate::remote::client::{StreamMessage, open_stream};
    let mut path = "/api/v1/stream?".to_owned();
    if let Some(s) = severity {
        path.push_str(&format!("severity={}&", s.as_str()));
    }
    if let Some(r) = rule {
        let enc: String = r
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        path.push_str(&format!("rule={enc}"));
    }
    let o = options(conn)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut s = open_stream(&o, &path).await?;
        loop {
            match s.next().await? {
                StreamMessage::Json(v) if v["type"] == "alert" || v["type"] == "lost" => {
                    println!("{v}");
                }
                StreamMessage::Json(_) => {}
                StreamMessage::Closed(code) => bail!("the API closed the stream (code {code})"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("90"), Ok(90));
        assert_eq!(duration_secs("15m"), Ok(900));
        assert_eq!(duration_secs("7d"), Ok(604800));
        for bad in ["", "0", "-5m", "5w", "m", "99999999999999999d"] {
            assert!(duration_secs(bad).is_err(), "{bad}");
        }
    }
}
