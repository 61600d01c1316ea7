//! Detection rule engine: Falco-like YAML rule files compiled into an evaluator over
//! [`Event`]s.
//!
//! Pipeline: [`file`] reads YAML (with `saphyr`, which keeps a line:column for every
//! node) into lists, macros and rule definitions; [`lexer`]/[`parser`] turn condition
//! text into an AST; [`compile`] resolves lists and macros, type-checks every comparison
//! against the field table in [`fields`] and builds matchers (regexes, globs, CIDRs)
//! once; [`eval`] runs the compiled rules, indexed by event type/kind, with no allocation
//! for events that match nothing.
//!
//! Loading is all-or-nothing: any error in any file fails the whole load and every error
//! found is reported, each with `file:line:column`.

pub mod attack;
mod compile;
pub mod correlate;
mod eval;
pub mod fields;
pub(crate) mod file;
pub mod incidents;
mod lexer;
mod parser;
pub mod sequence;
mod tests_inline;
pub mod threshold;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::alert::{Severity, TechniqueId};
use crate::event::Event;

pub use correlate::{CorrelationMatch, Correlator, CorrelatorStats, StepSummary};
pub use eval::Scratch;
pub use file::event_from_fields;
pub use sequence::{Scope, Sequence};
pub use tests_inline::{InlineTestFailure, TestKind};
pub use threshold::{Threshold, ThresholdScope};

/// A position in a rule file. Lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Every way loading rules can fail. All variants but `Io` and `Many` carry the
/// location of the offending YAML node (or of the token inside a condition).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{path}: cannot read rule file: {message}")]
    Io { path: String, message: String },
    #[error("{loc}: YAML syntax error: {message}")]
    Yaml { loc: Location, message: String },
    #[error("{loc}: unknown key `{key}` in {context}; expected one of: {expected}")]
    UnknownKey {
        loc: Location,
        key: String,
        context: &'static str,
        expected: &'static str,
    },
    #[error("{loc}: missing required key `{key}` in {context}")]
    MissingKey {
        loc: Location,
        key: &'static str,
        context: &'static str,
    },
    #[error("{loc}: expected {expected}, found {found}")]
    Shape {
        loc: Location,
        expected: String,
        found: String,
    },
    #[error("{loc}: condition syntax error: {message}")]
    Syntax { loc: Location, message: String },
    #[error("{loc}: unknown field `{field}`{}", suggest(.suggestions))]
    UnknownField {
        loc: Location,
        field: String,
        suggestions: Vec<String>,
    },
    #[error("{loc}: operator `{op}` cannot be applied to {ty} field `{field}`; {expected}")]
    BadOperator {
        loc: Location,
        op: String,
        field: String,
        ty: &'static str,
        expected: &'static str,
    },
    #[error("{loc}: invalid value {value:?} for `{field}`: expected {expected}")]
    BadValue {
        loc: Location,
        field: String,
        value: String,
        expected: String,
    },
    #[error("{loc}: invalid regex {pattern:?}: {message}")]
    BadRegex {
        loc: Location,
        pattern: String,
        message: String,
    },
    #[error("{loc}: invalid glob {pattern:?}: {message}")]
    BadGlob {
        loc: Location,
        pattern: String,
        message: String,
    },
    #[error("{loc}: unknown {what} `{name}`{}", suggest(.suggestions))]
    UnknownName {
        loc: Location,
        what: &'static str,
        name: String,
        suggestions: Vec<String>,
    },
    #[error("{loc}: {what} cycle: {path}")]
    Cycle {
        loc: Location,
        what: &'static str,
        path: String,
    },
    #[error("{loc}: duplicate {what} `{name}` (first defined at {first})")]
    Duplicate {
        loc: Location,
        what: &'static str,
        name: String,
        first: Location,
    },
    #[error(
        "{loc}: unknown MITRE ATT&CK technique `{id}`; expected an Enterprise id such as T1059.004"
    )]
    UnknownTechnique { loc: Location, id: String },
    #[error("{loc}: unknown MITRE ATT&CK tactic `{name}`; expected one of: {}", attack::TACTICS.join(", "))]
    UnknownTactic { loc: Location, name: String },
    #[error(
        "{loc}: invalid severity `{value}`; expected one of: info, low, medium, high, critical"
    )]
    BadSeverity { loc: Location, value: String },
    #[error(
        "{loc}: invalid duration {value:?}; expected a positive number with a unit: ms, s, m or h (e.g. 120s), at most 24h"
    )]
    BadDuration { loc: Location, value: String },
    #[error("{loc}: `${name}` is used before any earlier step captures it{}", available_caps(.available))]
    UncapturedRef {
        loc: Location,
        name: String,
        available: Vec<String>,
    },
    #[error("{} errors while loading rules:\n{}", .0.len(), join_errors(.0))]
    Many(Vec<RuleError>),
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}?", s.join(", "))
    }
}

