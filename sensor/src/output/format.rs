//! How an alert looks on the wire: one renderer per format, all fed the same bounded copy.
//!
//! Every string of an alert may be attacker-chosen (command lines, paths, names), and may be
//! huge. Renderers therefore start from [`bounded`], which caps every string, and text formats
//! pass values through [`crate::escape::escape_str`] (no raw control character, newline or
//! bidi override survives) before applying their own escaping. A record is always one record.

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Severity};

/// Longest message, command line, and any other string a sink sends (bytes, before escaping).
pub const MAX_MESSAGE: usize = 2048;
pub const MAX_COMMAND_LINE: usize = 4096;
pub const MAX_STRING: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The alert record as JSON (one object).
    Json,
    /// One escaped human line (stdout, journald).
    Text,
    /// RFC 5424 with the alert in structured data.
    Rfc5424,
    /// ArcSight Common Event Format, inside an RFC 5424 message.
    Cef,
    /// IBM QRadar Log Event Extended Format 2.0, inside an RFC 5424 message.
    Leef,
    /// Slack incoming-webhook message.
    Slack,
    /// Discord webhook message (an embed; mentions disabled).
    Discord,
    /// OCSF 1.1 Detection Finding (class 2004).
    Ocsf,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Text => "text",
            Format::Rfc5424 => "rfc5424",
            Format::Cef => "cef",
            Format::Leef => "leef",
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Ocsf => "ocsf",
        }
    }
}

/// A record read back: header fields, then key/value pairs (unescaped).
pub type Fields = (Vec<String>, Vec<(String, String)>);

/// What a renderer needs besides the alert.
#[derive(Debug, Clone)]
pub struct Context {
    pub hostname: String,
    pub app_name: String,
    /// Syslog facility number (0-23).
    pub facility: u8,
    pub version: &'static str,
}

