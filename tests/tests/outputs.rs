//! Alert delivery to real receivers on loopback: rsyslog (RFC 5424 over TCP and UDP, CEF and
//! LEEF over TLS with a pinned key), webhooks (JSON with HMAC over mTLS, Slack, Discord,
//! OCSF), email digests over STARTTLS with AUTH (aiosmtpd), an outage across `kill -9`, and
//! hostile alert content in every format. The agent needs root (it loads the probes).

use std::{
    collections::{HashMap, HashSet},
    io::{Read, Write},
    os::unix::ffi::OsStrExt,
    path::Path,
    process::Command,
    time::Duration,
};

use sensor::{
    alert::Severity,
    api::{Request, Response, client::Client},
    escape::escape_str,
    output::{cef, format, leef, syslog},
};
use sensor_tests::{
    Agent,
    receivers::{Certs, HttpReceiver, Rsyslog, SmtpReceiver, free_port, wait_for},
    require_root, sensor_bin,
};

/// Newlines, CEF/LEEF/syslog separators, escapes, ANSI, bidi: what an attacker puts in a
/// command line to forge records or fields.
const HOSTILE: &str = "evil\nCEF:0|Forged|x|1|SEN-FAKE|forged|10|act=allow\r\n<13>1 2026-01-01T00:00:00Z h a - - - forged record ^ sev=0 | a=b \\ \\\\ ] \" \x1b[2J\x1b]0;t\x07 \u{202e}txt";

/// The default config plus a rules directory with the test's rule and the given outputs.
fn config(dir: &Path, outputs: &str) -> String {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("out.yaml"),
        r#"- rule:
    id: TEST-OUT-001
    name: Output test marker exec
    description: test rule for the delivery tests
    severity: high
    mitre: {tactics: [execution], techniques: [T1059.004]}
    condition: evt.type = exec and proc.args contains out-marker-7f3
    output: "marker exec %proc.cmdline"
"#,
    )
    .unwrap();
    format!(
        "{}\n{outputs}\n",
        sensor::config::DEFAULT_TOML.replacen(
            "paths = []",
            &format!("paths = [{:?}]", rules.display().to_string()),
            1,
        )
    )
}

/// Raises test alerts through the API (so messages may be any size); returns their ids.
fn raise(agent: &Agent, count: u32, severity: Severity, message: Option<&str>) -> Vec<String> {
    let mut c = Client::send(
        &agent.socket(),
        &Request::TestAlert {
            count,
            severity,
            message: message.map(str::to_owned),
        },
    )
    .expect("agent socket");
    match c.next() {
        Some(Ok(Response::TestAlerts(ids))) => ids,
        other => panic!("unexpected reply {other:?}"),
    }
}

/// A real exec with a hostile, partly invalid UTF-8 command line, caught by TEST-OUT-001.
fn hostile_exec(agent: &Agent) -> sensor::alert::Alert {
    Command::new("/bin/true")
        .arg("out-marker-7f3")
        .arg(std::ffi::OsStr::from_bytes(b"a\nb|c=d\\e^f\x1b[31mred"))
        .arg(std::ffi::OsStr::from_bytes(b"\xff\xfe\xc3 invalid utf8"))
        .status()
        .unwrap();
    agent
        .wait_alert(Duration::from_secs(10), |a| a.rule.id == "TEST-OUT-001")
        .unwrap_or_else(|| panic!("no marker alert\n{}", agent.log_text()))
}

