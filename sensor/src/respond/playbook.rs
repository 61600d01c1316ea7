//! YAML playbooks: a trigger, ordered steps, a mode and rollback. Every error names
//! file:line:column.
//!
//! ```yaml
//! playbooks:
//!   - id: contain-reverse-shell
//!     description: Freeze the shell's tree, keep the evidence, cut it off the network
//!     mode: auto                 # dry-run (default) | approve | auto
//!     trigger:
//!       rules: ["shell.reverse*"]   # globs on rule ids; any of them
//!       tags: [reverse-shell]       # any of them
//!       min_severity: high
//!       min_anomaly_score: 80       # baseline anomaly alerts
//!       min_incident_alerts: 3      # the alert's incident holds at least this many
//!     steps:
//!       - freeze: tree              # process | tree | container
//!       - collect-evidence
//!       - isolate: container
//!         allow: ["10.0.0.5:443"]
//!       - kill: tree
//!       - quarantine: executable    # executable | file
//!       - deny-exec: executable
//!       - notify: "reverse shell contained"
//!     rollback:
//!       on_failure: true            # undo earlier steps when one fails
//! ```

use std::net::IpAddr;

use saphyr::YamlData;
use serde::{Deserialize, Serialize};

use crate::{
    alert::{Alert, Severity},
    rules::file::{Y, describe, is_null, parse_yaml, scalar},
};

/// A located problem in a playbook file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct PlaybookError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Approve,
    Auto,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Approve => "approve",
            Mode::Auto => "auto",
        }
    }
}

/// Which processes a step covers, from the triggering alert's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Process,
    Tree,
    /// The alert's container; a host process falls back to its tree.
    Container,
}

/// Which file a file step acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileSel {
    /// The alerting process's executable.
    Executable,
    /// The file of the triggering event (`file.path`).
    File,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    CollectEvidence,
    Freeze {
        scope: Scope,
    },
    Kill {
        scope: Scope,
    },
    Isolate {
        scope: Scope,
        allow: Vec<(IpAddr, u16)>,
    },
    Quarantine {
        file: FileSel,
    },
    DenyExec {
        file: FileSel,
    },
    Notify {
        message: String,
        severity: Severity,
    },
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::CollectEvidence => "collect-evidence",
            Step::Freeze { .. } => "freeze",
            Step::Kill { .. } => "kill",
            Step::Isolate { .. } => "isolate",
            Step::Quarantine { .. } => "quarantine",
            Step::DenyExec { .. } => "deny-exec",
            Step::Notify { .. } => "notify",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub rules: Vec<String>,
    pub tags: Vec<String>,
    pub min_severity: Option<Severity>,
    pub min_anomaly_score: Option<f64>,
    pub min_incident_alerts: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Playbook {
    pub id: String,
    pub description: String,
    pub mode: Mode,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    pub rollback_on_failure: bool,
    /// file:line of its definition.
    pub source: String,
}

impl Trigger {
    /// Whether `alert` (whose incident holds `incident_alerts`) fires the trigger. Every
    /// condition given must hold; inside a list, any entry.
    pub fn matches(&self, alert: &Alert, incident_alerts: u64) -> bool {
        if !self.rules.is_empty()
            && !self
                .rules
                .iter()
                .any(|g| crate::baseline::workload::glob(g, &alert.rule.id))
        {
            return false;
        }
        if !self.tags.is_empty() && !self.tags.iter().any(|t| alert.tags.contains(t)) {
            return false;
        }
        if let Some(min) = self.min_severity
            && alert.severity < min
        {
            return false;
        }
        if let Some(min) = self.min_anomaly_score {
            let score = alert
                .fields
                .get("anomaly.score")
                .and_then(serde_json::Value::as_f64);
            if score.is_none_or(|s| s < min) {
                return false;
            }
        }
        if let Some(min) = self.min_incident_alerts
            && incident_alerts < min
        {
            return false;
        }
        true
    }
}

