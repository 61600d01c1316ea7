//! `sensor report compliance`: the sensor's controls mapped to SOC 2 (trust services criteria)
//! and ISO/IEC 27001:2022 Annex A, each with evidence counted from the audit trail and the
//! alert log over a period. A control with nothing in the period says so: no evidence is
//! reported as missing, never as met.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{alert::Alert, audit::Entry};

#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error("unknown framework {0:?} (soc2 or iso27001)")]
    Framework(String),
    #[error("--since {0:?}: expected a date (YYYY-MM-DD) or an RFC 3339 time")]
    Since(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Soc2,
    Iso27001,
}

impl std::str::FromStr for Framework {
    type Err = ComplianceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "soc2" => Ok(Framework::Soc2),
            "iso27001" | "iso-27001" => Ok(Framework::Iso27001),
            _ => Err(ComplianceError::Framework(s.into())),
        }
    }
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339, as the sortable text alerts and audit records use.
pub fn parse_since(s: &str) -> Result<time::OffsetDateTime, ComplianceError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| ComplianceError::Since(s.into()))
}

/// Where a control's evidence comes from.
#[derive(Clone, Copy)]
enum Source {
    /// Audit records whose action starts with one of these.
    Audit(&'static [&'static str]),
    /// Alerts whose rule id starts with one of these (empty: every alert but heartbeats).
    Alerts(&'static [&'static str]),
    /// Alerts carrying this field (correlated alerts carry `correlation`).
    Field(&'static str),
}

struct Control {
    id: &'static str,
    title: &'static str,
    how: &'static str,
    sources: &'static [Source],
}

const SOC2: &[Control] = &[
    Control {
        id: "CC6.1",
        title: "Logical access security",
        how: "control socket limited to root, the agent's user and allow-listed users and groups (SO_PEERCRED, SO_PEERGROUPS); remote API over TLS with scoped, expiring, revocable tokens; every authentication attempt audited; capabilities dropped after start",
        sources: &[Source::Audit(&[
            "api-auth",
            "token-create",
            "token-rotate",
            "token-revoke",
            "agent-start",
        ])],
    },
    Control {
        id: "CC6.8",
        title: "Prevent or detect unauthorized or malicious software",
        how: "exec rules, IOC hash and address matches, deny-exec and enforcement profiles",
        sources: &[
            Source::Alerts(&["SEN-EXEC", "sensor.ioc."]),
            Source::Audit(&["deny-exec", "baseline-profile-enforce"]),
        ],
    },
    Control {
        id: "CC7.1",
        title: "Detect configuration changes and vulnerabilities",
        how: "config hash at every start, rule and indicator reloads, tamper alerts on the sensor's own files",
        sources: &[
            Source::Audit(&["config-change", "rules-reload", "ioc-reload"]),
            Source::Alerts(&["sensor.tamper."]),
        ],
    },
    Control {
        id: "CC7.2",
        title: "Monitor system components for anomalies",
        how: "detection rules, behavioural baselines, heartbeat and loss accounting",
        sources: &[
            Source::Alerts(&[]),
            Source::Alerts(&["sensor.heartbeat"]),
            Source::Audit(&["events-dropped"]),
        ],
    },
    Control {
        id: "CC7.3",
        title: "Evaluate security events",
        how: "alerts correlated into incidents with ATT&CK progression; evidence bundles",
        sources: &[
            Source::Field("correlation"),
            Source::Audit(&["collect-evidence"]),
        ],
    },
    Control {
        id: "CC7.4",
        title: "Respond to security incidents",
        how: "containment (kill, freeze, isolate, deny exec, quarantine) by hand or playbook, audited with outcome and latency",
        sources: &[Source::Audit(&[
            "kill",
            "freeze",
            "thaw",
            "isolate",
            "quarantine",
            "release",
            "rollback",
            "approve",
        ])],
    },
    Control {
        id: "CC8.1",
        title: "Change management",
        how: "baseline and profile lifecycle changes, rule and config changes, all in the hash-chained trail",
        sources: &[Source::Audit(&[
            "baseline-",
            "config-change",
            "rules-reload",
        ])],
    },
];