fn sink<'a>(status: &'a sensor::api::StatusReport, name: &str) -> &'a sensor::output::SinkStatus {
    status
        .outputs
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no sink {name} in status"))
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn syslog_reaches_rsyslog_over_tcp_tls_udp_and_relp_in_every_format() {
    if !require_root("syslog_reaches_rsyslog_over_tcp_tls_udp_and_relp_in_every_format") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    std::fs::create_dir(&certs_dir).unwrap();
    let certs = Certs::generate(&certs_dir);
    let rs_dir = dir.path().join("rsyslog");
    std::fs::create_dir(&rs_dir).unwrap();
    let rs = Rsyslog::start(&rs_dir, &certs);
    let metrics = free_port();
    let filter = r#"rules = ["sensor.test", "TEST-OUT-*"]"#;
    let cfg = config(
        dir.path(),
        &format!(
            r#"[metrics]
listen = "127.0.0.1:{metrics}"

[[outputs]]
name = "tcp5424"
type = "syslog"
transport = "tcp"
address = "127.0.0.1:{tcp}"
allow_plaintext = true
{filter}

[[outputs]]
name = "tlscef"
type = "syslog"
transport = "tls"
format = "cef"
address = "127.0.0.1:{tls}"
ca_file = "{ca}"
pin_sha256 = ["{pin}"]
{filter}

[[outputs]]
name = "tlsleef"
type = "syslog"
transport = "tls"
format = "leef"
address = "localhost:{tls}"
ca_file = "{ca}"
facility = "local3"
{filter}

[[outputs]]
name = "udp5424"
type = "syslog"
transport = "udp"
address = "127.0.0.1:{udp}"
allow_plaintext = true
{filter}

[[outputs]]
name = "relp5424"
type = "syslog"
transport = "relp"
address = "127.0.0.1:{relp}"
allow_plaintext = true
{filter}

[[outputs]]
name = "relptls"
type = "syslog"
transport = "relp-tls"
format = "cef"
address = "localhost:{relp_tls}"
ca_file = "{ca}"
client_cert = "{client_cert}"
client_key = "{client_key}"
{filter}
"#,
            relp = rs.relp_port,
            relp_tls = rs.relp_tls_port,
            client_cert = certs.client_cert.display(),
            client_key = certs.client_key.display(),
            tcp = rs.tcp_port,
            tls = rs.tls_port,
            udp = rs.udp_port,
            ca = certs.ca.display(),
            pin = certs.server_pin,
        ),
    );
    // Metrics are not part of the default config: the section above must come before the
    // tables that follow it in TOML, so it is appended after the default's last table.
    let agent = Agent::start(Some(&cfg));

    let plain = raise(&agent, 1, Severity::Medium, Some("plain test alert"))[0].clone();
    let hostile = raise(&agent, 1, Severity::High, Some(HOSTILE))[0].clone();
    let huge_msg = format!("{}{}", "A".repeat(1 << 20), HOSTILE);
    let huge = raise(&agent, 1, Severity::Critical, Some(&huge_msg))[0].clone();
    let kernel = hostile_exec(&agent);
    let ids = [
        plain.clone(),
        hostile.clone(),
        huge.clone(),
        kernel.id.clone(),
    ];

    // Every input got every alert exactly once, as exactly one line.
    for (input, per_id) in [
        ("tcp", 1),
        ("tls", 2),
        ("udp", 1),
        ("relp", 1),
        ("relptls", 1),
    ] {
        let lines = wait_for(Duration::from_secs(20), || {
            let lines = rs.lines(input);
            ids.iter()
                .all(|id| lines.iter().filter(|l| l.contains(id.as_str())).count() >= per_id)
                .then_some(lines)
        })
        .unwrap_or_else(|| {
            panic!(
                "{input}: not all alerts arrived: {:?}\nagent:\n{}",
                rs.lines(input),
                agent.log_text()
            )
        });
        for id in &ids {
            assert_eq!(
                lines.iter().filter(|l| l.contains(id.as_str())).count(),
                per_id,
                "{input}: {id} must be one record per sink"
            );
        }
        for l in &lines {
            assert!(
                l.starts_with('<'),
                "{input}: a line that is not a record: {l:?}"
            );
            assert!(
                l.len() < 24 * 1024,
                "{input}: record not bounded: {}",
                l.len()
            );
            assert!(
                !l.contains('\x1b') && !l.contains('\u{202e}'),
                "{input}: raw control"
            );
        }
    }

    // RFC 5424: the id in structured data, the message escaped and intact.
    let by_id = |input: &str, id: &str| -> Vec<String> {
        rs.lines(input)
            .into_iter()
            .filter(|l| l.contains(id))
            .collect()
    };
    for input in ["tcp", "udp", "relp"] {
        let (head, params, msg) = syslog::parse(&by_id(input, &hostile)[0]).expect("rfc5424");
        assert_eq!(head[0], "<83>1", "authpriv.err for high");
        assert_eq!(head[5], "sensor.test");
        assert!(params.contains(&("id".into(), hostile.clone())));
        assert_eq!(msg, escape_str(HOSTILE, usize::MAX));
        let (_, params, _) = syslog::parse(&by_id(input, &kernel.id)[0]).unwrap();
        let cmd = &params.iter().find(|(k, _)| k == "cmdline").unwrap().1;
        assert!(
            cmd.contains("a\\nb|c=d\\\\e^f\\e[31mred") && cmd.contains("\u{fffd}"),
            "{cmd}"
        );
        let (_, _, msg) = syslog::parse(&by_id(input, &huge)[0]).unwrap();
        assert!(msg.contains("…[+"), "a 1 MiB message is cut with a marker");
    }

    // CEF and LEEF over TLS: header and fields intact, nothing forged.
    let tls_lines = rs.lines("tls");
    // The record's own format is its message's first bytes: the hostile message itself
    // carries a forged "CEF:0|", so a LEEF record also *contains* it.
    let record = |id: &str, prefix: &str| -> String {
        tls_lines
            .iter()
            .filter(|l| l.contains(id))
            .filter_map(|l| syslog::parse(l).map(|(_, _, msg)| msg))
            .find(|msg| msg.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} record for {id}"))
    };
    for (id, msg) in [(&hostile, HOSTILE), (&plain, "plain test alert")] {
        let (header, ext) = cef::parse(&record(id, "CEF:0|")).expect("cef");
        assert_eq!(
            header[..5],
            [
                "CEF:0",
                "Sensor",
                "sensor",
                env!("CARGO_PKG_VERSION"),
                "sensor.test"
            ]
        );
        let get = |k: &str| ext.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone());
        assert_eq!(get("externalId").as_deref(), Some(id.as_str()));
        assert_eq!(get("msg").unwrap(), escape_str(msg, usize::MAX));
        assert!(get("act").is_none(), "no forged key: {ext:?}");
        let (header, attrs) = leef::parse(&record(id, "LEEF:2.0|")).expect("leef");
        assert_eq!(header[0], "LEEF:2.0");
        let get = |k: &str| attrs.iter().find(|(ak, _)| ak == k).map(|(_, v)| v.clone());
        assert_eq!(get("alertId").as_deref(), Some(id.as_str()));
        assert_eq!(get("msg").unwrap(), escape_str(msg, usize::MAX));
        assert_eq!(
            get("sev").as_deref(),
            Some(if id == &hostile { "8" } else { "5" })
        );
    }
    let (_, ext) = cef::parse(&record(&kernel.id, "CEF:0|")).unwrap();
    let cs1 = &ext.iter().find(|(k, _)| k == "cs1").unwrap().1;
    let want = format::command_line(&format::bounded(&kernel)).unwrap();
    assert_eq!(cs1, &escape_str(&want, usize::MAX));
    let (_, ext) = cef::parse(&record(&huge, "CEF:0|")).unwrap();
    assert!(ext.iter().any(|(k, v)| k == "msg" && v.contains("…[+")));
    let leef_high = tls_lines
        .iter()
        .find(|l| l.contains("LEEF:2.0|") && l.contains(hostile.as_str()))
        .unwrap();
    assert!(leef_high.starts_with("<155>1 "), "local3.err: {leef_high}");

    // Status and metrics agree with what arrived.
    let st = wait_for(Duration::from_secs(5), || {
        let st = agent.status();
        st.outputs.iter().all(|s| s.queued == 0).then_some(st)
    })
    .expect("queues drain");
    for name in [
        "tcp5424", "tlscef", "tlsleef", "udp5424", "relp5424", "relptls",
    ] {
        let s = sink(&st, name);
        assert_eq!((s.sent, s.dropped, s.rejected), (4, 0, 0), "{name}: {s:?}");
    }
    assert!(sink(&st, "tcp5424").plaintext && sink(&st, "udp5424").plaintext);
    assert!(!sink(&st, "tlscef").plaintext);
    let human = agent.cli_ok(&["status"]);
    assert!(
        human.contains("tcp://127.0.0.1") && human.contains("PLAINTEXT"),
        "{human}"
    );
    let m = http_get(metrics, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(
        m.contains("sensor_output_sent_total{sink=\"tlscef\",type=\"syslog\"} 4"),
        "{m}"
    );
    assert!(m.contains("sensor_output_plaintext{sink=\"udp5424\",type=\"syslog\"} 1"));
    assert!(m.contains("sensor_alerts_total{rule=\"TEST-OUT-001\",severity=\"high\"} 1"));
    assert!(m.contains("sensor_output_delivery_seconds_count{sink=\"tcp5424\"} 4"));
    assert!(http_get(metrics, "/other").starts_with("HTTP/1.1 404"));
}