const PLAYBOOK_KEYS: &[&str] = &["id", "description", "mode", "trigger", "steps", "rollback"];
const TRIGGER_KEYS: &[&str] = &[
    "rules",
    "tags",
    "min_severity",
    "min_anomaly_score",
    "min_incident_alerts",
];

struct Ld<'f> {
    file: &'f str,
    errors: Vec<PlaybookError>,
}

type Kv<'n, 'a> = Vec<(&'n str, &'n Y<'a>, &'n Y<'a>)>;

impl Ld<'_> {
    fn err(&mut self, n: &Y<'_>, message: impl Into<String>) {
        self.errors.push(PlaybookError {
            file: self.file.to_owned(),
            line: n.span.start.line(),
            column: n.span.start.col() + 1,
            message: message.into(),
        });
    }

    fn map<'n, 'a>(&mut self, n: &'n Y<'a>, allowed: &[&str], what: &str) -> Option<Kv<'n, 'a>> {
        let YamlData::Mapping(m) = &n.data else {
            self.err(
                n,
                format!("expected a mapping ({what}), found {}", describe(n)),
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in m {
            match scalar(k) {
                Some((key, _)) if allowed.contains(&key) => out.push((key, k, v)),
                Some((key, _)) => self.err(
                    k,
                    format!(
                        "unknown key `{key}` in {what}; expected one of: {}",
                        allowed.join(", ")
                    ),
                ),
                None => self.err(k, "expected a string key"),
            }
        }
        Some(out)
    }

    fn string(&mut self, n: &Y<'_>, what: &str) -> Option<String> {
        match scalar(n) {
            Some((s, _)) if !is_null(n) => Some(s.to_owned()),
            _ => {
                self.err(n, format!("expected {what}, found {}", describe(n)));
                None
            }
        }
    }

    fn strings(&mut self, n: &Y<'_>, what: &str) -> Vec<String> {
        match &n.data {
            YamlData::Sequence(v) => v.iter().filter_map(|i| self.string(i, what)).collect(),
            _ => {
                self.err(
                    n,
                    format!("expected a sequence of {what}, found {}", describe(n)),
                );
                Vec::new()
            }
        }
    }

    fn number(&mut self, n: &Y<'_>, what: &str) -> Option<f64> {
        let s = self.string(n, what)?;
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
            _ => {
                self.err(n, format!("expected {what}, found `{s}`"));
                None
            }
        }
    }

    fn playbook(&mut self, n: &Y<'_>) -> Option<Playbook> {
        let kv = self.map(n, PLAYBOOK_KEYS, "a playbook")?;
        let get = |k: &str| kv.iter().find(|(key, ..)| *key == k).map(|(_, _, v)| *v);
        let id = match get("id") {
            Some(v) => self.string(v, "a playbook id"),
            None => {
                self.err(n, "missing key `id` in a playbook");
                None
            }
        };
        if let Some(id) = &id
            && (id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
            && let Some(v) = get("id")
        {
            self.err(
                v,
                format!("playbook id `{id}`: use 1 to 64 of [A-Za-z0-9._-]"),
            );
        }
        let description = get("description")
            .and_then(|v| self.string(v, "a description"))
            .unwrap_or_default();
        let mode = match get("mode") {
            None => Some(Mode::DryRun),
            Some(v) => match self.string(v, "a mode").as_deref() {
                Some("dry-run") => Some(Mode::DryRun),
                Some("approve") => Some(Mode::Approve),
                Some("auto") => Some(Mode::Auto),
                Some(other) => {
                    self.err(
                        v,
                        format!("unknown mode `{other}`; expected dry-run, approve or auto"),
                    );
                    None
                }
                None => None,
            },
        };
        let trigger = match get("trigger") {
            Some(v) => self.trigger(v),
            None => {
                self.err(n, "missing key `trigger` in a playbook");
                None
            }
        };
        let steps = match get("steps") {
            Some(v) => self.steps(v),
            None => {
                self.err(n, "missing key `steps` in a playbook");
                None
            }
        };
        let mut rollback_on_failure = true;
        if let Some(v) = get("rollback")
            && let Some(kv) = self.map(v, &["on_failure"], "rollback")
        {
            for (_, _, val) in kv {
                match self.string(val, "true or false").as_deref() {
                    Some("true") => rollback_on_failure = true,
                    Some("false") => rollback_on_failure = false,
                    Some(other) => {
                        self.err(val, format!("expected true or false, found `{other}`"))
                    }
                    None => {}
                }
            }
        }
        Some(Playbook {
            id: id?,
            description,
            mode: mode?,
            trigger: trigger?,
            steps: steps?,
            rollback_on_failure,
            source: format!("{}:{}", self.file, n.span.start.line()),
        })
    }

    fn trigger(&mut self, n: &Y<'_>) -> Option<Trigger> {
        let kv = self.map(n, TRIGGER_KEYS, "a trigger")?;
        let mut t = Trigger::default();
        let before = self.errors.len();
        for (key, _, v) in &kv {
            match *key {
                "rules" => t.rules = self.strings(v, "rule id globs"),
                "tags" => t.tags = self.strings(v, "tags"),
                "min_severity" => {
                    if let Some(s) = self.string(v, "a severity") {
                        match s.parse::<Severity>() {
                            Ok(sev) => t.min_severity = Some(sev),
                            Err(e) => self.err(v, e.to_string()),
                        }
                    }
                }
                "min_anomaly_score" => {
                    t.min_anomaly_score = self.number(v, "a score from 0 to 100");
                    if t.min_anomaly_score.is_some_and(|s| s > 100.0) {
                        self.err(v, "an anomaly score is at most 100");
                    }
                }
                "min_incident_alerts" => {
                    t.min_incident_alerts = self
                        .number(v, "a whole number of alerts")
                        .filter(|x| x.fract() == 0.0)
                        .map(|x| x as u64);
                }
                _ => {}
            }
        }
        if t == Trigger::default() && self.errors.len() == before {
            self.err(
                n,
                "a trigger needs at least one condition (rules, tags, min_severity, min_anomaly_score, min_incident_alerts); an empty one would fire on every alert",
            );
        }
        Some(t)
    }

    fn scope(&mut self, n: &Y<'_>) -> Option<Scope> {
        if is_null(n) {
            return Some(Scope::Container);
        }
        match self.string(n, "a scope").as_deref() {
            Some("process") => Some(Scope::Process),
            Some("tree") => Some(Scope::Tree),
            Some("container") => Some(Scope::Container),
            Some(other) => {
                self.err(
                    n,
                    format!("unknown scope `{other}`; expected process, tree or container"),
                );
                None
            }
            None => None,
        }
    }

    fn file_sel(&mut self, n: &Y<'_>) -> Option<FileSel> {
        match self.string(n, "executable or file").as_deref() {
            Some("executable") => Some(FileSel::Executable),
            Some("file") => Some(FileSel::File),
            Some(other) => {
                self.err(
                    n,
                    format!("unknown file `{other}`; expected executable or file"),
                );
                None
            }
            None => None,
        }
    }

    fn steps(&mut self, n: &Y<'_>) -> Option<Vec<Step>> {
        let YamlData::Sequence(items) = &n.data else {
            self.err(
                n,
                format!("expected a sequence of steps, found {}", describe(n)),
            );
            return None;
        };
        if items.is_empty() {
            self.err(n, "a playbook needs at least one step");
        }
        let mut out = Vec::new();
        for item in items {
            if let Some((s, _)) = scalar(item)
                && !is_null(item)
            {
                match s {
                    "collect-evidence" => out.push(Step::CollectEvidence),
                    "freeze" => out.push(Step::Freeze { scope: Scope::Container }),
                    "kill" => out.push(Step::Kill { scope: Scope::Container }),
                    "isolate" => out.push(Step::Isolate {
                        scope: Scope::Container,
                        allow: Vec::new(),
                    }),
                    other => self.err(item, format!("unknown step `{other}`; expected collect-evidence, freeze, kill, isolate, quarantine, deny-exec or notify")),
                }
                continue;
            }
            let Some(kv) = self.map(
                item,
                &[
                    "collect-evidence",
                    "freeze",
                    "kill",
                    "isolate",
                    "allow",
                    "quarantine",
                    "deny-exec",
                    "notify",
                    "severity",
                ],
                "a step",
            ) else {
                continue;
            };
            let actions: Vec<_> = kv
                .iter()
                .filter(|(k, ..)| !matches!(*k, "allow" | "severity"))
                .collect();
            if actions.len() != 1 {
                self.err(item, "a step names exactly one action");
                continue;
            }
            let (key, _, v) = *actions[0];
            let extra = |k: &str| kv.iter().find(|(key, ..)| *key == k).map(|(_, _, v)| *v);
            if key != "isolate"
                && let Some(a) = extra("allow")
            {
                self.err(a, "`allow` belongs to an isolate step");
            }
            if key != "notify"
                && let Some(s) = extra("severity")
            {
                self.err(s, "`severity` belongs to a notify step");
            }
            let step = match key {
                "collect-evidence" => Some(Step::CollectEvidence),
                "freeze" => self.scope(v).map(|scope| Step::Freeze { scope }),
                "kill" => self.scope(v).map(|scope| Step::Kill { scope }),
                "isolate" => {
                    let mut allow = Vec::new();
                    if let Some(a) = extra("allow") {
                        for (s, node) in
                            self.strings(a, "addresses").into_iter().zip(match &a.data {
                                YamlData::Sequence(v) => v.iter().collect::<Vec<_>>(),
                                _ => Vec::new(),
                            })
                        {
                            match super::config::parse_allow(&s) {
                                Ok(x) => allow.push(x),
                                Err(m) => self.err(node, m),
                            }
                        }
                    }
                    self.scope(v).map(|scope| Step::Isolate { scope, allow })
                }
                "quarantine" => self.file_sel(v).map(|file| Step::Quarantine { file }),
                "deny-exec" => self.file_sel(v).map(|file| Step::DenyExec { file }),
                "notify" => {
                    let severity = match extra("severity") {
                        Some(s) => {
                            match self.string(s, "a severity").map(|x| x.parse::<Severity>()) {
                                Some(Ok(sev)) => sev,
                                Some(Err(e)) => {
                                    self.err(s, e.to_string());
                                    Severity::High
                                }
                                None => Severity::High,
                            }
                        }
                        None => Severity::High,
                    };
                    self.string(v, "a message")
                        .map(|message| Step::Notify { message, severity })
                }
                _ => None,
            };
            out.extend(step);
        }
        Some(out)
    }
}

/// Parse one playbook file. All problems are reported together; any problem refuses the file.
pub fn parse(file: &str, text: &str) -> Result<Vec<Playbook>, Vec<PlaybookError>> {
    let mut ld = Ld {
        file,
        errors: Vec::new(),
    };
    let docs = match parse_yaml(text) {
        Ok(d) => d,
        Err(e) => {
            return Err(vec![PlaybookError {
                file: file.to_owned(),
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info().to_owned(),
            }]);
        }
    };
    let mut out = Vec::new();
    let docs: Vec<_> = docs.iter().filter(|d| !is_null(d)).collect();
    if docs.len() > 1 {
        ld.err(docs[1], "more than one YAML document");
    }
    if let Some(doc) = docs.first() {
        let list = match &doc.data {
            YamlData::Mapping(_) => ld
                .map(doc, &["playbooks"], "a playbook file")
                .and_then(|kv| kv.into_iter().next().map(|(_, _, v)| v)),
            YamlData::Sequence(_) => Some(*doc),
            _ => {
                ld.err(doc, "expected `playbooks:` with a sequence of playbooks");
                None
            }
        };
        if let Some(list) = list {
            match &list.data {
                YamlData::Sequence(items) => {
                    for item in items {
                        out.extend(ld.playbook(item));
                    }
                }
                _ => ld.err(
                    list,
                    format!("expected a sequence of playbooks, found {}", describe(list)),
                ),
            }
        }
    }
    let mut seen = std::collections::HashMap::new();
    for p in &out {
        if let Some(prev) = seen.insert(p.id.clone(), p.source.clone()) {
            let line = p
                .source
                .rsplit(':')
                .next()
                .and_then(|l| l.parse().ok())
                .unwrap_or(1);
            ld.errors.push(PlaybookError {
                file: file.to_owned(),
                line,
                column: 1,
                message: format!("duplicate playbook id `{}` (first at {prev})", p.id),
            });
        }
    }
    if ld.errors.is_empty() {
        Ok(out)
    } else {
        Err(ld.errors)
    }
}

/// Every playbook under `paths` (files, or directories of *.yaml / *.yml), ids unique
/// across files.
pub fn load(paths: &[std::path::PathBuf]) -> Result<Vec<Playbook>, Vec<PlaybookError>> {
    // The same expansion as rule files: *.yaml / *.yml of each directory, sorted.
    let files = crate::detect::ruleset::rule_files(paths).map_err(|e| {
        vec![PlaybookError {
            file: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            line: 1,
            column: 1,
            message: e.to_string(),
        }]
    })?;
    let mut all: Vec<Playbook> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let label = f.display().to_string();
        match std::fs::read_to_string(&f) {
            Ok(text) => match parse(&label, &text) {
                Ok(pbs) => {
                    for p in pbs {
                        if let Some(prev) = all.iter().find(|x| x.id == p.id) {
                            errors.push(PlaybookError {
                                file: label.clone(),
                                line: p
                                    .source
                                    .rsplit(':')
                                    .next()
                                    .and_then(|l| l.parse().ok())
                                    .unwrap_or(1),
                                column: 1,
                                message: format!(
                                    "duplicate playbook id `{}` (first at {})",
                                    p.id, prev.source
                                ),
                            });
                        } else {
                            all.push(p);
                        }
                    }
                }
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(PlaybookError {
                file: label,
                line: 1,
                column: 1,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(all)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
playbooks:
  - id: contain-shell
    description: freeze and keep evidence
    mode: auto
    trigger:
      rules: ["shell.*"]
      min_severity: high
    steps:
      - freeze: tree
      - collect-evidence
      - isolate: container
        allow: ["127.0.0.1:514", "10.0.0.1"]
      - kill
      - quarantine: executable
      - deny-exec: file
      - notify: "contained"
        severity: critical
    rollback:
      on_failure: false
"#;

    #[test]
    fn a_full_playbook_parses() {
        let p = parse("p.yaml", GOOD).unwrap();
        assert_eq!(p.len(), 1);
        let p = &p[0];
        assert_eq!(p.mode, Mode::Auto);
        assert!(!p.rollback_on_failure);
        assert_eq!(p.steps.len(), 7);
        assert_eq!(p.steps[0], Step::Freeze { scope: Scope::Tree });
        assert_eq!(
            p.steps[2],
            Step::Isolate {
                scope: Scope::Container,
                allow: vec![
                    ("127.0.0.1".parse().unwrap(), 514),
                    ("10.0.0.1".parse().unwrap(), 0)
                ]
            }
        );
        assert_eq!(
            p.steps[6],
            Step::Notify {
                message: "contained".into(),
                severity: Severity::Critical
            }
        );
        let a = Alert::new("shell.reverse", "x", Severity::High, "m");
        assert!(p.trigger.matches(&a, 1));
        let low = Alert::new("shell.reverse", "x", Severity::Medium, "m");
        assert!(!p.trigger.matches(&low, 1));
        let other = Alert::new("file.write", "x", Severity::Critical, "m");
        assert!(!p.trigger.matches(&other, 1));
    }

    #[test]
    fn mode_defaults_to_dry_run() {
        let text = "- id: a\n  trigger: {tags: [x]}\n  steps: [freeze]\n";
        assert_eq!(parse("f", text).unwrap()[0].mode, Mode::DryRun);
    }

    #[test]
    fn errors_are_located() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            (
                "- id: a\n  trigger: {tags: [x]}\n  steps: [freze]\n",
                (3, 11),
                "unknown step `freze`",
            ),
            (
                "- id: a\n  mode: yolo\n  trigger: {tags: [x]}\n  steps: [kill]\n",
                (2, 9),
                "unknown mode",
            ),
            (
                "- id: a\n  trigger: {}\n  steps: [kill]\n",
                (2, 12),
                "at least one condition",
            ),
            (
                "- id: a\n  trigger: {tags: [x]}\n  steps:\n    - isolate: tree\n      allow: [\"nope\"]\n",
                (5, 15),
                "not an address",
            ),
            (
                "- id: a\n  trigger: {tags: [x]}\n  steps:\n    - kill: tree\n      allow: [\"1.1.1.1\"]\n",
                (5, 14),
                "belongs to an isolate",
            ),
            (
                "- id: a\n  trigger: {min_severity: severe}\n  steps: [kill]\n",
                (2, 27),
                "unknown severity",
            ),
            (
                "- id: a\n  trigger: {tags: [x]}\n  steps: [kill]\n  colour: red\n",
                (4, 3),
                "unknown key `colour`",
            ),
            (
                "- id: a\n  trigger: {tags: [x]}\n  steps: []\n",
                (3, 10),
                "at least one step",
            ),
            (
                "- id: a\n  trigger: {tags: [x]}\n  steps: [kill]\n- id: a\n  trigger: {tags: [x]}\n  steps: [kill]\n",
                (4, 1),
                "duplicate playbook id",
            ),
            ("- id: a\n  trigger: {tags: [x]\n", (3, 1), ""),
            (
                "- id: ../a\n  trigger: {tags: [x]}\n  steps: [kill]\n",
                (1, 7),
                "use 1 to 64",
            ),
            (
                "- trigger: {tags: [x]}\n  steps: [kill]\n",
                (1, 3),
                "missing key `id`",
            ),
            (
                "- id: a\n  trigger: {min_anomaly_score: 101}\n  steps: [kill]\n",
                (2, 32),
                "at most 100",
            ),
        ];
        for (text, (line, col), needle) in cases {
            let errs = parse("f.yaml", text).unwrap_err();
            let e = &errs[0];
            assert!(e.message.contains(needle), "{text:?}: {e}");
            assert_eq!((e.line, e.column), (*line, *col), "{text:?}: {e}");
        }
    }

    #[test]
    fn hostile_text_never_panics() {
        for text in [
            "",
            "\0",
            "- [[[",
            "playbooks: 3",
            "- id: {a: b}",
            "*x",
            "- !!binary aGk=",
        ] {
            let _ = parse("f", text);
        }
    }
}

#[cfg(test)]
mod shipped {
    /// Every playbook shipped in `playbooks/` parses, and names rules that exist.
    #[test]
    fn shipped_playbooks_load_and_name_real_rules() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks");
        let pbs = super::load(&[dir]).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(pbs.len() >= 4);
        let rules = crate::detect::ruleset::checked(true, &[])
            .rules
            .expect("builtin rules");
        let ids: Vec<String> = rules
            .rules()
            .iter()
            .map(|r| r.id.clone())
            .chain(rules.sequences().iter().map(|r| r.id.clone()))
            .chain(rules.thresholds().iter().map(|r| r.id.clone()))
            .collect();
        for p in &pbs {
            for g in &p.trigger.rules {
                assert!(
                    ids.iter().any(|id| crate::baseline::workload::glob(g, id)),
                    "playbook {} names rule {g}, which no shipped rule matches",
                    p.id
                );
            }
        }
    }
}