impl Context {
    pub fn new(facility: u8) -> Self {
        Self {
            hostname: local_hostname(),
            app_name: "sensor".into(),
            facility,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The name alerts carry as their host: the node name on Kubernetes, else the hostname.
pub fn local_hostname() -> String {
    crate::host::identity::get().node.clone()
}

pub fn system_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Renders one alert. Syslog formats return the message without transport framing.
pub fn render(format: Format, alert: &Alert, ctx: &Context) -> Vec<u8> {
    let a = bounded(alert);
    match format {
        Format::Json => serde_json::to_vec(&a).unwrap_or_default(),
        Format::Text => text_line(&a).into_bytes(),
        Format::Rfc5424 => super::syslog::rfc5424(&a, ctx).into_bytes(),
        Format::Cef => {
            super::syslog::wrap(&a, ctx, &super::cef::line(&a, ctx.version)).into_bytes()
        }
        Format::Leef => {
            super::syslog::wrap(&a, ctx, &super::leef::line(&a, ctx.version)).into_bytes()
        }
        Format::Slack => serde_json::to_vec(&super::chat::slack(&a, ctx)).unwrap_or_default(),
        Format::Discord => serde_json::to_vec(&super::chat::discord(&a, ctx)).unwrap_or_default(),
        Format::Ocsf => serde_json::to_vec(&super::ocsf::finding(&a, ctx)).unwrap_or_default(),
    }
}

/// A copy of the alert with every string capped (at a character boundary, with a marker that
/// says how much was cut). The local alert log keeps the full record.
pub fn bounded(alert: &Alert) -> Alert {
    let mut a = alert.clone();
    a.message = cap(&a.message, MAX_MESSAGE);
    a.rule.id = cap(&a.rule.id, MAX_STRING);
    a.rule.name = cap(&a.rule.name, MAX_STRING);
    if let Some(p) = a.process.as_mut() {
        p.executable = cap(&p.executable, MAX_STRING);
        let mut budget = MAX_COMMAND_LINE;
        let mut args = Vec::new();
        for arg in &p.args {
            if budget == 0 {
                args.push(format!("…[+{} args]", p.args.len() - args.len()));
                break;
            }
            let c = cap(arg, budget);
            budget = budget.saturating_sub(c.len() + 1);
            args.push(c);
        }
        p.args = args;
        if let Some(u) = p.user_name.as_mut() {
            *u = cap(u, MAX_STRING);
        }
        for anc in &mut p.ancestry {
            anc.executable = cap(&anc.executable, MAX_STRING);
        }
        p.ancestry.truncate(16);
    }
    if let Some(c) = a.container.as_mut() {
        c.id = cap(&c.id, MAX_STRING);
        c.runtime = cap(&c.runtime, MAX_STRING);
    }
    a.mitre.truncate(32);
    a.tags.truncate(32);
    for t in a.mitre.iter_mut().chain(a.tags.iter_mut()) {
        *t = cap(t, MAX_STRING);
    }
    for v in a.fields.values_mut() {
        cap_json(v, 0);
    }
    a
}

fn cap_json(v: &mut serde_json::Value, depth: usize) {
    match v {
        serde_json::Value::String(s) => *s = cap(s, MAX_STRING),
        serde_json::Value::Array(items) => {
            items.truncate(64);
            items.iter_mut().for_each(|i| cap_json(i, depth + 1));
        }
        serde_json::Value::Object(map) if depth < 4 => {
            map.values_mut().for_each(|i| cap_json(i, depth + 1));
        }
        serde_json::Value::Object(_) => *v = serde_json::Value::String("…".into()),
        _ => {}
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with `…[+N bytes]` when cut.
pub fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[+{} bytes]", &s[..end], s.len() - end)
}

/// Safe for a terminal or a line-oriented log: one line, controls escaped.
pub fn safe(s: &str) -> String {
    crate::escape::escape_str(s, usize::MAX)
}

pub fn command_line(alert: &Alert) -> Option<String> {
    alert
        .process
        .as_ref()
        .filter(|p| !p.args.is_empty())
        .map(|p| p.args.join(" "))
}

/// Severity on the 0-10 scale of CEF and LEEF.
pub fn severity_0_10(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// Milliseconds since the epoch of the alert's time (0 if unparsable).
pub fn epoch_ms(alert: &Alert) -> i128 {
    alert
        .parsed_time()
        .map(|t| t.unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(0)
}

fn text_line(a: &Alert) -> String {
    let mut line = format!(
        "{} {} {} {}: {}",
        a.time,
        a.severity.as_str().to_uppercase(),
        safe(&a.rule.id),
        safe(&a.rule.name),
        safe(&a.message)
    );
    if let Some(p) = &a.process {
        line.push_str(&format!(" pid={} exe={}", p.pid, safe(&p.executable)));
        if let Some(cmd) = command_line(a) {
            line.push_str(&format!(" cmdline=\"{}\"", safe(&cmd).replace('"', "\\\"")));
        }
    }
    if let Some(c) = &a.container {
        line.push_str(&format!(" container={}", safe(&c.id)));
    }
    line.push_str(&format!(" id={}", safe(&a.id)));
    line
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alert::AlertProcess;

    /// The hostile strings every format is tested with.
    pub fn hostile() -> Vec<String> {
        vec![
            "line one\nline two\r\n<13>1 2026-01-01T00:00:00Z forged - - - - second record".into(),
            "a|b|c\\|d\\\\e=f==g\\=".into(),
            "\x1b[31mred\x1b[0m \x1b]0;title\x07 \u{202e}evil\u{202c}".into(),
            "\"quoted\" ]bracket[ [sd@1 x=\"y\"] CEF:0|x|y|z|1|2|3|k=v".into(),
            String::from_utf8_lossy(b"bad \xff\xfe utf8 \xc3").into_owned(),
            "tab\there\u{0}nul\u{85}nel".into(),
            "x".repeat(1 << 20),
            "<script>alert(1)</script> @everyone <!channel> <http://e.vil|click> *bold* `code`"
                .into(),
        ]
    }

    pub fn alert_with(s: &str) -> Alert {
        Alert::new("SEN-TEST-001", format!("rule {s}"), Severity::High, s)
            .with_process(
                AlertProcess::new(42, 1, 0, format!("/usr/bin/{s}"))
                    .with_args(["sh", "-c", s])
                    .with_user_name(s),
            )
            .with_container(s, "runc", None)
            .with_field("file.path", s)
            .with_tag(s)
    }

    #[test]
    fn cap_cuts_on_char_boundaries_and_says_how_much() {
        assert_eq!(cap("abc", 3), "abc");
        assert_eq!(cap("aé", 2), "a…[+2 bytes]");
        let big = "é".repeat(1000);
        let c = cap(&big, 11);
        assert!(c.starts_with("ééééé…"), "{c}");
    }

    #[test]
    fn bounded_caps_every_string() {
        let a = alert_with(&"y".repeat(1 << 20));
        let b = bounded(&a);
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.len() < 32 * 1024, "{}", json.len());
        assert_eq!(b.id, a.id);
    }

    #[test]
    fn text_is_one_line_for_hostile_input() {
        for s in hostile() {
            let line = String::from_utf8(render(Format::Text, &alert_with(&s), &ctx())).unwrap();
            assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\x1b'));
            assert!(!line.contains('\u{202e}'));
            assert!(line.len() < 16 * 1024);
        }
    }

    #[test]
    fn json_round_trips_the_bounded_alert() {
        for s in hostile() {
            let a = alert_with(&s);
            let out = render(Format::Json, &a, &ctx());
            assert!(!out.contains(&b'\n'));
            let back: Alert = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, bounded(&a));
        }
    }

    pub fn ctx() -> Context {
        Context {
            hostname: "host-1".into(),
            app_name: "sensor".into(),
            facility: 10,
            version: "0.1.0",
        }
    }
}