#[test]
fn webhooks_deliver_json_with_hmac_over_mtls_and_chat_and_ocsf_shapes() {
    if !require_root("webhooks_deliver_json_with_hmac_over_mtls_and_chat_and_ocsf_shapes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    let secret = "s3cret-hmac-key";
    let secret_file = dir.path().join("hmac.key");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let (https_port, http_port) = (free_port(), free_port());
    let https = HttpReceiver::start(
        https_port,
        &dir.path().join("https.jsonl"),
        Some((&certs, true)),
        Some(secret),
    );
    let http = HttpReceiver::start(http_port, &dir.path().join("http.jsonl"), None, None);
    let filter = r#"rules = ["sensor.test"]"#;
    let cfg = config(
        dir.path(),
        &format!(
            r#"[[outputs]]
name = "json-mtls"
type = "webhook"
url = "https://localhost:{https_port}/alerts"
ca_file = "{ca}"
client_cert = "{cc}"
client_key = "{ck}"
hmac_secret_file = "{sf}"
headers = {{ X-Token = "team-a" }}
{filter}

[[outputs]]
name = "no-client-cert"
type = "webhook"
url = "https://127.0.0.1:{https_port}/alerts"
ca_file = "{ca}"
retry_max_secs = 1
{filter}

[[outputs]]
name = "slack"
type = "webhook"
format = "slack"
url = "http://127.0.0.1:{http_port}/slack/T000/B000/XXXX"
allow_plaintext = true
{filter}

[[outputs]]
name = "discord"
type = "webhook"
format = "discord"
url = "http://127.0.0.1:{http_port}/discord"
allow_plaintext = true
{filter}

[[outputs]]
name = "ocsf"
type = "webhook"
format = "ocsf"
url = "http://127.0.0.1:{http_port}/ocsf"
allow_plaintext = true
min_severity = "high"
{filter}
"#,
            ca = certs.ca.display(),
            cc = certs.client_cert.display(),
            ck = certs.client_key.display(),
            sf = secret_file.display(),
        ),
    );
    let agent = Agent::start(Some(&cfg));
    let low = raise(&agent, 1, Severity::Low, Some("low one"))[0].clone();
    let high = raise(&agent, 1, Severity::High, Some(HOSTILE))[0].clone();

    let reqs = wait_for(Duration::from_secs(20), || {
        let r = https.requests();
        (r.len() >= 2).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "https receiver got {:?}\n{}",
            https.requests(),
            agent.log_text()
        )
    });
    let mut seen = HashSet::new();
    for r in &reqs {
        assert_eq!(r["hmac_ok"], true, "HMAC checked by Python: {r}");
        assert_eq!(r["headers"]["x-token"], "team-a");
        assert_eq!(r["path"], "/alerts");
        let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(r["headers"]["x-sensor-alert-id"], body["id"]);
        if body["id"] == high.as_str() {
            assert_eq!(body["message"], HOSTILE, "JSON carries the exact text");
        }
        seen.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, HashSet::from([low.clone(), high.clone()]));

    let by_path = wait_for(Duration::from_secs(20), || {
        let mut m: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
        for r in http.requests() {
            let path = r["path"]
                .as_str()
                .unwrap()
                .split('/')
                .nth(1)
                .unwrap()
                .to_owned();
            m.entry(path)
                .or_default()
                .push(serde_json::from_str(r["body"].as_str().unwrap()).unwrap());
        }
        (m.get("slack").is_some_and(|v| v.len() == 2)
            && m.get("discord").is_some_and(|v| v.len() == 2)
            && m.get("ocsf").is_some_and(|v| !v.is_empty()))
        .then_some(m)
    })
    .unwrap_or_else(|| panic!("http receiver got {:?}", http.requests()));
    for s in &by_path["slack"] {
        let text = s["text"].as_str().unwrap();
        assert!(text.contains(&low) || text.contains(&high));
        assert!(!text.contains('\x1b'));
        if text.contains(&high) {
            assert!(
                text.contains("&lt;13&gt;1 2026") && !text.contains("<13>1"),
                "{text}"
            );
        }
    }
    for d in &by_path["discord"] {
        assert_eq!(d["allowed_mentions"]["parse"], serde_json::json!([]));
        assert!(
            d["embeds"][0]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["value"] == low.as_str() || f["value"] == high.as_str())
        );
    }
    let ocsf = &by_path["ocsf"];
    assert_eq!(ocsf.len(), 1, "min_severity = high keeps the low alert out");
    assert_eq!(ocsf[0]["class_uid"], 2004);
    assert_eq!(ocsf[0]["finding_info"]["uid"], high.as_str());
    assert_eq!(ocsf[0]["severity_id"], 4);

    // mTLS: without a client certificate the receiver refuses; the alerts wait in the spool.
    let st = wait_for(Duration::from_secs(10), || {
        let st = agent.status();
        (sink(&st, "no-client-cert").failed >= 2).then_some(st)
    })
    .expect("the sink without a client certificate keeps failing");
    let s = sink(&st, "no-client-cert");
    assert_eq!((s.sent, s.queued), (0, 2), "{s:?}");
    assert!(s.last_error.is_some());
    let ok = sink(&st, "json-mtls");
    assert_eq!((ok.sent, ok.queued, ok.failed), (2, 0, 0), "{ok:?}");
}

