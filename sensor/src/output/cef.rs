//! ArcSight CEF: `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
//!
//! Header fields escape `\` and `|`; extension values escape `\` and `=`. Values first go
//! through the terminal-safe escaping, so no newline or control byte reaches the line: an
//! attacker's command line can neither end the record nor start a new `key=` field.

use crate::alert::Alert;

use super::format::{command_line, epoch_ms, safe, severity_0_10};

pub fn line(a: &Alert, version: &str) -> String {
    let mut out = format!(
        "CEF:0|Sensor|sensor|{}|{}|{}|{}|",
        header(version),
        header(&a.rule.id),
        header(&a.rule.name),
        severity_0_10(a.severity)
    );
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", epoch_ms(a).to_string()),
        ("externalId", a.id.clone()),
        ("msg", a.message.clone()),
    ];
    if !a.tags.is_empty() {
        ext.push(("cat", a.tags.join(",")));
    }
    if let Some(p) = &a.process {
        ext.push(("spid", p.pid.to_string()));
        ext.push(("sproc", p.executable.clone()));
        ext.push(("suid", p.uid.to_string()));
        if let Some(u) = &p.user_name {
            ext.push(("suser", u.clone()));
        }
        if let Some(cmd) = command_line(a) {
            ext.push(("cs1Label", "commandLine".into()));
            ext.push(("cs1", cmd));
        }
    }
    if let Some(c) = &a.container {
        ext.push(("cs2Label", "containerId".into()));
        ext.push(("cs2", c.id.clone()));
    }
    if !a.mitre.is_empty() {
        ext.push(("cs3Label", "mitreTechniques".into()));
        ext.push(("cs3", a.mitre.join(",")));
    }
    if let Some(path) = a.fields.get("file.path").and_then(|v| v.as_str()) {
        ext.push(("filePath", path.to_owned()));
    }
    if a.count > 1 {
        ext.push(("cnt", a.count.to_string()));
    }
    let parts: Vec<String> = ext
        .iter()
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect();
    out.push_str(&parts.join(" "));
    out
}

fn header(s: &str) -> String {
    safe(s).replace('\\', "\\\\").replace('|', "\\|")
}

fn value(s: &str) -> String {
    safe(s).replace('\\', "\\\\").replace('=', "\\=")
}

/// A CEF reader (tests read records back with it) as a SIEM would implement it: 7 unescaped pipes, then `key=value` pairs
/// where a key is the word before an unescaped `=`.
pub fn parse(line: &str) -> Option<super::format::Fields> {
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while header.len() < 7 {
        match chars.next()? {
            '\\' => cur.push(chars.next()?),
            '|' => header.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let rest: String = chars.collect();
    // Tokens: (text, is_unescaped_equals)
    let mut ext = Vec::new();
    let mut key: Option<String> = None;
    let mut val = String::new();
    let mut it = rest.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => val.push(it.next()?),
            '=' => {
                // The key is the last space-separated word of what we collected.
                let (before, k) = match val.rfind(' ') {
                    Some(i) => (val[..i].to_owned(), val[i + 1..].to_owned()),
                    None => (String::new(), val.clone()),
                };
                if let Some(prev) = key.take() {
                    ext.push((prev, before));
                }
                key = Some(k);
                val.clear();
            }
            c => val.push(c),
        }
    }
    if let Some(k) = key {
        ext.push((k, val));
    }
    Some((header, ext))
}

#[cfg(test)]
mod tests {
    use super::super::format::tests::{alert_with, ctx, hostile};
    use super::super::format::{Format, bounded, render};
    use super::super::syslog::parse as parse_syslog;
    use super::*;

    #[test]
    fn hostile_strings_stay_in_their_fields() {
        for s in hostile() {
            let a = alert_with(&s);
            let b = bounded(&a);
            let msg = String::from_utf8(render(Format::Cef, &a, &ctx())).unwrap();
            assert!(!msg.contains('\n') && !msg.contains('\r') && !msg.contains('\x1b'));
            let (_, _, body) = parse_syslog(&msg).unwrap();
            let (header, ext) = parse(&body).unwrap();
            assert_eq!(header[0], "CEF:0");
            assert_eq!(header[4], "SEN-TEST-001");
            assert_eq!(header[5], safe(&b.rule.name));
            assert_eq!(header[6], "8");
            let get = |k: &str| ext.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone());
            assert_eq!(get("externalId").unwrap(), a.id);
            assert_eq!(get("msg").unwrap(), safe(&b.message));
            assert_eq!(
                get("sproc").unwrap(),
                safe(&b.process.as_ref().unwrap().executable)
            );
            assert_eq!(get("cs1").unwrap(), safe(&command_line(&b).unwrap()));
            assert_eq!(get("cs2").unwrap(), safe(&b.container.as_ref().unwrap().id));
            assert_eq!(
                get("filePath").unwrap(),
                safe(b.fields["file.path"].as_str().unwrap())
            );
            let keys: Vec<&str> = ext.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "rt",
                    "externalId",
                    "msg",
                    "cat",
                    "spid",
                    "sproc",
                    "suid",
                    "suser",
                    "cs1Label",
                    "cs1",
                    "cs2Label",
                    "cs2",
                    "filePath"
                ],
                "no forged keys"
            );
        }
    }
}
