//! Unit tests for the rule engine, split by topic.

mod corpus;
mod correlation;
mod errors;
mod incidents;
mod language;
mod loading;
mod props;
mod semantics;

use super::{RuleError, RuleSet, Scratch, event_from_fields};
use crate::event::Event;

/// Builds a test event from an inline YAML field map.
pub(super) fn ev(fields: &str) -> Event {
    event_from_fields(fields, "ev.yaml").unwrap_or_else(|e| panic!("bad test event: {e}"))
}

/// One rule with `cond` (single-quoted YAML, so `'` is doubled).
pub(super) fn one_rule(cond: &str) -> String {
    format!(
        "- rule:\n    id: T-1\n    name: t\n    severity: low\n    condition: '{}'\n    output: 'hit %proc.name'\n",
        cond.replace('\'', "''")
    )
}

pub(super) fn load(yaml: &str) -> RuleSet {
    RuleSet::from_str(yaml, "r.yaml").unwrap_or_else(|e| panic!("load failed: {e}"))
}

pub(super) fn load_err(yaml: &str) -> Vec<RuleError> {
    match RuleSet::from_str(yaml, "r.yaml") {
        Ok(_) => panic!("expected a load error for:\n{yaml}"),
        Err(e) => e.errors().to_vec(),
    }
}

/// Does the single-rule set built from `cond` fire on the event?
pub(super) fn fires(cond: &str, fields: &str) -> bool {
    let set = load(&one_rule(cond));
    let mut out = Vec::new();
    set.evaluate(&mut Scratch::new(), &ev(fields), &mut out);
    !out.is_empty()
}

/// (line, column) of the only error.
pub(super) fn only_loc(yaml: &str) -> (RuleError, usize, usize) {
    let errs = load_err(yaml);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let e = errs.into_iter().next().unwrap_or_else(|| unreachable!());
    let loc = e
        .location()
        .cloned()
        .unwrap_or_else(|| panic!("unlocated: {e}"));
    (e, loc.line, loc.column)
}