const ISO27001: &[Control] = &[
    Control {
        id: "A.5.24-A.5.26",
        title: "Incident management planning, assessment and response",
        how: "incidents with timelines; playbooks with approval, dry run and rollback",
        sources: &[
            Source::Field("correlation"),
            Source::Audit(&[
                "kill",
                "freeze",
                "isolate",
                "quarantine",
                "deny-exec",
                "approve",
            ]),
        ],
    },
    Control {
        id: "A.5.28",
        title: "Collection of evidence",
        how: "signed evidence bundles with a chain-of-custody log",
        sources: &[Source::Audit(&["collect-evidence"])],
    },
    Control {
        id: "A.8.2",
        title: "Privileged access rights",
        how: "the agent drops capabilities after start; only root and allow-listed users reach its control socket; remote API tokens carry read, respond or admin scope",
        sources: &[Source::Audit(&[
            "agent-start",
            "api-auth",
            "token-create",
            "token-revoke",
        ])],
    },
    Control {
        id: "A.8.7",
        title: "Protection against malware",
        how: "IOC matching in the kernel, deny-exec by hash, quarantine",
        sources: &[
            Source::Alerts(&["sensor.ioc."]),
            Source::Audit(&["deny-exec", "quarantine"]),
        ],
    },
    Control {
        id: "A.8.9",
        title: "Configuration management",
        how: "config hash recorded at each start; changes between starts audited",
        sources: &[Source::Audit(&["config-change", "agent-start"])],
    },
    Control {
        id: "A.8.15",
        title: "Logging",
        how: "alert log, hash-chained audit trail, heartbeats for gap detection",
        sources: &[
            Source::Alerts(&["sensor.heartbeat"]),
            Source::Audit(&["agent-start", "agent-stop"]),
        ],
    },
    Control {
        id: "A.8.16",
        title: "Monitoring activities",
        how: "kernel telemetry, rules, baselines; every lost event counted and alerted",
        sources: &[Source::Alerts(&[]), Source::Audit(&["events-dropped"])],
    },
    Control {
        id: "A.8.32",
        title: "Change management",
        how: "rule, indicator, baseline and profile changes audited",
        sources: &[Source::Audit(&["rules-reload", "ioc-reload", "baseline-"])],
    },
];

#[derive(Debug, Clone, Serialize)]
pub struct ControlReport {
    pub id: &'static str,
    pub title: &'static str,
    pub implemented_by: &'static str,
    /// Evidence counts by source (`audit:<action>`, `alerts:<rule or class>`).
    pub evidence: BTreeMap<String, u64>,
    pub total: u64,
}

impl ControlReport {
    /// "source count" per source with evidence, escaped for the output format.
    fn evidence_text(&self, escape: fn(&str) -> String, sep: &str) -> String {
        if self.total == 0 {
            return "no evidence in the period".to_owned();
        }
        self.evidence
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{} {n}", escape(k)))
            .collect::<Vec<_>>()
            .join(sep)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub framework: Framework,
    pub since: String,
    pub generated: String,
    /// Records in the period, and whether the whole trail's hash chain verified.
    pub audit_records: usize,
    pub audit_chain: Result<usize, String>,
    pub alerts: usize,
    pub alerts_by_severity: BTreeMap<String, u64>,
    pub alerts_skipped_lines: u64,
    pub controls: Vec<ControlReport>,
}

pub fn build(
    framework: Framework,
    since: time::OffsetDateTime,
    audit: &[Entry],
    chain: Result<usize, String>,
    alerts: &[Alert],
    skipped: u64,
) -> Report {
    let since_text = crate::alert::format_timestamp(since);
    let audit: Vec<&Entry> = audit.iter().filter(|e| e.time >= since_text).collect();
    let alerts: Vec<&Alert> = alerts.iter().filter(|a| a.time >= since_text).collect();
    let mut by_sev = BTreeMap::new();
    for a in &alerts {
        *by_sev.entry(a.severity.as_str().to_owned()).or_insert(0) += 1;
    }
    let controls = match framework {
        Framework::Soc2 => SOC2,
        Framework::Iso27001 => ISO27001,
    };
    let controls = controls
        .iter()
        .map(|c| {
            let mut evidence = BTreeMap::new();
            for s in c.sources {
                match s {
                    Source::Audit(prefixes) => {
                        for e in &audit {
                            if prefixes.iter().any(|p| e.action.starts_with(p)) {
                                *evidence.entry(format!("audit:{}", e.action)).or_insert(0) += 1;
                            }
                        }
                    }
                    Source::Alerts([]) => {
                        let n = alerts
                            .iter()
                            .filter(|a| a.rule.id != crate::tamper::RULE_HEARTBEAT)
                            .count() as u64;
                        evidence.insert("alerts:all".into(), n);
                    }
                    Source::Alerts(prefixes) => {
                        for a in &alerts {
                            if prefixes.iter().any(|p| a.rule.id.starts_with(p)) {
                                *evidence.entry(format!("alerts:{}", a.rule.id)).or_insert(0) += 1;
                            }
                        }
                    }
                    Source::Field(field) => {
                        let n = alerts
                            .iter()
                            .filter(|a| a.fields.contains_key(*field))
                            .count() as u64;
                        evidence.insert(format!("alerts:{field}"), n);
                    }
                }
            }
            ControlReport {
                id: c.id,
                title: c.title,
                implemented_by: c.how,
                total: evidence.values().sum(),
                evidence,
            }
        })
        .collect();
    Report {
        framework,
        since: since_text,
        generated: crate::alert::format_timestamp(time::OffsetDateTime::now_utc()),
        audit_records: audit.len(),
        audit_chain: chain,
        alerts: alerts.len(),
        alerts_by_severity: by_sev,
        alerts_skipped_lines: skipped,
        controls,
    }
}

fn chain_text(r: &Report) -> String {
    match &r.audit_chain {
        Ok(n) => format!("intact ({n} records verified)"),
        Err(e) => format!("BROKEN: {e}"),
    }
}

fn name(f: Framework) -> &'static str {
    match f {
        Framework::Soc2 => "SOC 2 (Trust Services Criteria)",
        Framework::Iso27001 => "ISO/IEC 27001:2022 Annex A",
    }
}

