//! Evaluation of compiled rules, and the per-kind / per-type index that decides which
//! rules run on an event.
//!
//! Hot-path rule: nothing here allocates unless a rule matches (then the message and
//! the `RuleMatch` are built). `proc.cmdline` is joined into `Scratch`'s reusable
//! buffer; the regex crate reuses its per-thread caches.

use std::collections::HashMap;
use std::net::IpAddr;

use super::compile::{Node, Ord3, Part, Pred, Template, Test};
use super::fields::{self, Field, FieldType};
use super::{Mode, Rule, RuleMatch, RuleSet};
use crate::event::Event;

/// Reusable per-thread evaluation state. Create one per worker and keep it.
#[derive(Debug, Default)]
pub struct Scratch {
    buf: String,
    candidates: Vec<usize>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }
}

/// Which rules can apply to which events. A rule lands in exactly one bucket: by
/// `evt.type` if its top-level conjunction pins the type, else by `evt.kind`, else
/// `always`. Buckets hold rule indexes in ascending order.
#[derive(Debug, Default)]
pub(crate) struct Index {
    by_type: HashMap<String, Vec<usize>>,
    by_kind: [Vec<usize>; 6],
    always: Vec<usize>,
}

/// What the index learned about one rule (exposed for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    Types(Vec<String>),
    Kinds(Vec<usize>),
    Always,
}

/// Finds an `evt.type = x` / `evt.type in (...)` (preferred) or `evt.kind` constraint
/// among the top-level conjuncts of a simplified condition.
pub(crate) fn slot_of(cond: &Node) -> Slot {
    let conjuncts: &[Node] = match cond {
        Node::And(v) => v,
        other => std::slice::from_ref(other),
    };
    let values = |t: &Test| -> Option<Vec<String>> {
        match &t.pred {
            Pred::StrEq(s) => Some(vec![s.to_string()]),
            Pred::StrIn(set) => Some(set.items().into_iter().map(str::to_owned).collect()),
            _ => None,
        }
    };
    let mut kinds = None;
    for c in conjuncts {
        if let Node::Test(t) = c {
            match t.field {
                Field::EvtType => {
                    if let Some(v) = values(t) {
                        return Slot::Types(v);
                    }
                }
                Field::EvtKind if kinds.is_none() => {
                    if let Some(v) = values(t) {
                        kinds = Some(
                            v.iter()
                                .filter_map(|k| fields::KIND_NAMES.iter().position(|n| n == k))
                                .collect(),
                        );
                    }
                }
                _ => {}
            }
        }
    }
    kinds.map_or(Slot::Always, Slot::Kinds)
}

impl Index {
    pub fn build(rules: &[std::sync::Arc<Rule>]) -> Index {
        Index::from_slots(
            rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.mode != Mode::Off)
                .map(|(i, r)| (i, slot_of(&r.condition))),
        )
    }

    /// Builds an index from (item, slot) pairs, items in ascending order. An item may
    /// come with several slots (a sequence has one per step); [`Index::candidates`]
    /// removes the duplicates that can cause.
    pub fn from_slots(slots: impl IntoIterator<Item = (usize, Slot)>) -> Index {
        let mut ix = Index::default();
        for (i, slot) in slots {
            match slot {
                Slot::Types(ts) => {
                    for t in ts {
                        let v = ix.by_type.entry(t).or_default();
                        if v.last() != Some(&i) {
                            v.push(i);
                        }
                    }
                }
                Slot::Kinds(ks) => {
                    for k in ks {
                        if ix.by_kind[k].last() != Some(&i) {
                            ix.by_kind[k].push(i);
                        }
                    }
                }
                Slot::Always => {
                    if ix.always.last() != Some(&i) {
                        ix.always.push(i);
                    }
                }
            }
        }
        ix
    }

    /// The items that can apply to `ev`, ascending and distinct, into `cand` (cleared
    /// first; reuse it so this does not allocate).
    pub fn candidates(&self, ev: &Event, cand: &mut Vec<usize>) {
        let by_type: &[usize] = self
            .by_type
            .get(ev.event.action.as_str())
            .map_or(&[], Vec::as_slice);
        let by_kind = &self.by_kind[fields::kind_index(ev.event.kind)];
        cand.clear();
        cand.extend_from_slice(&self.always);
        cand.extend_from_slice(by_kind);
        cand.extend_from_slice(by_type);
        if !by_kind.is_empty() || !by_type.is_empty() {
            cand.sort_unstable();
            cand.dedup();
        }
    }
}