#[test]
fn email_digests_over_starttls_with_auth() {
    if !require_root("email_digests_over_starttls_with_auth") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    let password_file = dir.path().join("smtp.pw");
    std::fs::write(&password_file, "mail-pw-1\n").unwrap();
    let smtp = SmtpReceiver::start(&dir.path().join("mail"), &certs, "mail-pw-1");
    let cfg = config(
        dir.path(),
        &format!(
            r#"[[outputs]]
name = "mail"
type = "email"
address = "127.0.0.1:{port}"
security = "starttls"
ca_file = "{ca}"
username = "sensor"
password_file = "{pw}"
from = "sensor@example.com"
to = ["soc@example.com", "oncall@example.com"]
digest_secs = 3
rules = ["sensor.test"]
"#,
            port = smtp.port,
            ca = certs.ca.display(),
            pw = password_file.display(),
        ),
    );
    let agent = Agent::start(Some(&cfg));
    let first = raise(&agent, 1, Severity::High, Some("first alert"))[0].clone();
    let one = wait_for(Duration::from_secs(15), || {
        smtp.messages().into_iter().next()
    })
    .unwrap_or_else(|| panic!("no mail\n{}", agent.log_text()));
    assert_eq!(one["tls"], true);
    assert_eq!(one["authenticated"], true);
    assert_eq!(
        one["rcpt_tos"],
        serde_json::json!(["soc@example.com", "oncall@example.com"])
    );
    let subject = one["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[sensor] HIGH sensor.test: Sensor test alert on "),
        "{subject}"
    );
    assert!(one["body"].as_str().unwrap().contains(&first));

    // A flood within the digest interval becomes one mail.
    let flood = raise(&agent, 5, Severity::Critical, Some(HOSTILE));
    let digest = wait_for(Duration::from_secs(20), || smtp.messages().get(1).cloned())
        .unwrap_or_else(|| panic!("no digest\n{}", agent.log_text()));
    let subject = digest["subject"].as_str().unwrap();
    assert!(
        subject.contains("5 alerts") && subject.contains("highest: critical"),
        "{subject}"
    );
    let body = digest["body"].as_str().unwrap();
    for id in &flood {
        assert!(body.contains(id.as_str()), "{id} missing from the digest");
    }
    assert!(
        !body.contains('\x1b') && body.contains("\\e[2J"),
        "content escaped"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(smtp.messages().len(), 2, "one mail per digest interval");
    let st = agent.status();
    assert_eq!(sink(&st, "mail").sent, 6);
}

