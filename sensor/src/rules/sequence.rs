//! `- sequence:` items: step A, then B (then C...) in the same scope within a window.
//!
//! Loading follows the rule discipline (located errors, all-or-nothing). Step
//! conditions are ordinary conditions plus `$name`, a value captured from an earlier
//! step's event (`capture: {path: file.path}`); it compiles to `Pred::Capture(slot)`,
//! compared against the running instance's captured strings. The runtime lives in
//! [`super::correlate`].

use saphyr::YamlData;

use super::compile::{self, Compiler, Node, Template};
use super::eval::{Slot, slot_of};
use super::fields::{self, Field, FieldType};
use super::file::{Header, Loader, Y, is_null, scalar};
use super::parser::Expr;
use super::tests_inline::CaseTest;
use super::{Location, Mode, RuleError};
use crate::alert::{Severity, TechniqueId};
use std::sync::Arc;

const SEQ_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "severity",
    "mitre",
    "tags",
    "mode",
    "within",
    "by",
    "steps",
    "output",
    "tests",
];
const SEQ_EXPECTED: &str =
    "id, name, description, severity, mitre, tags, mode, within, by, steps, output, tests";
const STEP_KEYS: &[&str] = &["name", "condition", "capture"];

/// Longest accepted window. Partial matches are state; a day is already generous.
pub const MAX_WITHIN_NS: u64 = 24 * 3_600 * 1_000_000_000;

/// `120s`, `500ms`, `2m`, `1h` → nanoseconds. Zero is accepted here (test `at: 0s`);
/// windows additionally reject it.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Which events belong to the same sequence instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The process that matched step 1, or any descendant of it (seen through
    /// `process.parent.pid` and `process.ancestry[].pid`).
    ProcessTree,
    /// The same pid.
    Process,
    /// The same container id; all host processes form one scope.
    Container,
    /// The same file: step 1's `file.path` (else its `proc.exe`), seen by later
    /// events as their `file.path` or their `proc.exe` (an exec of that file).
    File,
    /// Everything on the host.
    Host,
}

impl Scope {
    pub const NAMES: [&'static str; 5] = ["process_tree", "process", "container", "file", "host"];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ProcessTree => "process_tree",
            Scope::Process => "process",
            Scope::Container => "container",
            Scope::File => "file",
            Scope::Host => "host",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "process_tree" => Scope::ProcessTree,
            "process" => Scope::Process,
            "container" => Scope::Container,
            "file" => Scope::File,
            "host" => Scope::Host,
            _ => return None,
        })
    }
}

/// A field value remembered from a step's event into a capture slot.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    pub slot: usize,
    pub field: Field,
    pub ty: FieldType,
}

#[derive(Debug)]
pub struct Step {
    pub name: String,
    pub condition_text: String,
    pub(crate) condition: Node,
    /// The step's event type/kind constraint, for the cheap pre-filter.
    pub(crate) slot: Slot,
    pub(crate) captures: Vec<Capture>,
}

#[derive(Debug)]
pub struct Sequence {
    pub id: String,
    pub name: String,
    pub description: String,
    pub severity: Severity,
    pub tactics: Vec<String>,
    pub techniques: Vec<TechniqueId>,
    pub tags: Vec<String>,
    pub mode: Mode,
    pub within_ns: u64,
    /// The window as written (`120s`), for messages.
    pub within: String,
    pub by: Scope,
    pub steps: Vec<Step>,
    /// Capture names in slot order.
    pub capture_names: Vec<String>,
    pub location: Location,
    pub(crate) output: Template,
    pub(crate) tests: Vec<CaseTest>,
}

impl Sequence {
    /// Number of inline test cases (match and no_match).
    pub fn test_count(&self) -> usize {
        self.tests.len()
    }
}

pub(crate) struct StepDef {
    name: String,
    cond: Option<(Expr, usize, String)>,
    captures: Vec<(String, FieldDefLite)>,
}

#[derive(Clone)]
struct FieldDefLite {
    field: Field,
    ty: FieldType,
}

pub(crate) struct SeqDef {
    head: Header,
    id: String,
    name: String,
    severity: Severity,
    within_ns: u64,
    within: String,
    by: Scope,
    steps: Vec<StepDef>,
    output: Option<usize>,
    tests: Vec<CaseTest>,
}