fn available_caps(a: &[String]) -> String {
    if a.is_empty() {
        "; no value is captured before this step (add `capture: {name: field}` to an earlier step)"
            .into()
    } else {
        format!(
            "; captured so far: {}",
            a.iter()
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn join_errors(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl RuleError {
    /// The individual errors: the contents of `Many`, or just `self`.
    pub fn errors(&self) -> &[RuleError] {
        match self {
            RuleError::Many(v) => v,
            other => std::slice::from_ref(other),
        }
    }

    /// Where the error is, when it is about one place.
    pub fn location(&self) -> Option<&Location> {
        use RuleError::*;
        match self {
            Io { .. } | Many(_) => None,
            Yaml { loc, .. }
            | UnknownKey { loc, .. }
            | MissingKey { loc, .. }
            | Shape { loc, .. }
            | Syntax { loc, .. }
            | UnknownField { loc, .. }
            | BadOperator { loc, .. }
            | BadValue { loc, .. }
            | BadRegex { loc, .. }
            | BadGlob { loc, .. }
            | UnknownName { loc, .. }
            | Cycle { loc, .. }
            | Duplicate { loc, .. }
            | UnknownTechnique { loc, .. }
            | UnknownTactic { loc, .. }
            | BadSeverity { loc, .. }
            | BadDuration { loc, .. }
            | UncapturedRef { loc, .. } => Some(loc),
        }
    }

    /// Folds a list of errors into one value (`Many` only when there are several).
    fn from_vec(mut errors: Vec<RuleError>) -> RuleError {
        if errors.len() == 1 {
            errors.remove(0)
        } else {
            RuleError::Many(errors)
        }
    }
}

/// A non-fatal finding, e.g. a tactic that none of the rule's techniques belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleWarning {
    pub loc: Location,
    pub message: String,
}

impl fmt::Display for RuleWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.loc, self.message)
    }
}

/// Whether a rule raises alerts. `Off` rules are still compiled, validated and
/// inline-tested, but never evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Alert,
    Off,
}

/// One compiled rule. Metadata is public; the compiled condition is private.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub description: String,
    pub severity: Severity,
    pub tactics: Vec<String>,
    pub techniques: Vec<TechniqueId>,
    pub tags: Vec<String>,
    pub mode: Mode,
    /// The condition text as written (after YAML folding).
    pub condition_text: String,
    /// Where the `rule:` item starts.
    pub location: Location,
    pub(crate) condition: compile::Node,
    pub(crate) exceptions: Vec<compile::Node>,
    pub(crate) output: compile::Template,
    pub(crate) tests: Vec<tests_inline::InlineTest>,
}

impl Rule {
    /// Condition true and no exception matches. Ignores `mode` and the index.
    /// Number of inline test events (match and no_match).
    pub fn test_count(&self) -> usize {
        self.tests.len()
    }

    pub fn matches(&self, ev: &Event, scratch: &mut Scratch) -> bool {
        eval::rule_matches(self, ev, scratch)
    }
}

/// A rule that fired on an event.
#[derive(Debug, Clone)]
pub struct RuleMatch {
    /// Position of the rule in [`RuleSet::rules`].
    pub index: usize,
    pub rule: Arc<Rule>,
    /// The rule's `output` template rendered against the event.
    pub message: String,
}

/// All rules from one or more files, compiled and indexed.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
    index: eval::Index,
    warnings: Vec<RuleWarning>,
    sequences: Vec<Arc<Sequence>>,
    thresholds: Vec<Arc<Threshold>>,
}

impl RuleSet {
    /// Loads and compiles every file; lists and macros are shared across files.
    /// Fails with every error found in every file (no partial load).
    pub fn from_files(paths: &[PathBuf]) -> Result<RuleSet, RuleError> {
        let mut sources = Vec::with_capacity(paths.len());
        let mut errors = Vec::new();
        for p in paths {
            match std::fs::read_to_string(p) {
                Ok(text) => sources.push((p.display().to_string(), text)),
                Err(e) => errors.push(RuleError::Io {
                    path: p.display().to_string(),
                    message: e.to_string(),
                }),
            }
        }
        let loaded = file::load(&sources);
        match loaded {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(RuleError::from_vec(errors)),
            Err(e) => {
                errors.extend(e.errors().iter().cloned());
                Err(RuleError::from_vec(errors))
            }
        }
    }

    /// Loads rules from text; `file_label` is used in error locations.
    #[allow(clippy::should_implement_trait)] // two arguments: not `FromStr`
    /// Several (label, text) sources loaded together (shared lists and macros).
    pub fn from_sources(sources: &[(String, String)]) -> Result<RuleSet, RuleError> {
        file::load(sources)
    }

    pub fn from_str(text: &str, file_label: &str) -> Result<RuleSet, RuleError> {
        file::load(&[(file_label.to_owned(), text.to_owned())])
    }

    /// Evaluates the enabled rules that can apply to `ev`'s kind/type and appends a
    /// [`RuleMatch`] per firing rule to `out` (in rule order). Allocates only for matches.
    pub fn evaluate(&self, scratch: &mut Scratch, ev: &Event, out: &mut Vec<RuleMatch>) {
        eval::evaluate(self, scratch, ev, out);
    }

    /// All rules, in file order.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// All `sequence:` items, in file order (including `mode: off` ones).
    pub fn sequences(&self) -> &[Arc<Sequence>] {
        &self.sequences
    }

    /// All `threshold:` items, in file order (including `mode: off` ones).
    pub fn thresholds(&self) -> &[Arc<Threshold>] {
        &self.thresholds
    }

    /// Non-fatal findings from loading (e.g. tactic/technique mismatches).
    pub fn warnings(&self) -> &[RuleWarning] {
        &self.warnings
    }

    /// Runs every rule's, sequence's and threshold's `tests:` block; returns the
    /// failures (empty = all pass). Each sequence/threshold test case runs through a
    /// fresh [`Correlator`] holding only that item.
    pub fn run_inline_tests(&self) -> Vec<InlineTestFailure> {
        tests_inline::run(self)
    }
}
