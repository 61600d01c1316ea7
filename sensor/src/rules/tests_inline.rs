//! Rule-embedded tests (`tests: {match: [...], no_match: [...]}`), run against the
//! compiled rule exactly as the evaluator would (condition and exceptions, ignoring
//! `mode` and the index).

use std::borrow::Cow;
use std::fmt;

use saphyr::{MarkedYaml, ScalarStyle, YamlData};

use super::correlate::Correlator;
use super::file::{Loader, Y, event_and_time, is_null, scalar};
use super::sequence::parse_duration;
use super::{Location, RuleError, RuleSet, Scratch};
use crate::event::Event;

/// Cap on the events one `repeat` block expands to (a test, not a load test).
const MAX_REPEAT: u64 = 100_000;
/// Default spacing of test events that give no `at:`.
const DEFAULT_STEP_NS: u64 = 1_000_000;

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

/// One sequence/threshold test case: events fed in order to a fresh correlator.
#[derive(Debug, Clone)]
pub(crate) struct CaseTest {
    pub kind: TestKind,
    pub index: usize,
    pub loc: Location,
    pub events: Vec<Event>,
}

/// A failed inline test.
#[derive(Debug, Clone)]
pub struct InlineTestFailure {
    /// The id of the rule, sequence or threshold.
    pub rule_id: String,
    pub kind: TestKind,
    /// Position within the `match` / `no_match` sequence.
    pub index: usize,
    /// Where the test event is written.
    pub loc: Location,
    /// The test event (for a sequence/threshold case: its last event).
    pub event: Event,
    /// Number of events in the case (1 for rule tests).
    pub events: usize,
}

impl fmt::Display for InlineTestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expect = match self.kind {
            TestKind::Match => "should match but did not",
            TestKind::NoMatch => "should not match but did",
        };
        let ev = serde_json::to_string(&self.event).unwrap_or_default();
        let what = if self.events > 1 {
            format!("{} events, last", self.events)
        } else {
            "event".to_owned()
        };
        write!(
            f,
            "{}: rule {} tests.{}[{}] {expect}; {what}: {ev}",
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
                    events: 1,
                });
            }
        }
    }
    let mut matches = Vec::new();
    let cases = set
        .sequences()
        .iter()
        .map(|s| {
            let c = || Correlator::from_items(vec![s.clone()], Vec::new());
            (&s.id, &s.tests, Box::new(c) as Box<dyn Fn() -> Correlator>)
        })
        .chain(set.thresholds().iter().map(|t| {
            let c = || Correlator::from_items(Vec::new(), vec![t.clone()]);
            (&t.id, &t.tests, Box::new(c) as Box<dyn Fn() -> Correlator>)
        }));
    for (id, tests, fresh) in cases {
        for t in tests {
            let mut corr = fresh();
            matches.clear();
            for ev in &t.events {
                corr.observe(&mut scratch, ev, &mut matches);
            }
            let fired = matches.iter().any(|m| &m.rule_id == id);
            if fired != (t.kind == TestKind::Match) {
                out.push(InlineTestFailure {
                    rule_id: id.clone(),
                    kind: t.kind,
                    index: t.index,
                    loc: t.loc.clone(),
                    event: t
                        .events
                        .last()
                        .cloned()
                        .unwrap_or_else(super::file::blank_event),
                    events: t.events.len(),
                });
            }
        }
    }
    out
}

