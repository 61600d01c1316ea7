//! IBM QRadar LEEF 2.0: `LEEF:2.0|Vendor|Product|Version|EventID|^|key=value^key=value`.
//!
//! `^` is the attribute delimiter (declared in the header; tabs would be mangled by syslog
//! daemons that escape control characters). Values escape `\` and `^`; header fields `\` and
//! `|`; controls never reach the line (terminal-safe escaping first).

use crate::alert::Alert;

use super::format::{command_line, safe, severity_0_10};

pub const DELIMITER: char = '^';

pub fn line(a: &Alert, version: &str) -> String {
    let mut out = format!(
        "LEEF:2.0|Sensor|sensor|{}|{}|{DELIMITER}|",
        header(version),
        header(&a.rule.id),
    );
    let mut attrs: Vec<(&str, String)> = vec![
        ("devTime", a.time.clone()),
        ("devTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSSSSX".into()),
        ("sev", severity_0_10(a.severity).to_string()),
        ("cat", a.severity.as_str().into()),
        ("alertId", a.id.clone()),
        ("ruleName", a.rule.name.clone()),
        ("msg", a.message.clone()),
    ];
    if let Some(p) = &a.process {
        attrs.push(("pid", p.pid.to_string()));
        attrs.push(("exe", p.executable.clone()));
        attrs.push(("uid", p.uid.to_string()));
        if let Some(u) = &p.user_name {
            attrs.push(("usrName", u.clone()));
        }
        if let Some(cmd) = command_line(a) {
            attrs.push(("cmdline", cmd));
        }
    }
    if let Some(c) = &a.container {
        attrs.push(("containerId", c.id.clone()));
    }
    if !a.mitre.is_empty() {
        attrs.push(("mitre", a.mitre.join(",")));
    }
    if a.count > 1 {
        attrs.push(("count", a.count.to_string()));
    }
    let parts: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect();
    out.push_str(&parts.join(&DELIMITER.to_string()));
    out
}

fn header(s: &str) -> String {
    safe(s).replace('\\', "\\\\").replace('|', "\\|")
}

fn value(s: &str) -> String {
    safe(s)
        .replace('\\', "\\\\")
        .replace(DELIMITER, &format!("\\{DELIMITER}"))
}

/// A LEEF 2.0 reader (tests read records back with it): 6 unescaped pipes, then attributes split on unescaped `^`, each
/// split at its first `=`.
pub fn parse(line: &str) -> Option<super::format::Fields> {
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while header.len() < 6 {
        match chars.next()? {
            '\\' => cur.push(chars.next()?),
            '|' => header.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let mut attrs = Vec::new();
    let mut cur = String::new();
    let mut split = |cur: &mut String| -> Option<()> {
        let (k, v) = cur.split_once('=')?;
        attrs.push((k.to_owned(), v.to_owned()));
        cur.clear();
        Some(())
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.push(chars.next()?),
            DELIMITER => split(&mut cur)?,
            c => cur.push(c),
        }
    }
    split(&mut cur)?;
    Some((header, attrs))
}

#[cfg(test)]
mod tests {
    use super::super::format::tests::{alert_with, ctx, hostile};
    use super::super::format::{Format, bounded, render};
    use super::super::syslog::parse as parse_syslog;
    use super::*;

    #[test]
    fn hostile_strings_stay_in_their_attributes() {
        for s in hostile() {
            let a = alert_with(&s);
            let b = bounded(&a);
            let msg = String::from_utf8(render(Format::Leef, &a, &ctx())).unwrap();
            assert!(!msg.contains('\n') && !msg.contains('\t') && !msg.contains('\x1b'));
            let (_, _, body) = parse_syslog(&msg).unwrap();
            let (header, attrs) = parse(&body).unwrap();
            assert_eq!(header[0], "LEEF:2.0");
            assert_eq!(header[4], "SEN-TEST-001");
            assert_eq!(header[5], "^");
            let get = |k: &str| attrs.iter().find(|(ak, _)| ak == k).map(|(_, v)| v.clone());
            assert_eq!(get("alertId").unwrap(), a.id);
            assert_eq!(get("msg").unwrap(), safe(&b.message));
            assert_eq!(get("ruleName").unwrap(), safe(&b.rule.name));
            assert_eq!(get("cmdline").unwrap(), safe(&command_line(&b).unwrap()));
            assert_eq!(
                get("usrName").unwrap(),
                safe(b.process.as_ref().unwrap().user_name.as_ref().unwrap())
            );
            assert_eq!(attrs.len(), 13, "no forged attributes: {attrs:?}");
        }
    }
}