pub(crate) fn evaluate(set: &RuleSet, scratch: &mut Scratch, ev: &Event, out: &mut Vec<RuleMatch>) {
    // Merged buckets so matches come out in rule order. The candidate vector is
    // scratch: it stops growing after the first few events.
    let mut cand = std::mem::take(&mut scratch.candidates);
    set.index.candidates(ev, &mut cand);
    for &i in &cand {
        let rule = &set.rules[i];
        if rule_matches(rule, ev, scratch) {
            let message = render(&rule.output, ev, &mut scratch.buf);
            out.push(RuleMatch {
                index: i,
                rule: rule.clone(),
                message,
            });
        }
    }
    scratch.candidates = cand;
}

pub(crate) fn rule_matches(rule: &Rule, ev: &Event, scratch: &mut Scratch) -> bool {
    eval(&rule.condition, ev, &mut scratch.buf, &[])
        && !rule
            .exceptions
            .iter()
            .any(|e| eval(e, ev, &mut scratch.buf, &[]))
}

/// Evaluates a compiled condition. `caps` are a sequence instance's captured values
/// (empty for plain rules, which never compile `Pred::Capture`).
pub(crate) fn eval(n: &Node, ev: &Event, buf: &mut String, caps: &[String]) -> bool {
    match n {
        Node::And(v) => v.iter().all(|c| eval(c, ev, buf, caps)),
        Node::Or(v) => v.iter().any(|c| eval(c, ev, buf, caps)),
        Node::Not(x) => !eval(x, ev, buf, caps),
        Node::Const(b) => *b,
        Node::Test(t) => test(t, ev, buf, caps),
    }
}

pub(crate) fn scratch_buf(s: &mut Scratch) -> &mut String {
    &mut s.buf
}

fn test(t: &Test, ev: &Event, buf: &mut String, caps: &[String]) -> bool {
    match t.ty {
        FieldType::Num => {
            let Some(v) = fields::num(&t.field, ev) else {
                return false;
            };
            match &t.pred {
                Pred::Exists => true,
                Pred::Capture(slot) => caps
                    .get(*slot)
                    .and_then(|c| fields::parse_int(c))
                    .is_some_and(|c| c == v),
                Pred::NumEq(n) => v == *n,
                Pred::NumIn(ns) => ns.contains(&v),
                Pred::NumCmp(o, n) => match o {
                    Ord3::Lt => v < *n,
                    Ord3::Le => v <= *n,
                    Ord3::Gt => v > *n,
                    Ord3::Ge => v >= *n,
                },
                _ => false,
            }
        }
        FieldType::Bool => match (fields::boolean(&t.field, ev), &t.pred) {
            (None, _) => false,
            (Some(_), Pred::Exists) => true,
            (Some(v), Pred::BoolEq(b)) => v == *b,
            _ => false,
        },
        FieldType::Str | FieldType::Ip => {
            str_any(&t.field, ev, buf, &t.pred, caps).unwrap_or(false)
        }
    }
}

fn str_any(f: &Field, ev: &Event, buf: &mut String, pred: &Pred, caps: &[String]) -> Option<bool> {
    fields::str_any(f, ev, buf, |s| match pred {
        Pred::Exists => true,
        Pred::Capture(slot) => caps.get(*slot).is_some_and(|c| c == s),
        Pred::StrEq(x) => s == &**x,
        Pred::StrIn(set) => set.contains(s),
        Pred::Contains(x) => s.contains(&**x),
        Pred::IContains(r) | Pred::Glob(r) | Pred::Regex(r) => r.is_match(s),
        Pred::StartsWith(x) => s.starts_with(&**x),
        Pred::EndsWith(x) => s.ends_with(&**x),
        Pred::Pmatch(prefixes) => prefixes.iter().any(|p| {
            s.strip_prefix(&**p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || p.is_empty())
        }),
        Pred::IpIn(cidrs) => s
            .parse::<IpAddr>()
            .is_ok_and(|ip| cidrs.iter().any(|c| c.contains(ip))),
        _ => false,
    })
}

/// Renders an output template. Only called for matches, so it may allocate.
pub(crate) fn render(t: &Template, ev: &Event, buf: &mut String) -> String {
    render_vars(t, ev, buf, &[])
}

/// Renders a template whose `Part::Var(i)` take `vars[i]` (`<NA>` if absent).
pub(crate) fn render_vars(t: &Template, ev: &Event, buf: &mut String, vars: &[&str]) -> String {
    let mut out = String::with_capacity(128);
    for p in &t.parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Field(f, ty) => fields::render(f, *ty, ev, buf, &mut out),
            Part::Var(i) => out.push_str(vars.get(*i).copied().unwrap_or("<NA>")),
        }
    }
    out
}
