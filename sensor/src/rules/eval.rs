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
        let mut ix = Index::default();
        for (i, r) in rules.iter().enumerate() {
            if r.mode == Mode::Off {
                continue;
            }
            match slot_of(&r.condition) {
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
                Slot::Always => ix.always.push(i),
            }
        }
        ix
    }
}

pub(crate) fn evaluate(set: &RuleSet, scratch: &mut Scratch, ev: &Event, out: &mut Vec<RuleMatch>) {
    let ix = &set.index;
    let by_type: &[usize] = ix
        .by_type
        .get(ev.event.action.as_str())
        .map_or(&[], Vec::as_slice);
    let by_kind = &ix.by_kind[fields::kind_index(ev.event.kind)];
    // Merge the three sorted buckets so matches come out in rule order. The candidate
    // vector is scratch: it stops growing after the first few events.
    let mut cand = std::mem::take(&mut scratch.candidates);
    cand.clear();
    cand.extend_from_slice(&ix.always);
    cand.extend_from_slice(by_kind);
    cand.extend_from_slice(by_type);
    if !by_kind.is_empty() || !by_type.is_empty() {
        cand.sort_unstable();
    }
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
    eval(&rule.condition, ev, &mut scratch.buf)
        && !rule
            .exceptions
            .iter()
            .any(|e| eval(e, ev, &mut scratch.buf))
}

pub(crate) fn eval(n: &Node, ev: &Event, buf: &mut String) -> bool {
    match n {
        Node::And(v) => v.iter().all(|c| eval(c, ev, buf)),
        Node::Or(v) => v.iter().any(|c| eval(c, ev, buf)),
        Node::Not(x) => !eval(x, ev, buf),
        Node::Const(b) => *b,
        Node::Test(t) => test(t, ev, buf),
    }
}

fn test(t: &Test, ev: &Event, buf: &mut String) -> bool {
    match t.ty {
        FieldType::Num => {
            let Some(v) = fields::num(&t.field, ev) else {
                return false;
            };
            match &t.pred {
                Pred::Exists => true,
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
        FieldType::Str | FieldType::Ip => str_any(&t.field, ev, buf, &t.pred).unwrap_or(false),
    }
}

fn str_any(f: &Field, ev: &Event, buf: &mut String, pred: &Pred) -> Option<bool> {
    fields::str_any(f, ev, buf, |s| match pred {
        Pred::Exists => true,
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
    let mut out = String::with_capacity(128);
    for p in &t.parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Field(f, ty) => fields::render(f, *ty, ev, buf, &mut out),
        }
    }
    out
}
