//! `- threshold:` items: N matching events (or N distinct values of a field) within a
//! window, per scope. The runtime lives in [`super::correlate`].

use std::sync::Arc;

use super::compile::{Compiler, Node, Template};
use super::eval::{Slot, slot_of};
use super::fields::{self, Field, FieldType};
use super::file::{Header, Loader, Y};
use super::parser::Expr;
use super::tests_inline::CaseTest;
use super::{Location, Mode, RuleError};
use crate::alert::{Severity, TechniqueId};

const THR_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "severity",
    "mitre",
    "tags",
    "mode",
    "condition",
    "distinct",
    "count",
    "within",
    "by",
    "output",
    "tests",
];
const THR_EXPECTED: &str = "id, name, description, severity, mitre, tags, mode, condition, distinct, count, within, by, output, tests";

/// Upper bound on `count`: distinct-value sets are kept per window, so this bounds
/// memory per scope too.
pub const MAX_COUNT: u64 = 100_000;

/// Which events are counted together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdScope {
    /// The same pid.
    Process,
    /// The same process-tree root: the oldest ancestor below the first stop-listed
    /// one (init, systemd, sshd, containerd-shim, ...; see
    /// [`super::incidents::DEFAULT_STOP_LIST`]).
    ProcessTree,
    /// The same container id; host processes count together.
    Container,
    /// Everything on the host.
    Host,
    /// The same `user.id`.
    User,
}

impl ThresholdScope {
    pub const NAMES: [&'static str; 5] = ["process", "process_tree", "container", "host", "user"];

    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdScope::Process => "process",
            ThresholdScope::ProcessTree => "process_tree",
            ThresholdScope::Container => "container",
            ThresholdScope::Host => "host",
            ThresholdScope::User => "user",
        }
    }

    fn parse(s: &str) -> Option<ThresholdScope> {
        Some(match s {
            "process" => ThresholdScope::Process,
            "process_tree" => ThresholdScope::ProcessTree,
            "container" => ThresholdScope::Container,
            "host" => ThresholdScope::Host,
            "user" => ThresholdScope::User,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub struct Threshold {
    pub id: String,
    pub name: String,
    pub description: String,
    pub severity: Severity,
    pub tactics: Vec<String>,
    pub techniques: Vec<TechniqueId>,
    pub tags: Vec<String>,
    pub mode: Mode,
    pub condition_text: String,
    /// Count distinct values of this field (its name) instead of events.
    pub distinct: Option<String>,
    pub count: u64,
    pub within_ns: u64,
    pub within: String,
    pub by: ThresholdScope,
    pub location: Location,
    pub(crate) condition: Node,
    pub(crate) slot: Slot,
    pub(crate) distinct_field: Option<(Field, FieldType)>,
    pub(crate) output: Template,
    pub(crate) tests: Vec<CaseTest>,
}

impl Threshold {
    /// Number of inline test cases (match and no_match).
    pub fn test_count(&self) -> usize {
        self.tests.len()
    }
}

pub(crate) struct ThrDef {
    head: Header,
    id: String,
    name: String,
    severity: Severity,
    cond: (Expr, usize, String),
    distinct: Option<(String, Field, FieldType)>,
    count: u64,
    within_ns: u64,
    within: String,
    by: ThresholdScope,
    output: Option<usize>,
    tests: Vec<CaseTest>,
}

impl Loader<'_> {
    pub(super) fn threshold(&mut self, n: &Y<'_>) {
        let Some(kv) = self.keys(n, THR_KEYS, "threshold", THR_EXPECTED) else {
            return;
        };
        let before = self.errors.len();
        let head = self.header(&kv, n, "threshold");
        let cond = self
            .require(&kv, n, "condition", "threshold")
            .and_then(|c| self.condition(c))
            .map(|(e, s)| {
                let text = self.sources[s].text.clone();
                (e, s, text)
            });
        let distinct = Self::get(&kv, "distinct").and_then(|v| {
            let name = self.string(v, "a field name")?;
            match fields::lookup(&name) {
                Ok(def) => Some((name, def.field, def.ty)),
                Err(suggestions) => {
                    let loc = self.at(v);
                    self.errors.push(RuleError::UnknownField {
                        loc,
                        field: name,
                        suggestions,
                    });
                    None
                }
            }
        });
        let count = self.require(&kv, n, "count", "threshold").and_then(|v| {
            let text = self.string(v, "a count")?;
            match text.parse::<u64>() {
                Ok(c) if (1..=MAX_COUNT).contains(&c) => Some(c),
                _ => {
                    let loc = self.at(v);
                    self.errors.push(RuleError::BadValue {
                        loc,
                        field: "count".into(),
                        value: text,
                        expected: format!("an integer from 1 to {MAX_COUNT}"),
                    });
                    None
                }
            }
        });
        let window = self.window(&kv, n, "threshold");
        let by = self
            .scope_name(&kv, n, "threshold", &ThresholdScope::NAMES)
            .and_then(|s| ThresholdScope::parse(&s));
        let output = self.output_source(&kv);
        let tests = Self::get(&kv, "tests")
            .map(|t| self.case_tests(t))
            .unwrap_or_default();
        self.register_id(&kv, head.id.as_deref(), &head.loc);
        if self.errors.len() != before {
            return;
        }
        let (
            Some(id),
            Some(name),
            Some(severity),
            Some(cond),
            Some(count),
            Some((within_ns, within)),
            Some(by),
        ) = (
            head.id.clone(),
            head.name.clone(),
            head.severity,
            cond,
            count,
            window,
            by,
        )
        else {
            return;
        };
        self.thrs.push(ThrDef {
            head,
            id,
            name,
            severity,
            cond,
            distinct,
            count,
            within_ns,
            within,
            by,
            output,
            tests,
        });
    }

    pub(super) fn compile_thresholds(&mut self, c: &mut Compiler<'_>) -> Vec<Arc<Threshold>> {
        let defs = std::mem::take(&mut self.thrs);
        let mut out = Vec::with_capacity(defs.len());
        for d in defs {
            let condition = c.compile(&d.cond.0, d.cond.1).unwrap_or(Node::Const(false));
            let vars = ["count".to_owned(), "within".to_owned()];
            let output = self.output_template(d.output, &vars, &d.name);
            self.warn_mitre(&d.id, &d.head.tactics, &d.head.techniques, &d.head.loc);
            let (distinct, distinct_field) = match d.distinct {
                Some((n, f, t)) => (Some(n), Some((f, t))),
                None => (None, None),
            };
            out.push(Arc::new(Threshold {
                id: d.id,
                name: d.name,
                description: d.head.description,
                severity: d.severity,
                tactics: d.head.tactics,
                techniques: d.head.techniques,
                tags: d.head.tags,
                mode: d.head.mode,
                condition_text: d.cond.2,
                distinct,
                count: d.count,
                within_ns: d.within_ns,
                within: d.within,
                by: d.by,
                location: d.head.loc,
                slot: slot_of(&condition),
                condition,
                distinct_field,
                output,
                tests: d.tests,
            }));
        }
        out
    }
}
