//! RFC 5424 messages and their framing: UDP (one datagram), TCP and TLS (octet counting,
//! RFC 6587 / RFC 5425), so a message may hold any byte without ending early.

use crate::alert::{Alert, Severity};

use super::format::{Context, command_line, safe};

/// Private enterprise number of the structured-data id (RFC 5612's documentation number).
pub const SD_ID: &str = "sensor@32473";

/// Syslog severity (RFC 5424 table 2) of an alert severity.
pub fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    }
}

/// Facility numbers by name (RFC 5424 table 1); the config accepts either.
pub fn facility_number(name: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| i as u8)
        .or_else(|| name.parse::<u8>().ok().filter(|n| *n < 24))
}

/// The alert as an RFC 5424 message: the human message as MSG, the alert in structured data.
pub fn rfc5424(a: &Alert, ctx: &Context) -> String {
    let mut sd = format!("[{SD_ID}");
    let mut param = |k: &str, v: &str| {
        sd.push_str(&format!(" {k}=\"{}\"", sd_value(v)));
    };
    param("id", &a.id);
    param("rule", &a.rule.id);
    param("name", &a.rule.name);
    param("severity", a.severity.as_str());
    if !a.mitre.is_empty() {
        param("mitre", &a.mitre.join(","));
    }
    if let Some(p) = &a.process {
        param("pid", &p.pid.to_string());
        param("uid", &p.uid.to_string());
        param("exe", &p.executable);
        if let Some(cmd) = command_line(a) {
            param("cmdline", &cmd);
        }
    }
    if let Some(c) = &a.container {
        param("container", &c.id);
    }
    if a.count > 1 {
        param("count", &a.count.to_string());
    }
    sd.push(']');
    header(a, ctx, &sd, &safe(&a.message))
}

/// A CEF or LEEF line as the MSG of an RFC 5424 message.
pub fn wrap(a: &Alert, ctx: &Context, line: &str) -> String {
    header(a, ctx, "-", line)
}

fn header(a: &Alert, ctx: &Context, sd: &str, msg: &str) -> String {
    let pri = u16::from(ctx.facility) * 8 + u16::from(syslog_severity(a.severity));
    format!(
        "<{pri}>1 {} {} {} {} {} {sd} {msg}",
        timestamp(&a.time),
        header_token(&ctx.hostname, 255),
        header_token(&ctx.app_name, 48),
        std::process::id(),
        header_token(&a.rule.id, 32),
    )
}

/// RFC 5424 allows at most 6 fractional digits; our alert times carry 9.
fn timestamp(t: &str) -> String {
    match (t.find('.'), t.strip_suffix('Z')) {
        (Some(dot), Some(_)) if t.len() > dot + 7 => format!("{}Z", &t[..dot + 7]),
        _ if t.is_empty() => "-".into(),
        _ => header_token(t, 64),
    }
}

/// A header field: printable US-ASCII without spaces, bounded, `-` when empty.
fn header_token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if t.is_empty() { "-".into() } else { t }
}

/// A PARAM-VALUE: controls escaped, then `"`, `\` and `]` backslash-escaped (RFC 5424 6.3.3).
pub fn sd_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in safe(v).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Octet-counting frame for stream transports: `LEN SP MSG`.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg);
    out
}

/// A strict reader of what [`rfc5424`] and [`wrap`] write: the six header fields, the
/// structured-data params of our SD element (unescaped), and MSG. `None` if it is not such a
/// message. Tests (here and end to end against rsyslog) read records back with it.
pub type Parsed = (Vec<String>, Vec<(String, String)>, String);

pub fn parse(msg: &str) -> Option<Parsed> {
    let mut rest = msg;
    let mut head = Vec::new();
    for _ in 0..6 {
        let (f, r) = rest.split_once(' ')?;
        head.push(f.to_owned());
        rest = r;
    }
    let mut params = Vec::new();
    if let Some(r) = rest.strip_prefix("- ") {
        return Some((head, params, r.to_owned()));
    }
    let r = rest.strip_prefix('[')?;
    let (id, mut r) = r.split_once(' ')?;
    if id != SD_ID {
        return None;
    }
    loop {
        if let Some(after) = r.strip_prefix("] ") {
            return Some((head, params, after.to_owned()));
        }
        let (k, after) = r.split_once("=\"")?;
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => v.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => v.push(c),
            }
        };
        params.push((k.to_owned(), v));
        r = after[end + 1..]
            .strip_prefix(' ')
            .unwrap_or(&after[end + 1..]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::format::tests::{alert_with, ctx, hostile};
    use super::super::format::{Format, bounded, render, safe};
    use super::*;

    #[test]
    fn header_and_structured_data_survive_hostile_strings() {
        for s in hostile() {
            let a = alert_with(&s);
            let out = String::from_utf8(render(Format::Rfc5424, &a, &ctx())).unwrap();
            assert!(!out.contains('\n') && !out.contains('\r') && !out.contains('\x1b'));
            let (head, params, msg) = parse(&out).unwrap();
            assert_eq!(head[0], "<83>1", "authpriv.err");
            assert_eq!(head[5], "SEN-TEST-001");
            let b = bounded(&a);
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(pk, _)| pk == k)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(get("id").unwrap(), a.id);
            assert_eq!(get("name").unwrap(), safe(&b.rule.name));
            assert_eq!(
                get("exe").unwrap(),
                safe(&b.process.as_ref().unwrap().executable)
            );
            assert_eq!(
                get("container").unwrap(),
                safe(&b.container.as_ref().unwrap().id)
            );
            assert_eq!(msg, safe(&b.message));
        }
    }

    #[test]
    fn timestamps_have_at_most_six_fractional_digits() {
        assert_eq!(
            timestamp("2026-11-24T10:00:00.123456789Z"),
            "2026-11-24T10:00:00.123456Z"
        );
        assert_eq!(timestamp(""), "-");
    }

    #[test]
    fn facilities_by_name_or_number() {
        assert_eq!(facility_number("authpriv"), Some(10));
        assert_eq!(facility_number("local7"), Some(23));
        assert_eq!(facility_number("3"), Some(3));
        assert_eq!(facility_number("24"), None);
        assert_eq!(facility_number("nope"), None);
    }

    #[test]
    fn frames_count_octets() {
        assert_eq!(frame("héllo".as_bytes()), b"6 h\xc3\xa9llo".to_vec());
    }
}
