//! Incident reports: the timeline, the ATT&CK progression, the actions taken and the evidence
//! index, as Markdown and as a self-contained HTML page. Every value from an alert, event or
//! bundle is attacker-influenced: escaped for the terminal first, then for Markdown or HTML.

use std::fmt::Write as _;

use crate::{
    alert::Alert,
    respond::{audit::Entry, bundle::Manifest},
    rules::incidents::{Incident, IncidentScope},
};

pub struct Input<'a> {
    pub incident: &'a Incident,
    pub alerts: &'a [Alert],
    pub actions: &'a [Entry],
    /// (bundle directory, its manifest, whether it verified).
    pub bundles: &'a [(String, Manifest, bool)],
}

fn safe(s: &str) -> String {
    crate::escape::escape_str(s, 2048)
}

/// Markdown: backslash-escape the characters that format, and keep to one line.
pub(crate) fn md(s: &str) -> String {
    let mut out = String::new();
    for c in safe(s).chars() {
        if "\\`*_{}[]()#+-.!|<>~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn html(s: &str) -> String {
    let mut out = String::new();
    for c in safe(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn scope_text(s: &IncidentScope) -> String {
    match s {
        IncidentScope::ProcessTree {
            root_pid,
            root_exe,
            container_id,
        } => format!(
            "process tree of {root_pid} ({root_exe}){}",
            container_id
                .as_ref()
                .map(|c| format!(" in container {c}"))
                .unwrap_or_default()
        ),
        IncidentScope::Container { id } => format!("container {id}"),
        IncidentScope::Host => "host".into(),
    }
}

/// Rows of the timeline: (time, what, detail), sorted by time.
fn timeline(input: &Input<'_>) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for a in input.alerts {
        let proc_ = a
            .process
            .as_ref()
            .map(|p| format!(" pid {} {}", p.pid, p.executable))
            .unwrap_or_default();
        rows.push((
            a.time.clone(),
            format!("alert {} ({})", a.rule.id, a.severity),
            format!("{}{proc_} {}", a.message, a.mitre.join(",")),
        ));
    }
    for e in input.actions {
        rows.push((
            e.time.clone(),
            format!("action {} [{}]", e.action, e.mode),
            format!(
                "{} → {} by {}{}",
                e.target,
                e.outcome,
                e.actor,
                e.latency_ms
                    .map(|l| format!(" ({l:.1} ms after the event)"))
                    .unwrap_or_default()
            ),
        ));
    }
    for (_, m, _) in input.bundles {
        rows.push((
            m.sealed.clone(),
            "evidence sealed".into(),
            format!("bundle {} ({} items)", m.id, m.items.len()),
        ));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

pub fn markdown(input: &Input<'_>) -> String {
    let i = input.incident;
    let mut s = String::new();
    let _ = writeln!(s, "# Incident {}\n", md(&i.id.0));
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Status | {:?} |", i.status);
    let _ = writeln!(s, "| Severity | {} |", i.severity);
    let _ = writeln!(s, "| Scope | {} |", md(&scope_text(&i.scope)));
    let _ = writeln!(s, "| First alert | {} |", md(&i.first_time));
    let _ = writeln!(s, "| Last alert | {} |", md(&i.last_time));
    let _ = writeln!(s, "| Alerts | {} |", i.alert_count);
    let _ = writeln!(s, "| Rules | {} |\n", md(&i.rules.join(", ")));
    let _ = writeln!(s, "## ATT&CK progression\n");
    if i.tactics.is_empty() {
        let _ = writeln!(s, "No tactics recorded.\n");
    } else {
        let tactics: Vec<String> = i.tactics.iter().map(|t| md(t)).collect();
        let _ = writeln!(s, "{}\n", tactics.join(" → "));
        let _ = writeln!(s, "Techniques: {}\n", md(&i.techniques.join(", ")));
    }
    let _ = writeln!(s, "## Timeline\n\n| Time | What | Detail |\n|---|---|---|");
    for (t, what, detail) in timeline(input) {
        let _ = writeln!(s, "| {} | {} | {} |", md(&t), md(&what), md(&detail));
    }
    let _ = writeln!(s, "\n## Actions taken\n");
    if input.actions.is_empty() {
        let _ = writeln!(s, "None.");
    }
    for e in input.actions {
        let _ = writeln!(
            s,
            "- {} {} {} on {}: {} (audit seq {}{})",
            md(&e.time),
            md(&e.actor),
            md(&e.action),
            md(&e.target),
            md(&e.outcome),
            e.seq,
            e.containment
                .as_ref()
                .map(|c| format!(", containment {}", md(c)))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(s, "\n## Evidence\n");
    if input.bundles.is_empty() {
        let _ = writeln!(s, "No evidence bundle.");
    }
    for (dir, m, ok) in input.bundles {
        let _ = writeln!(
            s,
            "### {} ({})\n\nSigned by `{}`; {}.\n\n| # | Item | Kind | Bytes | SHA-256 |\n|---|---|---|---|---|",
            md(&m.id),
            md(dir),
            md(&m.public_key),
            if *ok {
                "verified"
            } else {
                "**FAILED verification**"
            }
        );
        for it in &m.items {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | `{}` |",
                it.seq,
                md(&it.name),
                md(&it.kind),
                it.size,
                md(&it.sha256)
            );
        }
        for miss in &m.missing {
            let _ = writeln!(
                s,
                "\nNot collected: {}",
                md(&serde_json::to_string(miss).unwrap_or_default())
            );
        }
    }
    s
}

pub fn html_page(input: &Input<'_>) -> String {
    let i = input.incident;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>Incident {}</title><style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}}\
         code{{font-size:.85em}}.bad{{color:#b00;font-weight:bold}}</style></head><body>\n",
        html(&i.id.0)
    );
    let _ = writeln!(s, "<h1>Incident {}</h1>", html(&i.id.0));
    let _ = writeln!(
        s,
        "<table><tr><th>Status</th><td>{:?}</td></tr><tr><th>Severity</th><td>{}</td></tr>\
         <tr><th>Scope</th><td>{}</td></tr><tr><th>First alert</th><td>{}</td></tr>\
         <tr><th>Last alert</th><td>{}</td></tr><tr><th>Alerts</th><td>{}</td></tr>\
         <tr><th>Rules</th><td>{}</td></tr></table>",
        i.status,
        i.severity,
        html(&scope_text(&i.scope)),
        html(&i.first_time),
        html(&i.last_time),
        i.alert_count,
        html(&i.rules.join(", "))
    );
    let _ = writeln!(
        s,
        "<h2>ATT&amp;CK progression</h2><p>{}</p><p>Techniques: {}</p>",
        i.tactics
            .iter()
            .map(|t| html(t))
            .collect::<Vec<_>>()
            .join(" &rarr; "),
        html(&i.techniques.join(", "))
    );
    let _ = writeln!(
        s,
        "<h2>Timeline</h2><table><tr><th>Time</th><th>What</th><th>Detail</th></tr>"
    );
    for (t, what, detail) in timeline(input) {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(&t),
            html(&what),
            html(&detail)
        );
    }
    let _ = writeln!(
        s,
        "</table><h2>Actions taken</h2><table><tr><th>Seq</th><th>Time</th><th>Actor</th><th>Action</th><th>Target</th><th>Mode</th><th>Outcome</th></tr>"
    );
    for e in input.actions {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            html(&e.time),
            html(&e.actor),
            html(&e.action),
            html(&e.target),
            html(&e.mode),
            html(&e.outcome)
        );
    }
    let _ = writeln!(s, "</table><h2>Evidence</h2>");
    for (dir, m, ok) in input.bundles {
        let _ = writeln!(
            s,
            "<h3>{} <small>{}</small></h3><p>Signed by <code>{}</code>; {}</p>\
             <table><tr><th>#</th><th>Item</th><th>Kind</th><th>Bytes</th><th>SHA-256</th></tr>",
            html(&m.id),
            html(dir),
            html(&m.public_key),
            if *ok {
                "verified".to_owned()
            } else {
                "<span class=\"bad\">FAILED verification</span>".to_owned()
            }
        );
        for it in &m.items {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                it.seq,
                html(&it.name),
                html(&it.kind),
                it.size,
                html(&it.sha256)
            );
        }
        let _ = writeln!(s, "</table>");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use crate::rules::incidents::{IncidentId, Status};

    #[test]
    fn hostile_strings_are_escaped_in_both_formats() {
        let inc = Incident {
            id: IncidentId("inc-1".into()),
            status: Status::Open,
            scope: IncidentScope::ProcessTree {
                root_pid: 7,
                root_exe: "/tmp/<script>alert(1)</script>".into(),
                container_id: None,
            },
            first_ns: 0,
            last_ns: 0,
            first_time: "2026-01-01T00:00:00.000000000Z".into(),
            last_time: "2026-01-01T00:00:01.000000000Z".into(),
            severity: Severity::High,
            alert_ids: vec![],
            alert_count: 1,
            rules: vec!["r|x".into()],
            tactics: vec!["execution".into(), "command-and-control".into()],
            techniques: vec!["T1059".into()],
        };
        let alert = Alert::new(
            "r|x",
            "n",
            Severity::High,
            "line1\nline2 \x1b[31m <img src=x onerror=1> | *bold*",
        );
        let input = Input {
            incident: &inc,
            alerts: std::slice::from_ref(&alert),
            actions: &[],
            bundles: &[],
        };
        let h = html_page(&input);
        assert!(!h.contains("<script>") && !h.contains("<img"), "{h}");
        assert!(h.contains("&lt;script&gt;"));
        assert!(h.contains("execution &rarr; command-and-control"));
        let m = markdown(&input);
        assert!(!m.contains('\x1b'));
        assert!(m.contains("r\\|x"));
        assert!(m.contains("\\*bold\\*"));
        // One table row per timeline entry: the newline in the message stays escaped.
        let rows = m
            .lines()
            .filter(|l| l.starts_with("| 2026") || l.starts_with("| "))
            .count();
        assert!(rows >= 1);
        assert!(!m.contains("line1\nline2"));
    }
}
