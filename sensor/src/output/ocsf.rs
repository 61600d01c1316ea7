//! OCSF 1.1 Detection Finding (class_uid 2004) for security data lakes.

use serde_json::{Value, json};

use crate::alert::{Alert, Severity};

use super::format::{Context, command_line, epoch_ms};

pub const OCSF_VERSION: &str = "1.1.0";

fn severity_id(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

pub fn finding(a: &Alert, ctx: &Context) -> Value {
    let attacks: Vec<Value> = a
        .mitre
        .iter()
        .map(|t| json!({"technique": {"uid": t}, "version": "15"}))
        .collect();
    let mut evidence = serde_json::Map::new();
    if let Some(p) = &a.process {
        let mut process = json!({
            "pid": p.pid,
            "file": {"path": p.executable, "name": p.executable.rsplit('/').next().unwrap_or("")},
            "user": {"uid": p.uid.to_string(), "name": p.user_name},
            "parent_process": {"pid": p.ppid},
        });
        if let Some(cmd) = command_line(a) {
            process["cmd_line"] = json!(cmd);
        }
        evidence.insert("process".into(), process);
    }
    if let Some(c) = &a.container {
        evidence.insert(
            "container".into(),
            json!({"uid": c.id, "runtime": c.runtime, "pod_uuid": c.pod_uid}),
        );
    }
    let sev = severity_id(a.severity);
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "time": epoch_ms(a),
        "severity_id": sev,
        "severity": a.severity.as_str(),
        "status_id": 1,
        "status": "New",
        "message": a.message,
        "count": a.count,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": a.id,
            "product": {"name": "sensor", "vendor_name": "sensor", "version": ctx.version},
        },
        "device": {"hostname": ctx.hostname, "type_id": 1},
        "finding_info": {
            "uid": a.id,
            "title": a.rule.name,
            "desc": a.message,
            "types": a.tags,
            "analytic": {"uid": a.rule.id, "name": a.rule.name, "type_id": 1, "type": "Rule"},
            "attacks": attacks,
        },
        "evidences": [Value::Object(evidence)],
        "unmapped": a.fields,
    })
}

#[cfg(test)]
mod tests {
    use super::super::format::tests::{alert_with, ctx};
    use super::*;

    #[test]
    fn detection_finding_carries_the_alert() {
        let a = alert_with("x").try_with_technique("T1059.004").unwrap();
        let v = finding(&a, &ctx());
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["type_uid"], 200401);
        assert_eq!(v["severity_id"], 4);
        assert_eq!(v["finding_info"]["uid"], a.id.as_str());
        assert_eq!(
            v["finding_info"]["attacks"][0]["technique"]["uid"],
            "T1059.004"
        );
        assert_eq!(v["evidences"][0]["process"]["cmd_line"], "sh -c x");
        assert!(v["time"].as_i64().unwrap() > 1_700_000_000_000);
    }
}
