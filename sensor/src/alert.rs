//! The alert record written to the local log and shipped to receivers.
//!
//! Unknown JSON fields are deliberately accepted (no `deny_unknown_fields`) and
//! most fields have serde defaults, so records written by newer or older
//! sensor versions stay readable.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Alert severity. Variant order is the ranking, so filters can compare
/// (`alert.severity >= Severity::Medium`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name used in JSON and accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when a string names no severity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {input:?}; expected one of: info, low, medium, high, critical")]
pub struct ParseSeverityError {
    pub input: String,
}

impl FromStr for Severity {
    type Err = ParseSeverityError;

    /// Case-insensitive, surrounding whitespace ignored (CLI friendliness).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ParseSeverityError {
                input: s.to_owned(),
            })
    }
}

/// Returned when a string is not a MITRE ATT&CK technique id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid MITRE technique id {input:?}; expected T followed by 4 digits, optionally .NNN (e.g. T1059.004)"
)]
pub struct InvalidTechniqueId {
    pub input: String,
}

/// A validated MITRE ATT&CK technique id matching `T\d{4}(\.\d{3})?`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TechniqueId(String);

impl TechniqueId {
    /// Validates exactly `T\d{4}(\.\d{3})?` (uppercase `T`, ASCII digits).
    pub fn parse(s: &str) -> Result<Self, InvalidTechniqueId> {
        if is_technique_id(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidTechniqueId {
                input: s.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for TechniqueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TechniqueId {
    type Err = InvalidTechniqueId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn is_technique_id(s: &str) -> bool {
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let Some(rest) = s.strip_prefix('T') else {
        return false;
    };
    match rest.split_once('.') {
        None => rest.len() == 4 && all_digits(rest),
        Some((tech, sub)) => {
            tech.len() == 4 && all_digits(tech) && sub.len() == 3 && all_digits(sub)
        }
    }
}

/// Which rule fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub id: String,
    pub name: String,
}

/// One ancestor of the alerting process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AncestorRef {
    pub pid: u32,
    pub executable: String,
}

/// The process that triggered the alert. Strings are attacker-controlled;
/// producers convert raw bytes with `String::from_utf8_lossy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertProcess {
    pub pid: u32,
    pub ppid: u32,
    pub executable: String,
    #[serde(default)]
    pub args: Vec<String>,
    pub uid: u32,
    #[serde(default)]
    pub user_name: Option<String>,
    /// Nearest ancestor (the parent) first.
    #[serde(default)]
    pub ancestry: Vec<AncestorRef>,
}

impl AlertProcess {
    pub fn new(pid: u32, ppid: u32, uid: u32, executable: impl Into<String>) -> Self {
        Self {
            pid,
            ppid,
            executable: executable.into(),
            args: Vec::new(),
            uid,
            user_name: None,
            ancestry: Vec::new(),
        }
    }

    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_user_name(mut self, name: impl Into<String>) -> Self {
        self.user_name = Some(name.into());
        self
    }

    /// Appends the next-older ancestor (call parent first).
    pub fn with_ancestor(mut self, pid: u32, executable: impl Into<String>) -> Self {
        self.ancestry.push(AncestorRef {
            pid,
            executable: executable.into(),
        });
        self
    }
}

/// Container context, when the process runs in one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertContainer {
    pub id: String,
    pub runtime: String,
    #[serde(default)]
    pub pod_uid: Option<String>,
}

/// One alert. Serialized as one JSON object per log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// UUIDv7 (time-ordered); receivers deduplicate on it.
    pub id: String,
    /// RFC 3339 UTC, always 9 fractional digits, of the triggering event.
    /// Fixed width makes lexical order equal chronological order.
    pub time: String,
    pub rule: RuleRef,
    pub severity: Severity,
    #[serde(default)]
    pub mitre: Vec<String>,
    pub message: String,
    #[serde(default)]
    pub process: Option<AlertProcess>,
    #[serde(default)]
    pub container: Option<AlertContainer>,
    /// Number of folded duplicates, at least 1.
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub fields: Map<String, Value>,
}

fn one() -> u64 {
    1
}

impl Alert {
    /// New alert with a fresh UUIDv7 id, timestamped now. Use
    /// [`Alert::with_time`] to stamp it with the triggering event's time.
    pub fn new(
        rule_id: impl Into<String>,
        rule_name: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            time: format_timestamp(OffsetDateTime::now_utc()),
            rule: RuleRef {
                id: rule_id.into(),
                name: rule_name.into(),
            },
            severity,
            mitre: Vec::new(),
            message: message.into(),
            process: None,
            container: None,
            count: 1,
            tags: Vec::new(),
            fields: Map::new(),
        }
    }

    pub fn with_time(mut self, time: OffsetDateTime) -> Self {
        self.time = format_timestamp(time);
        self
    }

    pub fn with_technique(mut self, technique: TechniqueId) -> Self {
        self.mitre.push(technique.into_string());
        self
    }

    /// Validates and adds a technique id, e.g. `"T1059.004"`.
    pub fn try_with_technique(self, technique: &str) -> Result<Self, InvalidTechniqueId> {
        Ok(self.with_technique(TechniqueId::parse(technique)?))
    }

    pub fn with_process(mut self, process: AlertProcess) -> Self {
        self.process = Some(process);
        self
    }

    pub fn with_container(
        mut self,
        id: impl Into<String>,
        runtime: impl Into<String>,
        pod_uid: Option<String>,
    ) -> Self {
        self.container = Some(AlertContainer {
            id: id.into(),
            runtime: runtime.into(),
            pod_uid,
        });
        self
    }

    /// Sets the folded-duplicate count; 0 is raised to 1 to keep the invariant.
    pub fn with_count(mut self, count: u64) -> Self {
        self.count = count.max(1);
        self
    }

    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// Parses [`Alert::time`]; `None` if a (foreign or corrupt) record holds
    /// something that is not RFC 3339.
    pub fn parsed_time(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.time, &Rfc3339).ok()
    }
}