impl Loader<'_> {
    /// `within:` shared by sequences and thresholds: a positive duration ≤ 24h.
    pub(super) fn window(
        &mut self,
        kv: &[(&str, &Y<'_>, &Y<'_>)],
        n: &Y<'_>,
        ctx: &'static str,
    ) -> Option<(u64, String)> {
        let v = self.require(kv, n, "within", ctx)?;
        let text = self.string(v, "a duration such as 120s")?;
        match parse_duration(&text) {
            Some(ns) if ns > 0 && ns <= MAX_WITHIN_NS => Some((ns, text)),
            _ => {
                let loc = self.at(v);
                self.errors
                    .push(RuleError::BadDuration { loc, value: text });
                None
            }
        }
    }

    /// `by:` → one of `names`; unknown names get suggestions (or the full list).
    pub(super) fn scope_name(
        &mut self,
        kv: &[(&str, &Y<'_>, &Y<'_>)],
        n: &Y<'_>,
        ctx: &'static str,
        names: &[&str],
    ) -> Option<String> {
        let v = self.require(kv, n, "by", ctx)?;
        let text = self.string(v, "a scope name")?;
        if names.contains(&text.as_str()) {
            return Some(text);
        }
        let mut suggestions = compile::close(&text, names.iter().copied());
        if suggestions.is_empty() {
            suggestions = names.iter().map(|s| (*s).to_owned()).collect();
        }
        let loc = self.at(v);
        self.errors.push(RuleError::UnknownName {
            loc,
            what: "scope",
            name: text,
            suggestions,
        });
        None
    }

    pub(super) fn sequence(&mut self, n: &Y<'_>) {
        let Some(kv) = self.keys(n, SEQ_KEYS, "sequence", SEQ_EXPECTED) else {
            return;
        };
        let before = self.errors.len();
        let head = self.header(&kv, n, "sequence");
        let window = self.window(&kv, n, "sequence");
        let by = self
            .scope_name(&kv, n, "sequence", &Scope::NAMES)
            .and_then(|s| Scope::parse(&s));
        let steps = self
            .require(&kv, n, "steps", "sequence")
            .map(|s| self.steps(s))
            .unwrap_or_default();
        let output = self.output_source(&kv);
        let tests = Self::get(&kv, "tests")
            .map(|t| self.case_tests(t))
            .unwrap_or_default();
        self.register_id(&kv, head.id.as_deref(), &head.loc);
        if self.errors.len() != before {
            return;
        }
        let (Some(id), Some(name), Some(severity), Some((within_ns, within)), Some(by)) = (
            head.id.clone(),
            head.name.clone(),
            head.severity,
            window,
            by,
        ) else {
            return;
        };
        self.seqs.push(SeqDef {
            head,
            id,
            name,
            severity,
            within_ns,
            within,
            by,
            steps,
            output,
            tests,
        });
    }

    fn steps(&mut self, n: &Y<'_>) -> Vec<StepDef> {
        let YamlData::Sequence(items) = &n.data else {
            self.shape(n, "a sequence of at least two steps");
            return Vec::new();
        };
        if items.len() < 2 {
            // One step is just a rule; zero is surely a mistake. Either way, say so here
            // rather than load something that can never mean "A then B".
            let e = RuleError::Shape {
                loc: self.at(n),
                expected: "a sequence of at least two steps".into(),
                found: format!(
                    "{} step{}",
                    items.len(),
                    if items.len() == 1 { "" } else { "s" }
                ),
            };
            self.errors.push(e);
            return Vec::new();
        }
        let mut seen: Vec<(String, Location)> = Vec::new();
        let mut out = Vec::new();
        for (i, s) in items.iter().enumerate() {
            let Some(kv) = self.keys(s, STEP_KEYS, "sequence step", "name, condition, capture")
            else {
                continue;
            };
            let name = Self::get(&kv, "name")
                .and_then(|v| self.string(v, "a step name"))
                .unwrap_or_else(|| format!("step{}", i + 1));
            let cond = self
                .require(&kv, s, "condition", "sequence step")
                .and_then(|c| self.condition(c))
                .map(|(e, src)| {
                    let text = self.sources[src].text.clone();
                    (e, src, text)
                });
            let mut captures = Vec::new();
            if let Some(c) = Self::get(&kv, "capture") {
                self.captures(c, &mut seen, &mut captures);
            }
            out.push(StepDef {
                name,
                cond,
                captures,
            });
        }
        out
    }

    fn captures(
        &mut self,
        n: &Y<'_>,
        seen: &mut Vec<(String, Location)>,
        out: &mut Vec<(String, FieldDefLite)>,
    ) {
        let YamlData::Mapping(m) = &n.data else {
            if !is_null(n) {
                self.shape(
                    n,
                    "a mapping of capture names to field names (`{path: file.path}`)",
                );
            }
            return;
        };
        for (k, v) in m {
            let Some((name, _)) = scalar(k) else {
                self.shape(k, "a capture name");
                continue;
            };
            let loc = self.at(k);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                self.errors.push(RuleError::BadValue {
                    loc,
                    field: "capture".into(),
                    value: name.into(),
                    expected: "a name of letters, digits and `_`".into(),
                });
                continue;
            }
            if let Some((_, first)) = seen.iter().find(|(n, _)| n == name) {
                self.errors.push(RuleError::Duplicate {
                    loc,
                    what: "capture",
                    name: name.into(),
                    first: first.clone(),
                });
                continue;
            }
            let Some(fname) = self.string(v, "a field name") else {
                continue;
            };
            match fields::lookup(&fname) {
                Ok(def) => {
                    seen.push((name.to_owned(), loc));
                    out.push((
                        name.to_owned(),
                        FieldDefLite {
                            field: def.field,
                            ty: def.ty,
                        },
                    ));
                }
                Err(suggestions) => {
                    let loc = self.at(v);
                    self.errors.push(RuleError::UnknownField {
                        loc,
                        field: fname,
                        suggestions,
                    });
                }
            }
        }
    }

    /// Compiles every sequence; `$name` errors go through `c.errors` like any other
    /// compile error, so they carry the token's line:column.
    pub(super) fn compile_sequences(&mut self, c: &mut Compiler<'_>) -> Vec<Arc<Sequence>> {
        let defs = std::mem::take(&mut self.seqs);
        let mut out = Vec::with_capacity(defs.len());
        for d in defs {
            let mut names: Vec<String> = Vec::new();
            let mut steps = Vec::with_capacity(d.steps.len());
            for s in d.steps {
                // Only values captured by *earlier* steps are visible: a step's own
                // captures are taken after its condition matched.
                c.captures = Some(names.clone());
                let condition = s
                    .cond
                    .as_ref()
                    .and_then(|(e, src, _)| c.compile(e, *src))
                    .unwrap_or(Node::Const(false));
                c.captures = None;
                let mut captures = Vec::new();
                for (name, def) in s.captures {
                    captures.push(Capture {
                        slot: names.len(),
                        field: def.field,
                        ty: def.ty,
                    });
                    names.push(name);
                }
                steps.push(Step {
                    name: s.name,
                    condition_text: s.cond.map(|c| c.2).unwrap_or_default(),
                    slot: slot_of(&condition),
                    condition,
                    captures,
                });
            }
            let mut vars = vec!["within".to_owned()];
            vars.extend(names.iter().map(|n| format!("${n}")));
            let output = self.output_template(d.output, &vars, &d.name);
            self.warn_mitre(&d.id, &d.head.tactics, &d.head.techniques, &d.head.loc);
            out.push(Arc::new(Sequence {
                id: d.id,
                name: d.name,
                description: d.head.description,
                severity: d.severity,
                tactics: d.head.tactics,
                techniques: d.head.techniques,
                tags: d.head.tags,
                mode: d.head.mode,
                within_ns: d.within_ns,
                within: d.within,
                by: d.by,
                steps,
                capture_names: names,
                location: d.head.loc,
                output,
                tests: d.tests,
            }));
        }
        out
    }

    /// An output template with `vars` (`%count`, `%$path`, ...); defaults to the name.
    pub(super) fn output_template(
        &mut self,
        src: Option<usize>,
        vars: &[String],
        name: &str,
    ) -> Template {
        let Some(src) = src else {
            return Template {
                parts: vec![compile::Part::Lit(name.to_owned())],
            };
        };
        match compile::parse_template_vars(&self.sources[src].text, vars) {
            Ok(t) => t,
            Err((off, field, suggestions)) => {
                let loc = self.src_loc(src, off);
                let e = match field.strip_prefix('$') {
                    Some(n) => RuleError::UncapturedRef {
                        loc,
                        name: n.to_owned(),
                        available: vars
                            .iter()
                            .filter_map(|v| v.strip_prefix('$').map(str::to_owned))
                            .collect(),
                    },
                    None => RuleError::UnknownField {
                        loc,
                        field,
                        suggestions,
                    },
                };
                self.errors.push(e);
                Template::default()
            }
        }
    }
}
