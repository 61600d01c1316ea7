//! The remote API against the real agent: TLS (plain refused, wrong CA refused by the CLI,
//! mTLS with and without a client certificate), the token lifecycle (use, expiry, rotation
//! with grace, revocation, forged and garbled tokens) with every attempt in the audit trail,
//! scopes, rate limits per source address, the failed-authentication alert, the alert
//! endpoints and the WebSocket stream, and the control socket's group allow-list.

use std::{
    io::{Read, Write},
    net::{IpAddr, TcpStream},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use sensor::{
    config::DEFAULT_TOML,
    remote::client::{ClientOptions, Reply, StreamMessage, open_stream, request},
};
use sensor_tests::{
    Agent, receivers::free_port, require_root, sensor_bin, tls_init, with_remote_api, with_tls_api,
};

struct Api {
    url: String,
    ca: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Api {
    fn new(port: u16, certs: &Path) -> Self {
        Api {
            url: format!("https://127.0.0.1:{port}"),
            ca: certs.join("ca.crt"),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    fn opts(&self, token: Option<&str>) -> ClientOptions {
        ClientOptions {
            url: self.url.clone(),
            ca: Some(self.ca.clone()),
            token: token.map(str::to_owned),
            timeout_secs: 10,
            ..Default::default()
        }
    }

    fn call(&self, o: &ClientOptions, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.rt
            .block_on(request(o, method, path, body.map(str::as_bytes)))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn get(&self, token: Option<&str>, path: &str) -> Reply {
        self.call(&self.opts(token), "GET", path, None)
    }

    fn post(&self, token: Option<&str>, path: &str, body: &str) -> Reply {
        self.call(&self.opts(token), "POST", path, Some(body))
    }
}

fn error_of(r: &Reply) -> String {
    r.json()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned())
}

/// `sensor token create --json`: (id, token).
fn create_token(agent: &Agent, name: &str, scope: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "token", "create", "--name", name, "--scope", scope, "--json",
    ];
    args.extend_from_slice(extra);
    let v = agent.cli_json(&args);
    (
        v["id"].as_str().expect("id").to_owned(),
        v["token"].as_str().expect("token").to_owned(),
    )
}

fn auth_records(agent: &Agent) -> Vec<serde_json::Value> {
    agent
        .audit_entries()
        .into_iter()
        .filter(|e| e["action"] == "api-auth")
        .collect()
}

#[test]
fn tls_tokens_scopes_audit_and_stream() {
    if !require_root("tls_tokens_scopes_audit_and_stream") {
        return;
    }
    let certs = tls_init(&["127.0.0.1", "localhost"]);
    let other = tls_init(&["127.0.0.1", "localhost"]);
    let port = free_port();
    let agent = Agent::start(Some(&with_tls_api(DEFAULT_TOML, port, certs.path(), "")));
    let api = Api::new(port, certs.path());

    // Plain HTTP to the HTTPS port gets a plain refusal, never data.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    plain
        .write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("HTTPS only"),
        "{answer}"
    );

    // The CLI refuses a server whose certificate is not from the CA it was given.
    let url = format!("https://127.0.0.1:{port}");
    let wrong = Command::new(sensor_bin())
        .args(["api", "get", "/api/v1/status", "--url", &url, "--ca"])
        .arg(other.path().join("ca.crt"))
        .env("SENSOR_API_TOKEN", "x")
        .output()
        .expect("run cli");
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && err.contains("TLS handshake") && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert_eq!(
        err.matches("UnknownIssuer").count(),
        1,
        "reason repeated: {err}"
    );

    // No token, then a read token through the CLI with the right CA.
    assert_eq!(api.get(None, "/api/v1/status").status, 401);
    let (read_id, read) = create_token(&agent, "dashboard", "read", &[]);
    let token_file = agent.state.path().join("read.token");
    std::fs::write(&token_file, &read).expect("token file");
    let out = Command::new(sensor_bin())
        .args(["api", "get", "/api/v1/status", "--url", &url, "--ca"])
        .arg(certs.path().join("ca.crt"))
        .arg("--token-file")
        .arg(&token_file)
        .output()
        .expect("run cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(status["remote_api"]["tls"], true);
    // Security headers on every answer.
    let r = api.get(Some(&read), "/api/v1/status");
    assert_eq!(r.status, 200);
    for h in [
        "content-security-policy",
        "strict-transport-security",
        "x-content-type-options",
    ] {
        assert!(r.header(h).is_some(), "missing {h}");
    }
    // Only hashes are stored.
    let store = std::fs::read_to_string(agent.state.path().join("api/tokens.json")).expect("store");
    assert!(!store.contains(read.rsplit('_').next().expect("secret")));

    // Scopes: read cannot respond or administer; respond can answer containment requests.
    let r = api.post(Some(&read), "/api/v1/rules/reload", "");
    assert_eq!(
        (r.status, error_of(&r).contains("needs scope admin")),
        (403, true)
    );
    let r = api.post(
        Some(&read),
        "/api/v1/responses/approve",
        "{\"run\":\"nope\"}",
    );
    assert_eq!(r.status, 403);
    let (_, respond) = create_token(&agent, "responder", "respond", &[]);
    let r = api.post(
        Some(&respond),
        "/api/v1/responses/approve",
        "{\"run\":\"no-such-run\"}",
    );
    assert_eq!(r.status, 409, "{}", error_of(&r));
    let r = api.post(Some(&respond), "/api/v1/responses", "{\"op\":\"explode\"}");
    assert_eq!(r.status, 400);
    let (_, admin) = create_token(&agent, "admin", "admin", &[]);
    assert_eq!(
        api.post(Some(&admin), "/api/v1/rules/reload", "").status,
        202
    );
    let tokens = api
        .get(Some(&admin), "/api/v1/tokens")
        .json()
        .expect("tokens");
    let listed = tokens.as_array().expect("array");
    assert!(listed.iter().any(|t| t["id"] == read_id.as_str()
        && t["last_source"] == "127.0.0.1"
        && t["uses"].as_u64() >= Some(1)));
    assert!(
        !tokens.to_string().contains(&read[5..]),
        "a secret in the token list"
    );

    // Expiry.
    let (_, short) = create_token(&agent, "short", "read", &["--ttl", "2s"]);
    assert_eq!(api.get(Some(&short), "/api/v1/status").status, 200);
    // Rotation with a 2 s grace.
    let (rot_id, old) = create_token(&agent, "rotating", "read", &[]);
    let v = agent.cli_json(&["token", "rotate", &rot_id, "--grace", "2s", "--json"]);
    let new = v["token"].as_str().expect("new token").to_owned();
    assert_eq!(
        api.get(Some(&old), "/api/v1/status").status,
        200,
        "old token within grace"
    );
    assert_eq!(api.get(Some(&new), "/api/v1/status").status, 200);
    std::thread::sleep(Duration::from_millis(2600));
    let r = api.get(Some(&short), "/api/v1/status");
    assert_eq!((r.status, error_of(&r)), (401, "token expired".to_owned()));
    let r = api.get(Some(&old), "/api/v1/status");
    assert_eq!(r.status, 401);
    assert!(error_of(&r).contains("rotated"), "{}", error_of(&r));
    assert_eq!(api.get(Some(&new), "/api/v1/status").status, 200);

    // Forged (right id, wrong secret) and garbled tokens.
    let forged = format!(
        "{}{}",
        &read[..read.len() - 4],
        if read.ends_with("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        }
    );
    let r = api.get(Some(&forged), "/api/v1/status");
    assert_eq!((r.status, error_of(&r)), (401, "wrong secret".to_owned()));
    for garbled in [
        "x",
        "snsr_",
        "snsr_0123456789abcdef_short",
        "<script>alert(1)</script>",
    ] {
        let r = api.get(Some(garbled), "/api/v1/status");
        assert_eq!(
            (r.status, error_of(&r)),
            (401, "malformed token".to_owned()),
            "{garbled}"
        );
    }

    // Alerts: a test alert shows up in the page, the counts and the live stream.
    let mut stream = api
        .rt
        .block_on(open_stream(
            &api.opts(Some(&read)),
            "/api/v1/stream?rule=sensor.test",
        ))
        .expect("open stream");
    let hello = api.rt.block_on(stream.next()).expect("hello");
    assert!(
        matches!(&hello, StreamMessage::Json(v) if v["type"] == "hello" && v["token"] == read_id.as_str()),
        "{hello:?}"
    );
    agent.cli_ok(&[
        "alerts",
        "test",
        "--message",
        "<img src=x onerror=alert(1)>",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let streamed = loop {
        assert!(Instant::now() < deadline, "no alert on the stream");
        let m = api
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), stream.next()).await })
            .expect("stream message in time")
            .expect("stream message");
        if let StreamMessage::Json(v) = m
            && v["type"] == "alert"
        {
            break v;
        }
    };
    assert_eq!(streamed["alert"]["message"], "<img src=x onerror=alert(1)>");
    let page = api
        .get(Some(&read), "/api/v1/alerts?rule=sensor.test&limit=5")
        .json()
        .expect("page");
    assert_eq!(page["alerts"][0]["seq"], streamed["seq"]);
    let counts = api
        .get(Some(&read), "/api/v1/alerts/counts")
        .json()
        .expect("counts");
    assert!(
        counts["by_rule"]["sensor.test"].as_u64() >= Some(1),
        "{counts}"
    );
    assert_eq!(api.get(Some(&read), "/api/v1/alerts?limit=0").status, 400);
    assert_eq!(api.get(Some(&read), "/api/v1/nowhere").status, 404);

    // The same alerts over the control socket: recent ones, then live ones.
    let recent = agent.cli_ok(&[
        "alerts",
        "watch",
        "--json",
        "--no-follow",
        "--rule",
        "sensor.test",
    ]);
    assert!(
        recent.lines().any(|l| l.contains("onerror=alert(1)")),
        "{recent}"
    );
    let mut watch = Command::new(sensor_bin())
        .arg("--state-dir")
        .arg(agent.state.path())
        .args([
            "alerts",
            "watch",
            "--json",
            "-n",
            "0",
            "--rule",
            "sensor.test",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("alerts watch");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Raise until the follower, once subscribed, prints one (no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(10);
    let live = loop {
        assert!(Instant::now() < deadline, "alerts watch printed nothing");
        agent.cli_ok(&["alerts", "test", "--message", "live-watch"]);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            break line;
        }
    };
    assert!(live.contains("live-watch"), "{live}");
    let _ = watch.kill();
    let _ = watch.wait();

    // Revocation refuses at once, and closes the open stream within a status tick.
    agent.cli_ok(&["token", "revoke", &read_id]);
    let r = api.get(Some(&read), "/api/v1/status");
    assert_eq!((r.status, error_of(&r)), (401, "token revoked".to_owned()));
    let closed = api.rt.block_on(async {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                Ok(Ok(StreamMessage::Closed(code))) => return Some(code),
                Ok(Ok(_)) => continue,
                _ => return None,
            }
        }
    });
    assert_eq!(closed, Some(1008));

    // Every attempt is in the audit trail, with its source and reason.
    let records = auth_records(&agent);
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .collect();
    for reason in [
        "no bearer token",
        "token expired",
        "wrong secret",
        "malformed token",
        "token revoked",
    ] {
        assert!(
            refused.iter().any(|r| r["detail"]["reason"] == reason),
            "no refused record for {reason}"
        );
    }
    assert!(records.iter().all(|r| r["detail"]["source"] == "127.0.0.1"));
    assert!(
        records
            .iter()
            .any(|r| r["outcome"] == "ok" && r["actor"] == format!("token:{read_id}").as_str())
    );
    assert!(records.iter().any(|r| r["outcome"] == "forbidden"));
    // Exactly one record per refused attempt: no token, expired, rotated, forged, four
    // garbled, revoked.
    assert_eq!(refused.len(), 9, "{refused:#?}");
    let created: Vec<_> = agent
        .audit_entries()
        .into_iter()
        .filter(|e| e["action"] == "token-create")
        .collect();
    assert!(created.len() >= 5);
    let out = agent.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mutual_tls_with_and_without_a_client_certificate() {
    if !require_root("mutual_tls_with_and_without_a_client_certificate") {
        return;
    }
    let certs = tls_init(&["127.0.0.1", "localhost"]);
    let port = free_port();
    let extra = format!("client_ca = \"{}\"", certs.path().join("ca.crt").display());
    let agent = Agent::start(Some(&with_tls_api(
        DEFAULT_TOML,
        port,
        certs.path(),
        &extra,
    )));
    let api = Api::new(port, certs.path());
    let (_, token) = create_token(&agent, "mtls", "read", &[]);
    // Without a client certificate the server ends the handshake.
    let err = api
        .rt
        .block_on(request(
            &api.opts(Some(&token)),
            "GET",
            "/api/v1/status",
            None,
        ))
        .expect_err("no client certificate must be refused");
    let text = err.to_string();
    assert!(
        text.contains("certificate") || text.contains("handshake") || text.contains("I/O"),
        "{text}"
    );
    // With one from the CA, and the token, it answers.
    let with_cert = ClientOptions {
        client_cert: Some(certs.path().join("client.crt")),
        client_key: Some(certs.path().join("client.key")),
        ..api.opts(Some(&token))
    };
    let r = api.call(&with_cert, "GET", "/api/v1/status", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json().expect("json")["remote_api"]["mtls"], true);
    // A certificate is not a token: still 401 without one.
    let r = api.call(
        &ClientOptions {
            token: None,
            ..with_cert.clone()
        },
        "GET",
        "/api/v1/status",
        None,
    );
    assert_eq!(r.status, 401);
    // A client certificate from another CA is refused.
    let other = tls_init(&["127.0.0.1", "localhost"]);
    let foreign = ClientOptions {
        client_cert: Some(other.path().join("client.crt")),
        client_key: Some(other.path().join("client.key")),
        ..with_cert
    };
    assert!(
        api.rt
            .block_on(request(&foreign, "GET", "/api/v1/status", None))
            .is_err()
    );
    assert!(
        agent
            .status()
            .remote_api
            .expect("remote status")
            .tls_failures
            >= 2
    );
}

#[test]
fn rate_limits_hold_per_source_and_per_token_and_failed_logins_raise_an_alert() {
    if !require_root("rate_limits_hold_per_source_and_per_token_and_failed_logins_raise_an_alert") {
        return;
    }
    let certs = tls_init(&["127.0.0.1", "localhost"]);
    let port = free_port();
    let extra = "rate_per_source = 2.0\nburst_per_source = 10\nrate_per_token = 1.0\nburst_per_token = 25\nauth_failure_threshold = 8\n";
    let mut text = with_tls_api(DEFAULT_TOML, port, certs.path(), extra);
    // The shipped values are replaced, not duplicated.
    for line in [
        "rate_per_source = 20.0\n",
        "burst_per_source = 40\n",
        "rate_per_token = 20.0\n",
        "burst_per_token = 40\n",
        "auth_failure_threshold = 10\n",
    ] {
        assert_eq!(text.matches(line).count(), 1, "{line}");
        text = text.replace(line, "");
    }
    let agent = Agent::start(Some(&text));
    let api = Api::new(port, certs.path());
    let (_, token) = create_token(&agent, "burst", "read", &[]);
    let from = |ip: &str| ClientOptions {
        bind: Some(ip.parse::<IpAddr>().expect("ip")),
        ..api.opts(Some(&token))
    };
    // A burst of 30 from 127.0.0.1: the first 10 pass, most of the rest are refused.
    let burst = from("127.0.0.1");
    let codes: Vec<u16> = (0..30)
        .map(|_| api.call(&burst, "GET", "/api/v1/status", None).status)
        .collect();
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert!(codes[..10].iter().all(|c| *c == 200), "{codes:?}");
    assert!(limited >= 15, "{codes:?}");
    let r = api.call(&burst, "GET", "/api/v1/status", None);
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    // Meanwhile another source proceeds.
    let other = from("127.0.0.2");
    for _ in 0..5 {
        assert_eq!(api.call(&other, "GET", "/api/v1/status", None).status, 200);
    }
    // One token spread over four sources, each inside its own burst: the token's burst of 25
    // holds, while another token goes on.
    let (_, spread) = create_token(&agent, "spread", "read", &[]);
    let mut codes = Vec::new();
    for ip in ["127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"] {
        let o = ClientOptions {
            token: Some(spread.clone()),
            ..from(ip)
        };
        for _ in 0..10 {
            codes.push(api.call(&o, "GET", "/api/v1/status", None).status);
        }
    }
    assert!(codes[..25].iter().all(|c| *c == 200), "{codes:?}");
    let limited = codes[25..].iter().filter(|c| **c == 429).count();
    assert!(limited >= 12, "{codes:?}");
    let (_, fresh) = create_token(&agent, "fresh", "read", &[]);
    let o = ClientOptions {
        token: Some(fresh),
        ..from("127.0.0.8")
    };
    assert_eq!(api.call(&o, "GET", "/api/v1/status", None).status, 200);
    // Eight failed logins from 127.0.0.3 within the window raise one alert naming it.
    let attacker = ClientOptions {
        token: Some("snsr_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
        ..from("127.0.0.3")
    };
    for _ in 0..9 {
        assert_eq!(
            api.call(&attacker, "GET", "/api/v1/status", None).status,
            401
        );
    }
    let alert = agent
        .wait_alert(Duration::from_secs(10), |a| {
            a.rule.id == "sensor.api.auth_failures"
        })
        .expect("failed-authentication alert");
    assert_eq!(alert.fields["source"], "127.0.0.3");
    assert!(alert.mitre.contains(&"T1110".to_owned()));
    let n = agent
        .alerts()
        .iter()
        .filter(|a| a.rule.id == "sensor.api.auth_failures")
        .count();
    assert_eq!(n, 1, "one alert per window");
    let st = agent.status().remote_api.expect("remote status");
    assert!(
        st.rate_limited >= 28 && st.auth_failed >= 9 && st.auth_alerts == 1,
        "{st:?}"
    );
}

#[test]
fn plain_http_is_refused_off_loopback_and_served_on_it_when_asked() {
    if !require_root("plain_http_is_refused_off_loopback_and_served_on_it_when_asked") {
        return;
    }
    // `config check` names the problem.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        with_remote_api(DEFAULT_TOML, "0.0.0.0:18080", "plain_http = true")
            .replace("plain_http = false\n", ""),
    )
    .expect("write");
    let out = Command::new(sensor_bin())
        .args(["config", "check", "--offline"])
        .arg(&bad)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("plain HTTP is refused on 0.0.0.0:18080"),
        "{err}"
    );
    // On loopback, with the flag, it serves (tokens still required).
    let port = free_port();
    let agent = Agent::start(Some(
        &with_remote_api(DEFAULT_TOML, &format!("127.0.0.1:{port}"), "")
            .replace("plain_http = false", "plain_http = true"),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let o = ClientOptions {
        url: format!("http://127.0.0.1:{port}"),
        timeout_secs: 10,
        ..Default::default()
    };
    let r = rt
        .block_on(request(&o, "GET", "/api/v1/status", None))
        .expect("request");
    assert_eq!(r.status, 401);
    assert!(r.header("strict-transport-security").is_none());
    let (_, token) = create_token(&agent, "plain", "read", &[]);
    let r = rt
        .block_on(request(
            &ClientOptions {
                token: Some(token),
                ..o
            },
            "GET",
            "/api/v1/status",
            None,
        ))
        .expect("request");
    assert_eq!(r.status, 200);
    let st = agent.status().remote_api.expect("remote");
    assert!(!st.tls);
}

/// Runs `sensor status` as uid/gid 65534 (nobody/nogroup).
fn status_as_nobody(agent: &Agent) -> std::process::Output {
    let mut cmd = Command::new(sensor_bin());
    cmd.arg("--state-dir").arg(agent.state.path()).arg("status");
    // SAFETY: setgroups/setgid/setuid are async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).map_err(std::io::Error::from)?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).map_err(std::io::Error::from)
        });
    }
    cmd.output().expect("run as nobody")
}

#[test]
fn control_socket_admits_only_allowed_users_and_groups() {
    if !require_root("control_socket_admits_only_allowed_users_and_groups") {
        return;
    }
    let start = |allow: &str| {
        let state = tempfile::Builder::new()
            .prefix("sensor-kt-")
            .tempdir()
            .expect("state");
        // Others may traverse the state dir to reach the socket; its own mode decides.
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        let text = DEFAULT_TOML.replace(
            "# socket_group = \"sensor\"\nallow_uids = []\nallow_groups = []",
            &format!("socket_group = \"65534\"\nallow_uids = []\nallow_groups = [{allow}]"),
        );
        assert_ne!(text, DEFAULT_TOML);
        Agent::start_in(state, Some(&text))
    };
    let agent = start("");
    let meta = std::fs::metadata(agent.socket()).expect("socket");
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::gid(&meta),
            meta.permissions().mode() & 0o777
        ),
        (65534, 0o660)
    );
    let out = status_as_nobody(&agent);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("permission denied"),
        "{err}"
    );
    let refused = agent.audit_entries().into_iter().any(|e| {
        e["action"] == "api-auth" && e["actor"] == "cli:uid=65534" && e["outcome"] == "refused"
    });
    assert!(refused, "refusal not audited");
    drop(agent);
    let agent = start("\"65534\"");
    let out = status_as_nobody(&agent);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(agent);
    // An unknown group fails the start with a clear error.
    let state = tempfile::tempdir().expect("state");
    let cfg = state.path().join("bad.toml");
    let text = DEFAULT_TOML.replace(
        "allow_groups = []",
        "allow_groups = [\"no-such-group-\\u001b[31m\"]",
    );
    std::fs::write(&cfg, text).expect("write");
    let out = Command::new(sensor_bin())
        .arg("--state-dir")
        .arg(state.path())
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("api.allow_groups: no group"),
        "{err}"
    );
    // Nothing in the agent's output may carry a raw escape (its logs are plain off a terminal).
    assert!(
        !err.contains('\u{1b}'),
        "escape sequence reached the terminal: {err}"
    );
}