#[test]
fn outage_and_kill9_lose_nothing_and_duplicate_nothing_by_id() {
    if !require_root("outage_and_kill9_lose_nothing_and_duplicate_nothing_by_id") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!(
            r#"[[outputs]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{port}/in"
allow_plaintext = true
retry_min_ms = 100
retry_max_secs = 1
rules = ["sensor.test"]
"#
        ),
    );
    // 1. The receiver is down: 1000 alerts go to the spool.
    let agent = Agent::start(Some(&cfg));
    let mut ids: Vec<String> = raise(&agent, 1000, Severity::Medium, Some("outage"));
    assert_eq!(ids.len(), 1000);
    let st = wait_for(Duration::from_secs(20), || {
        let st = agent.status();
        (sink(&st, "hook").queued == 1000).then_some(st)
    })
    .unwrap_or_else(|| panic!("not spooled: {:?}", agent.status().outputs));
    assert!(sink(&st, "hook").failed >= 1);
    assert!(
        sink(&st, "hook")
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("127.0.0.1")
    );

    // 2. kill -9 and restart: the spool is recovered.
    let agent = agent.kill9_and_restart(Some(&cfg));
    assert_eq!(
        sink(&agent.status(), "hook").queued,
        1000,
        "spool survives kill -9"
    );

    // 3. The receiver comes back: everything arrives.
    let rx = HttpReceiver::start(port, &dir.path().join("rx.jsonl"), None, None);
    let got = wait_for(Duration::from_secs(90), || {
        let ids: HashSet<String> = rx
            .requests()
            .iter()
            .map(|r| {
                r["headers"]["x-sensor-alert-id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        (ids.len() >= 1000).then_some(ids)
    })
    .unwrap_or_else(|| panic!("only {} arrived\n{}", rx.requests().len(), agent.log_text()));
    ids.sort();
    let mut got: Vec<String> = got.into_iter().collect();
    got.sort();
    assert_eq!(got, ids, "exactly the raised alerts, deduplicated by id");
    let st = wait_for(Duration::from_secs(5), || {
        let st = agent.status();
        (sink(&st, "hook").queued == 0).then_some(st)
    })
    .expect("queue drained");
    let s = sink(&st, "hook");
    let received = rx.requests().len() as u64;
    assert_eq!(
        s.sent, received,
        "the agent's count is the receiver's count: {s:?}"
    );
    assert_eq!((s.dropped, s.rejected), (0, 0));
    assert!(
        (1000..=1001).contains(&received),
        "a webhook sends one alert per request: at most one resent: {received}"
    );
}

#[test]
fn a_full_spool_drops_the_oldest_counts_and_alerts() {
    if !require_root("a_full_spool_drops_the_oldest_counts_and_alerts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!(
            r#"[[outputs]]
name = "small"
type = "webhook"
url = "http://127.0.0.1:{port}/in"
allow_plaintext = true
spool_max_bytes = 65536
rules = ["sensor.test"]
"#
        ),
    )
    .replace(
        "drop_alert_interval_secs = 10",
        "drop_alert_interval_secs = 1",
    );
    let agent = Agent::start(Some(&cfg));
    raise(&agent, 400, Severity::Low, Some(&"x".repeat(1000)));
    let st = wait_for(Duration::from_secs(20), || {
        let st = agent.status();
        let s = sink(&st, "small");
        (s.dropped > 0 && s.dropped + s.queued == 400).then_some(st)
    })
    .unwrap_or_else(|| panic!("{:?}", agent.status().outputs));
    assert!(sink(&st, "small").queued_bytes <= 65536);
    assert!(st.losses.output_lost > 0);
    let a = agent
        .wait_alert(Duration::from_secs(10), |a| {
            a.rule.id == "sensor.events_dropped"
        })
        .expect("loss alert");
    assert!(
        a.message.contains("alerts lost by outputs"),
        "{}",
        a.message
    );
}

fn sensor_cli(args: &[&str]) -> std::process::Output {
    Command::new(sensor_bin()).args(args).output().unwrap()
}

#[test]
fn bad_output_configs_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    let https_port = free_port();
    let _rx = HttpReceiver::start(
        https_port,
        &dir.path().join("rx.jsonl"),
        Some((&certs, false)),
        None,
    );
    let closed = free_port();
    let check = |name: &str, outputs: &str, offline: bool| -> (bool, String) {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!("{}\n{outputs}\n", sensor::config::DEFAULT_TOML),
        )
        .unwrap();
        let p = path.display().to_string();
        let mut args = vec!["config", "check", p.as_str()];
        if offline {
            args.push("--offline");
        }
        let out = sensor_cli(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let wrong_pin = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let ca = certs.ca.display().to_string();
    let cases: Vec<(&str, String, bool, &str)> = vec![
        ("format", "[[outputs]]\nname = \"x\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"h:1\"\nformat = \"gelf\"".into(), true, "unknown variant `gelf`"),
        ("plaintext", "[[outputs]]\nname = \"x\"\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"h:1\"".into(), true, "allow_plaintext"),
        ("dup", "[[outputs]]\nname = \"x\"\ntype = \"stdout\"\n[[outputs]]\nname = \"x\"\ntype = \"stdout\"".into(), true, "outputs[1] (x): another output has this name"),
        ("cert", "[[outputs]]\nname = \"x\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"h:1\"\nca_file = \"/nonexistent/ca.pem\"".into(), true, "ca_file /nonexistent/ca.pem"),
        ("unreachable", format!("[[outputs]]\nname = \"x\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"127.0.0.1:{closed}\"\nca_file = \"{ca}\""), false, "cannot reach tls://127.0.0.1"),
        ("nohost", "[[outputs]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"https://no-such-host.invalid/x\"".into(), false, "cannot reach https://no-such-host.invalid"),
        ("pin", format!("[[outputs]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"https://127.0.0.1:{https_port}/\"\nca_file = \"{ca}\"\npin_sha256 = [\"{wrong_pin}\"]"), false, "matches no pin_sha256"),
        ("untrusted", format!("[[outputs]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"https://127.0.0.1:{https_port}/\""), false, "certificate"),
    ];
    for (name, outputs, offline, needle) in cases {
        let (ok, text) = check(name, &outputs, offline);
        assert!(!ok, "{name} must fail: {text}");
        assert!(text.contains(needle), "{name}: want {needle:?} in:\n{text}");
    }
    // The good one, with the right pin, passes and is reachable.
    let good = format!(
        "[[outputs]]\nname = \"ok\"\ntype = \"webhook\"\nurl = \"https://127.0.0.1:{https_port}/\"\nca_file = \"{ca}\"\npin_sha256 = [\"{}\"]",
        certs.server_pin
    );
    let (ok, text) = check("good", &good, false);
    assert!(
        ok && text.contains("output ok: https://127.0.0.1"),
        "{text}"
    );
    // `run` refuses the same bad certificate path before touching the kernel.
    let path = dir.path().join("cert.toml");
    let state = dir.path().join("state");
    let out = Command::new(sensor_bin())
        .arg("--state-dir")
        .arg(&state)
        .arg("--config")
        .arg(&path)
        .arg("run")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ca_file /nonexistent/ca.pem"), "{err}");
}

/// RELP: rsyslog acknowledges every message; while it is down alerts wait in the spool, and
/// after it restarts on the same port every one arrives, once per id.
#[test]
fn relp_delivers_acknowledged_and_resumes_after_the_receiver_restarts() {
    if !require_root("relp_delivers_acknowledged_and_resumes_after_the_receiver_restarts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    std::fs::create_dir(&certs_dir).unwrap();
    let certs = Certs::generate(&certs_dir);
    let rs_dir = dir.path().join("rsyslog");
    std::fs::create_dir(&rs_dir).unwrap();
    let mut rs = Rsyslog::start(&rs_dir, &certs);
    let cfg = config(
        dir.path(),
        &format!(
            r#"[[outputs]]
name = "relp"
type = "syslog"
transport = "relp"
address = "127.0.0.1:{}"
allow_plaintext = true
retry_min_ms = 100
retry_max_secs = 1
rules = ["sensor.test"]
"#,
            rs.relp_port
        ),
    );
    let agent = Agent::start(Some(&cfg));
    let arrived = |rs: &Rsyslog, ids: &[String]| {
        let lines = rs.lines("relp");
        ids.iter()
            .map(|id| lines.iter().filter(|l| l.contains(id.as_str())).count())
            .collect::<Vec<_>>()
    };
    let mut ids = raise(&agent, 50, Severity::Medium, Some("relp up"));
    wait_for(Duration::from_secs(20), || {
        (sink(&agent.status(), "relp").sent == 50).then_some(())
    })
    .unwrap_or_else(|| panic!("not sent: {:?}", sink(&agent.status(), "relp")));
    assert!(arrived(&rs, &ids).iter().all(|n| *n == 1));

    // Down: nothing is acknowledged, so everything waits in the spool.
    rs.proc.stop();
    ids.extend(raise(&agent, 50, Severity::Medium, Some("relp down")));
    let st = wait_for(Duration::from_secs(20), || {
        let st = agent.status();
        (sink(&st, "relp").queued == 50 && sink(&st, "relp").failed >= 1).then_some(st)
    })
    .unwrap_or_else(|| panic!("not spooled: {:?}", sink(&agent.status(), "relp")));
    assert_eq!(sink(&st, "relp").sent, 50);

    // Back on the same port: all 100 arrive, once each.
    rs.spawn();
    wait_for(Duration::from_secs(30), || {
        let st = agent.status();
        (sink(&st, "relp").sent == 100 && sink(&st, "relp").queued == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("not delivered: {:?}", sink(&agent.status(), "relp")));
    let counts = arrived(&rs, &ids);
    assert!(counts.iter().all(|n| *n == 1), "{counts:?}");
    assert_eq!(sink(&agent.status(), "relp").dropped, 0);
}