impl Loader<'_> {
    /// `tests: {match: [case...], no_match: [case...]}` for sequences and thresholds.
    /// A case is a list whose items are events (field maps, optionally with `at:`)
    /// or `repeat` blocks; a lone `repeat` block is also a case. Events without
    /// `at:` come 1ms after the previous one (the first at 0).
    pub(super) fn case_tests(&mut self, n: &Y<'_>) -> Vec<CaseTest> {
        let Some(kv) = self.keys(n, &["match", "no_match"], "tests", "match, no_match") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, _, v) in kv {
            let kind = if key == "match" {
                TestKind::Match
            } else {
                TestKind::NoMatch
            };
            let YamlData::Sequence(cases) = &v.data else {
                if !is_null(v) {
                    self.shape(v, "a sequence of test cases (each a list of events)");
                }
                continue;
            };
            for (index, case) in cases.iter().enumerate() {
                let items: Vec<&Y<'_>> = match &case.data {
                    YamlData::Sequence(items) => items.iter().collect(),
                    YamlData::Mapping(_) if has_key(case, "repeat") => vec![case],
                    _ => {
                        self.shape(case, "a test case: a list of events, or a `repeat` block");
                        continue;
                    }
                };
                let before = self.errors.len();
                let mut events = Vec::new();
                let mut next = 0u64;
                for item in items {
                    if has_key(item, "repeat") {
                        self.repeat(item, &mut next, &mut events);
                    } else {
                        self.push_event(item, None, &mut next, &mut events);
                    }
                }
                if self.errors.len() == before {
                    out.push(CaseTest {
                        kind,
                        index,
                        loc: self.at(case),
                        events,
                    });
                }
            }
        }
        out
    }

    /// Builds one event; its time is its `at:`, else `gap` (or 1ms) after the last.
    fn push_event(&mut self, n: &Y<'_>, gap: Option<u64>, next: &mut u64, out: &mut Vec<Event>) {
        let label = self.labels[self.file].clone();
        match event_and_time(n, &label) {
            Ok((mut ev, at)) => {
                let t = at.unwrap_or(*next);
                ev.event.boot_ns = t;
                ev.event.sequence = out.len() as u64;
                *next = t.saturating_add(gap.unwrap_or(DEFAULT_STEP_NS));
                out.push(ev);
            }
            Err(errs) => self.errors.extend(errs),
        }
    }

    /// `{repeat: N, event: {...}, vary: {field: [v1, v2, "1..25"]}, every: 100ms}`:
    /// N copies of `event`; copy i takes element i (cycling) of each `vary` list, where
    /// a `a..b` element stands for the integers a to b. `every` spaces the copies
    /// (default 1ms); the template's `at:` times the first one.
    fn repeat(&mut self, n: &Y<'_>, next: &mut u64, out: &mut Vec<Event>) {
        let Some(kv) = self.keys(
            n,
            &["repeat", "event", "vary", "every"],
            "repeat block",
            "repeat, event, vary, every",
        ) else {
            return;
        };
        let count = Self::get(&kv, "repeat").and_then(|v| {
            let t = self.string(v, "a repeat count")?;
            match t.parse::<u64>() {
                Ok(c) if (1..=MAX_REPEAT).contains(&c) => Some(c),
                _ => {
                    let loc = self.at(v);
                    self.errors.push(RuleError::BadValue {
                        loc,
                        field: "repeat".into(),
                        value: t,
                        expected: format!("an integer from 1 to {MAX_REPEAT}"),
                    });
                    None
                }
            }
        });
        let template = self.require(&kv, n, "event", "repeat block");
        let every = Self::get(&kv, "every").and_then(|v| {
            let t = self.string(v, "a duration")?;
            let d = parse_duration(&t);
            if d.is_none() {
                let loc = self.at(v);
                self.errors.push(RuleError::BadDuration { loc, value: t });
            }
            d
        });
        let mut vary: Vec<(&Y<'_>, String, Vec<String>)> = Vec::new();
        if let Some(v) = Self::get(&kv, "vary") {
            match &v.data {
                YamlData::Mapping(m) => {
                    for (k, vals) in m {
                        let Some(field) = self.string(k, "a field name") else {
                            continue;
                        };
                        if let Some(values) = self.vary_values(vals) {
                            vary.push((k, field, values));
                        }
                    }
                }
                _ => self.shape(v, "a mapping of field names to value lists"),
            }
        }
        let (Some(count), Some(template)) = (count, template) else {
            return;
        };
        if !matches!(template.data, YamlData::Mapping(_)) {
            self.shape(template, "an event (a mapping of field names to values)");
            return;
        }
        for i in 0..count as usize {
            let mut ev = template.clone();
            if i > 0 {
                // Only the first copy honours the template's `at:`; the rest follow
                // `every` apart.
                remove_entry(&mut ev, "at");
            }
            for (knode, field, values) in &vary {
                let value = &values[i % values.len()];
                set_entry(&mut ev, knode, field, value);
            }
            let before = self.errors.len();
            self.push_event(&ev, every, next, out);
            if self.errors.len() != before {
                return; // the same error would repeat N times
            }
        }
    }

    fn vary_values(&mut self, n: &Y<'_>) -> Option<Vec<String>> {
        let items: Vec<&Y<'_>> = match &n.data {
            YamlData::Sequence(v) => v.iter().collect(),
            _ => vec![n],
        };
        let mut out = Vec::new();
        for i in items {
            let Some((text, _)) = scalar(i).filter(|_| !is_null(i)) else {
                self.shape(i, "a value or an `a..b` integer range");
                return None;
            };
            match text.split_once("..") {
                Some((a, b)) => match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                    (Ok(a), Ok(b)) if a <= b && (b - a) as u64 <= MAX_REPEAT => {
                        out.extend((a..=b).map(|x| x.to_string()));
                    }
                    _ => {
                        let loc = self.at(i);
                        self.errors.push(RuleError::BadValue {
                            loc,
                            field: "vary".into(),
                            value: text.into(),
                            expected: format!(
                                "an integer range a..b with a <= b and at most {MAX_REPEAT} values"
                            ),
                        });
                        return None;
                    }
                },
                None => out.push(text.to_owned()),
            }
        }
        if out.is_empty() {
            self.shape(n, "a non-empty list of values");
            return None;
        }
        Some(out)
    }
}

fn has_key(n: &Y<'_>, key: &str) -> bool {
    matches!(&n.data, YamlData::Mapping(m) if m.keys().any(|k| scalar(k).is_some_and(|(s, _)| s == key)))
}

/// Sets `field: value` in an event map (replacing an existing entry). New nodes carry
/// the `vary` key's span so errors about them point at the `vary` entry.
fn set_entry<'a>(ev: &mut Y<'a>, at: &Y<'a>, field: &str, value: &str) {
    let YamlData::Mapping(m) = &mut ev.data else {
        return;
    };
    let node = |s: &str| MarkedYaml {
        span: at.span,
        data: YamlData::Representation(Cow::Owned(s.to_owned()), ScalarStyle::Plain, None),
    };
    for (k, v) in m.iter_mut() {
        if scalar(k).is_some_and(|(s, _)| s == field) {
            *v = node(value);
            return;
        }
    }
    m.insert(node(field), node(value));
}

fn remove_entry(ev: &mut Y<'_>, field: &str) {
    if let YamlData::Mapping(m) = &mut ev.data
        && let Some(k) = m
            .keys()
            .find(|k| scalar(k).is_some_and(|(s, _)| s == field))
            .cloned()
    {
        m.remove(&k);
    }
}
