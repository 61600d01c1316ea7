//! Rule-embedded tests (`tests: {match: [...], no_match: [...]}`), run against the
//! compiled rule exactly as the evaluator would (condition and exceptions, ignoring
//! `mode` and the index).

use std::fmt;

use super::{Location, RuleSet, Scratch};
use crate::event::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKind {
    /// The rule must fire on the event.
    Match,
    /// The rule must not fire on the event.
    NoMatch,
}

impl TestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TestKind::Match => "match",
            TestKind::NoMatch => "no_match",
        }
    }
}

/// One test event, built at load time by `event_from_fields`.
#[derive(Debug, Clone)]
pub(crate) struct InlineTest {
    pub kind: TestKind,
    pub index: usize,
    pub loc: Location,
    pub event: Event,
}

/// A failed inline test.
#[derive(Debug, Clone)]
pub struct InlineTestFailure {
    pub rule_id: String,
    pub kind: TestKind,
    /// Position within the `match` / `no_match` sequence.
    pub index: usize,
    /// Where the test event is written.
    pub loc: Location,
    pub event: Event,
}

impl fmt::Display for InlineTestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expect = match self.kind {
            TestKind::Match => "should match but did not",
            TestKind::NoMatch => "should not match but did",
        };
        let ev = serde_json::to_string(&self.event).unwrap_or_default();
        write!(
            f,
            "{}: rule {} tests.{}[{}] {expect}; event: {ev}",
            self.loc,
            self.rule_id,
            self.kind.as_str(),
            self.index
        )
    }
}

pub(crate) fn run(set: &RuleSet) -> Vec<InlineTestFailure> {
    let mut scratch = Scratch::new();
    let mut out = Vec::new();
    for rule in set.rules() {
        for t in &rule.tests {
            let fired = rule.matches(&t.event, &mut scratch);
            if fired != (t.kind == TestKind::Match) {
                out.push(InlineTestFailure {
                    rule_id: rule.id.clone(),
                    kind: t.kind,
                    index: t.index,
                    loc: t.loc.clone(),
                    event: t.event.clone(),
                });
            }
        }
    }
    out
}