/// Formats as RFC 3339 in UTC with exactly nine fractional digits, e.g.
/// `2024-05-01T12:00:00.000000001Z`.
///
/// Hand-formatted rather than via `time`'s formatter because this cannot fail,
/// so callers need no error path for a timestamp.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_orders_by_rank() {
        assert!(Severity::Info < Severity::Low);
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
    }

    #[test]
    fn severity_serde_is_lowercase() {
        for sev in Severity::ALL {
            let json = serde_json::to_string(&sev).unwrap();
            assert_eq!(json, format!("\"{}\"", sev.as_str()));
            assert_eq!(serde_json::from_str::<Severity>(&json).unwrap(), sev);
        }
    }

    #[test]
    fn severity_from_str_is_case_insensitive() {
        assert_eq!(" High ".parse::<Severity>().unwrap(), Severity::High);
        assert_eq!("CRITICAL".parse::<Severity>().unwrap(), Severity::Critical);
    }

    #[test]
    fn severity_from_str_error_lists_valid_values() {
        let err = "severe".parse::<Severity>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"severe\""), "{msg}");
        for sev in Severity::ALL {
            assert!(msg.contains(sev.as_str()), "{msg}");
        }
    }

    #[test]
    fn technique_ids_are_validated() {
        for ok in ["T1059", "T1059.004", "T0000.000"] {
            assert!(TechniqueId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "T",
            "t1059",
            "T105",
            "T10590",
            "T1059.",
            "T1059.04",
            "T1059.0044",
            "T1059-004",
            "X1059",
            "T1O59",
            "T1059.00a",
            " T1059",
            "T１０５９",
        ] {
            assert!(TechniqueId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn builder_fills_fields() {
        let alert = Alert::new(
            "shell.container",
            "Shell in container",
            Severity::High,
            "sh",
        )
        .try_with_technique("T1059.004")
        .unwrap()
        .with_process(
            AlertProcess::new(10, 1, 0, "/bin/sh")
                .with_args(["sh", "-c", "id"])
                .with_user_name("root")
                .with_ancestor(1, "/sbin/init"),
        )
        .with_container("abc123", "containerd", None)
        .with_tag("k8s")
        .with_field("dropped", 3)
        .with_count(0);
        assert_eq!(alert.mitre, ["T1059.004"]);
        assert_eq!(alert.count, 1, "count is clamped to >= 1");
        assert_eq!(alert.fields["dropped"], json!(3));
        assert!(alert.try_with_technique("bogus").is_err());
    }

    #[test]
    fn ids_are_unique_uuids() {
        let a = Alert::new("r", "r", Severity::Info, "m");
        let b = Alert::new("r", "r", Severity::Info, "m");
        assert_ne!(a.id, b.id);
        let parsed = uuid::Uuid::parse_str(&a.id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
    }

    #[test]
    fn timestamp_has_nanoseconds_and_utc() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_000_000_001).unwrap();
        let offset = UtcOffset::from_hms(2, 0, 0).unwrap();
        let alert = Alert::new("r", "r", Severity::Info, "m").with_time(t.to_offset(offset));
        assert_eq!(alert.time, "2023-11-14T22:13:20.000000001Z");
        assert_eq!(alert.parsed_time(), Some(t));
    }

    #[test]
    fn json_round_trip_and_field_names() {
        let alert = Alert::new("r1", "Rule", Severity::Medium, "msg")
            .with_process(AlertProcess::new(2, 1, 1000, "/usr/bin/x"))
            .with_container("c", "docker", Some("pod".into()));
        let value = serde_json::to_value(&alert).unwrap();
        for key in [
            "id",
            "time",
            "rule",
            "severity",
            "mitre",
            "message",
            "process",
            "container",
            "count",
            "tags",
            "fields",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        assert_eq!(value["severity"], json!("medium"));
        assert_eq!(value["container"]["pod_uid"], json!("pod"));
        let back: Alert = serde_json::from_value(value).unwrap();
        assert_eq!(back, alert);
    }

    #[test]
    fn tolerates_unknown_and_missing_optional_fields() {
        let raw = json!({
            "id": "x", "time": "2024-01-01T00:00:00.000000000Z",
            "rule": {"id": "r", "name": "n"}, "severity": "low", "message": "m",
            "added_in_v2": {"anything": true}
        });
        let alert: Alert = serde_json::from_value(raw).unwrap();
        assert_eq!(alert.count, 1);
        assert!(alert.mitre.is_empty() && alert.process.is_none());
    }
}