pub fn markdown(r: &Report) -> String {
    use crate::respond::report::md;
    let mut s = format!(
        "# Compliance evidence: {}\n\nPeriod: since {} (generated {})\n\n- Audit trail: {}; {} records in the period\n- Alerts in the period: {} ({})\n",
        name(r.framework),
        r.since,
        r.generated,
        chain_text(r),
        r.audit_records,
        r.alerts,
        r.alerts_by_severity
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if r.alerts_skipped_lines > 0 {
        s += &format!(
            "- {} alert-log lines were unreadable\n",
            r.alerts_skipped_lines
        );
    }
    s += "\n| Control | Title | Implemented by | Evidence | Count |\n|---|---|---|---|---|\n";
    for c in &r.controls {
        let ev = c.evidence_text(md, "; ");
        s += &format!(
            "| {} | {} | {} | {ev} | {} |\n",
            c.id, c.title, c.implemented_by, c.total
        );
    }
    s
}

pub fn html(r: &Report) -> String {
    use crate::respond::report::html as h;
    let mut rows = String::new();
    for c in &r.controls {
        let ev = c.evidence_text(h, "<br>");
        rows += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{ev}</td><td>{}</td></tr>\n",
            h(c.id),
            h(c.title),
            h(c.implemented_by),
            c.total
        );
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>Compliance evidence</title><style>table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px}}</style></head><body>\n<h1>Compliance evidence: {}</h1>\n<p>Period: since {} (generated {})</p>\n<p>Audit trail: {}; {} records in the period. Alerts: {}.</p>\n<table><tr><th>Control</th><th>Title</th><th>Implemented by</th><th>Evidence</th><th>Count</th></tr>\n{rows}</table></body></html>\n",
        name(r.framework),
        h(&r.since),
        h(&r.generated),
        h(&chain_text(r)),
        r.audit_records,
        r.alerts
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    fn entry(action: &str, time: &str) -> Entry {
        serde_json::from_value(serde_json::json!({
            "seq": 1, "time": time, "prev": "0", "actor": "agent", "action": action,
            "target": "t", "mode": "auto", "outcome": "ok"
        }))
        .unwrap()
    }

    #[test]
    fn evidence_is_counted_per_control_within_the_period() {
        let since = parse_since("2026-11-01").unwrap();
        let audit = vec![
            entry("kill", "2026-11-02T00:00:00.000000000Z"),
            entry("kill", "2026-10-02T00:00:00.000000000Z"),
            entry("config-change", "2026-11-03T00:00:00.000000000Z"),
            entry("baseline-freeze", "2026-11-03T00:00:00.000000000Z"),
        ];
        let mut a = Alert::new("sensor.tamper.file", "x", Severity::Critical, "<b>x</b>");
        a.time = "2026-11-05T00:00:00.000000000Z".into();
        let r = build(Framework::Soc2, since, &audit, Ok(4), &[a], 0);
        let get = |id: &str| r.controls.iter().find(|c| c.id == id).unwrap();
        assert_eq!(
            get("CC7.4").evidence["audit:kill"],
            1,
            "the October kill is outside"
        );
        assert_eq!(get("CC7.1").total, 2);
        assert_eq!(get("CC8.1").evidence["audit:baseline-freeze"], 1);
        assert_eq!(get("CC6.1").total, 0);
        let md = markdown(&r);
        assert!(
            md.contains("| CC6.1 |") && md.contains("no evidence in the period"),
            "{md}"
        );
        assert!(md.contains("intact (4 records verified)"));
        let page = html(&r);
        assert!(!page.contains("<script"), "{page}");
        let iso = build(
            Framework::Iso27001,
            since,
            &audit,
            Err("line 2: chain broken".into()),
            &[],
            0,
        );
        assert!(markdown(&iso).contains("BROKEN: line 2"));
        assert!(iso.controls.iter().any(|c| c.id == "A.8.15"));
    }

    #[test]
    fn bad_framework_and_dates_are_clear_errors() {
        assert!(matches!(
            "pci".parse::<Framework>(),
            Err(ComplianceError::Framework(_))
        ));
        assert!("ISO27001".parse::<Framework>().is_ok());
        assert!(parse_since("2026-11-24T10:00:00Z").is_ok());
        for bad in ["yesterday", "2026-13-01", "", "2026-11-24\n<script>"] {
            let e = parse_since(bad).unwrap_err().to_string();
            assert!(e.contains("expected a date"), "{e}");
        }
    }
}
