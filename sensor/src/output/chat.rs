//! Slack and Discord message shapes. Chat clients interpret markup, so attacker text is
//! escaped for each: Slack's `&`, `<`, `>` (no `<!channel>` or forged links), Discord's
//! markdown characters, with mentions disabled outright.

use serde_json::{Value, json};

use crate::alert::{Alert, Severity};

use super::format::{Context, cap, command_line, safe};

fn color(s: Severity) -> u32 {
    match s {
        Severity::Critical => 0x8b0000,
        Severity::High => 0xe01e5a,
        Severity::Medium => 0xecb22e,
        Severity::Low => 0x36c5f0,
        Severity::Info => 0x999999,
    }
}

fn slack_escape(s: &str) -> String {
    safe(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn slack(a: &Alert, ctx: &Context) -> Value {
    let mut lines = vec![format!(
        "*[{}] {}* on {}",
        a.severity.as_str().to_uppercase(),
        slack_escape(&a.rule.name),
        slack_escape(&ctx.hostname)
    )];
    lines.push(slack_escape(&a.message));
    if let Some(p) = &a.process {
        lines.push(format!(
            "process: pid {} {}",
            p.pid,
            slack_escape(&p.executable)
        ));
    }
    if let Some(cmd) = command_line(a) {
        lines.push(format!("command line: {}", slack_escape(&cmd)));
    }
    if let Some(c) = &a.container {
        lines.push(format!("container: {}", slack_escape(&c.id)));
    }
    lines.push(format!(
        "rule {} · {} · alert {}",
        slack_escape(&a.rule.id),
        slack_escape(&a.mitre.join(", ")),
        slack_escape(&a.id)
    ));
    // Slack truncates text at 40 000 characters; stay well below.
    let text = cap(&lines.join("\n"), 12_000);
    json!({
        "text": text,
        "attachments": [{ "color": format!("#{:06x}", color(a.severity)), "fallback": text }],
    })
}

fn discord_escape(s: &str) -> String {
    let mut out = String::new();
    for c in safe(s).chars() {
        if matches!(
            c,
            '\\' | '*'
                | '_'
                | '~'
                | '`'
                | '|'
                | '>'
                | '<'
                | '#'
                | '['
                | ']'
                | '('
                | ')'
                | '@'
                | '-'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn discord(a: &Alert, ctx: &Context) -> Value {
    let mut fields = vec![
        json!({"name": "rule", "value": cap(&discord_escape(&a.rule.id), 1000), "inline": true}),
        json!({"name": "severity", "value": a.severity.as_str(), "inline": true}),
        json!({"name": "host", "value": cap(&discord_escape(&ctx.hostname), 1000), "inline": true}),
    ];
    if let Some(p) = &a.process {
        fields.push(json!({"name": "process", "value":
            cap(&format!("{} {}", p.pid, discord_escape(&p.executable)), 1000)}));
    }
    if let Some(cmd) = command_line(a) {
        fields.push(json!({"name": "command line", "value": cap(&discord_escape(&cmd), 1000)}));
    }
    if let Some(c) = &a.container {
        fields.push(json!({"name": "container", "value": cap(&discord_escape(&c.id), 1000)}));
    }
    if !a.mitre.is_empty() {
        fields.push(json!({"name": "MITRE ATT&CK", "value": a.mitre.join(", ")}));
    }
    fields.push(json!({"name": "alert id", "value": a.id.clone()}));
    json!({
        "content": cap(&format!("[{}] {}", a.severity.as_str().to_uppercase(),
            discord_escape(&a.rule.name)), 1900),
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": cap(&discord_escape(&a.rule.name), 250),
            "description": cap(&discord_escape(&a.message), 4000),
            "color": color(a.severity),
            "timestamp": a.time,
            "fields": fields,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::super::format::tests::{alert_with, ctx, hostile};
    use super::*;

    #[test]
    fn slack_text_has_no_live_markup_and_is_bounded() {
        for s in hostile() {
            let v = slack(&super::super::format::bounded(&alert_with(&s)), &ctx());
            let text = v["text"].as_str().unwrap();
            assert!(!text.contains("<!channel>") && !text.contains("<http"));
            assert!(!text.contains('\x1b') && text.len() <= 12_100);
            assert!(text.lines().count() <= 6, "attacker newlines stay escaped");
        }
    }

    #[test]
    fn discord_disables_mentions_and_respects_limits() {
        for s in hostile() {
            let v = discord(&super::super::format::bounded(&alert_with(&s)), &ctx());
            assert_eq!(v["allowed_mentions"]["parse"], json!([]));
            let e = &v["embeds"][0];
            assert!(e["title"].as_str().unwrap().len() <= 256 + 40);
            assert!(e["description"].as_str().unwrap().len() <= 4096);
            for f in e["fields"].as_array().unwrap() {
                assert!(f["value"].as_str().unwrap().len() <= 1024 + 40);
            }
            assert!(!v["content"].as_str().unwrap().contains(" @everyone"));
        }
    }
}
