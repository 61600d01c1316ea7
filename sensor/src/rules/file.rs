//! YAML rule files → lists, macros and rule definitions, then compilation of the whole
//! load into a [`RuleSet`].
//!
//! Uses `saphyr` with early scalar parsing off, so every scalar keeps its source text,
//! style and span: each error points at the node (or at the token inside a condition).

use std::collections::HashMap;
use std::sync::Arc;

use saphyr::{MarkedYaml, ScalarStyle, YamlData, YamlLoader};
use saphyr_parser::{Marker, Parser};

use super::attack;
use super::compile::{self, CErr, CErrKind, Compiler, MacroDef, Node};
use super::eval::Index;
use super::fields::{self, Field};
use super::parser::{self, CmpOp, Expr, Value};
use super::tests_inline::{InlineTest, TestKind};
use super::{Location, Mode, Rule, RuleError, RuleSet, RuleWarning};
use crate::alert::{Severity, TechniqueId};
use crate::event::{
    Cgroup, Container, Endpoint, Event, EventMeta, ExeInfo, File, Kind, Network, Outcome, Parent,
    Process, Service, Syscall, User,
};

pub(crate) type Y<'a> = MarkedYaml<'a>;

const ITEM_KEYS: &str = "list, macro, rule, sequence, threshold";
const LIST_KEYS: &[&str] = &["list", "items"];
const MACRO_KEYS: &[&str] = &["macro", "condition"];
const RULE_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "severity",
    "mitre",
    "tags",
    "mode",
    "condition",
    "output",
    "exceptions",
    "tests",
];
const MITRE_KEYS: &[&str] = &["tactics", "techniques"];
const EXC_KEYS: &[&str] = &["name", "fields", "values", "condition"];
const TEST_KEYS: &[&str] = &["match", "no_match"];

/// A scalar inside a file from which condition text came, for mapping byte offsets in
/// that text back to line:column.
#[derive(Debug, Clone)]
pub(crate) struct CondSrc {
    file: usize,
    pub(super) text: String,
    start: Marker,
    end: Marker,
    style: ScalarStyle,
}

struct ListDef {
    items: Vec<(String, bool, Location)>,
    loc: Location,
}

struct MacroEntry {
    expr: Option<Expr>,
    src: usize,
    loc: Location,
}

enum ExcDef {
    /// One `And` of `field = value` per row; each value has its own source.
    Rows(Vec<Vec<(String, usize)>>),
    Cond(Expr, usize),
}

struct RuleDef {
    id: String,
    name: String,
    description: String,
    severity: Severity,
    tactics: Vec<String>,
    techniques: Vec<TechniqueId>,
    tags: Vec<String>,
    mode: Mode,
    cond: Option<(Expr, usize, String)>,
    output: Option<usize>,
    exceptions: Vec<ExcDef>,
    tests: Vec<InlineTest>,
    loc: Location,
}

/// The metadata shared by rules, sequences and thresholds.
pub(super) struct Header {
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: String,
    pub severity: Option<Severity>,
    pub mode: Mode,
    pub tags: Vec<String>,
    pub tactics: Vec<String>,
    pub techniques: Vec<TechniqueId>,
    pub loc: Location,
}

pub(super) struct Loader<'f> {
    pub(super) files: &'f [(String, String)],
    pub(super) labels: Vec<Arc<str>>,
    pub(super) file: usize,
    pub(super) errors: Vec<RuleError>,
    pub(super) warnings: Vec<RuleWarning>,
    pub(super) sources: Vec<CondSrc>,
    lists: HashMap<String, ListDef>,
    pub(super) list_order: Vec<String>,
    macros: HashMap<String, MacroEntry>,
    pub(super) macro_order: Vec<String>,
    rules: Vec<RuleDef>,
    pub(super) seqs: Vec<super::sequence::SeqDef>,
    pub(super) thrs: Vec<super::threshold::ThrDef>,
    pub(super) rule_ids: HashMap<String, Location>,
}

/// Parses YAML text into documents, keeping raw scalars.
pub(crate) fn parse_yaml(text: &str) -> Result<Vec<Y<'_>>, saphyr::ScanError> {
    let mut parser = Parser::new_from_str(text);
    let mut loader: YamlLoader<'_, Y<'_>> = YamlLoader::default();
    loader.early_parse(false);
    // Bounds the damage of alias bombs in hostile files.
    loader.alias_limit(10_000);
    parser.load(&mut loader, true)?;
    if let Some(e) = loader.error() {
        return Err(e.clone());
    }
    Ok(loader.into_documents())
}

/// Scalar text of a node (`None` for collections, aliases, bad values).
pub(crate) fn scalar<'n>(n: &'n Y<'_>) -> Option<(&'n str, ScalarStyle)> {
    match &n.data {
        YamlData::Representation(s, style, _) => Some((s.as_ref(), *style)),
        _ => None,
    }
}

pub(crate) fn is_null(n: &Y<'_>) -> bool {
    match &n.data {
        YamlData::Representation(s, ScalarStyle::Plain, _) => {
            matches!(s.as_ref(), "" | "~" | "null" | "Null" | "NULL")
        }
        YamlData::BadValue => true,
        _ => false,
    }
}

pub(crate) fn describe(n: &Y<'_>) -> String {
    match &n.data {
        _ if is_null(n) => "null".into(),
        YamlData::Representation(s, ..) => format!("scalar {:?}", truncate(s)),
        YamlData::Value(_) => "a scalar".into(),
        YamlData::Sequence(_) => "a sequence".into(),
        YamlData::Mapping(_) => "a mapping".into(),
        YamlData::Tagged(t, _) => format!("a node tagged {t}"),
        YamlData::Alias(_) | YamlData::BadValue => "an invalid node".into(),
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s.to_owned()
    }
}

pub(crate) fn load(files: &[(String, String)]) -> Result<RuleSet, RuleError> {
    let mut ld = Loader {
        files,
        labels: files.iter().map(|(l, _)| Arc::from(l.as_str())).collect(),
        file: 0,
        errors: Vec::new(),
        warnings: Vec::new(),
        sources: Vec::new(),
        lists: HashMap::new(),
        list_order: Vec::new(),
        macros: HashMap::new(),
        macro_order: Vec::new(),
        rules: Vec::new(),
        seqs: Vec::new(),
        thrs: Vec::new(),
        rule_ids: HashMap::new(),
    };
    for i in 0..files.len() {
        ld.file = i;
        ld.read_file();
    }
    ld.finish()
}

impl Loader<'_> {
    pub(super) fn loc(&self, m: Marker) -> Location {
        Location {
            file: self.labels[self.file].clone(),
            line: m.line(),
            column: m.col() + 1,
        }
    }

    pub(super) fn at(&self, n: &Y<'_>) -> Location {
        self.loc(n.span.start)
    }

    pub(super) fn shape(&mut self, n: &Y<'_>, expected: &str) {
        let e = RuleError::Shape {
            loc: self.at(n),
            expected: expected.into(),
            found: describe(n),
        };
        self.errors.push(e);
    }

    fn read_file(&mut self) {
        let text = &self.files[self.file].1;
        let docs = match parse_yaml(text) {
            Ok(d) => d,
            Err(e) => {
                let loc = self.loc(*e.marker());
                self.errors.push(RuleError::Yaml {
                    loc,
                    message: e.info().to_owned(),
                });
                return;
            }
        };
        let mut docs = docs.iter().filter(|d| !is_null(d));
        let Some(doc) = docs.next() else { return };
        if let Some(extra) = docs.next() {
            let loc = self.at(extra);
            self.errors.push(RuleError::Yaml {
                loc,
                message: "more than one YAML document; expected a single sequence of items".into(),
            });
        }
        let YamlData::Sequence(items) = &doc.data else {
            self.shape(doc, "a sequence of `list`, `macro` and `rule` items");
            return;
        };
        for item in items {
            self.item(item);
        }
    }

    /// Checks a mapping's keys against `allowed`; returns (key, key node, value) triples.
    pub(super) fn keys<'n, 'a>(
        &mut self,
        n: &'n Y<'a>,
        allowed: &'static [&'static str],
        context: &'static str,
        expected: &'static str,
    ) -> Option<Vec<(&'n str, &'n Y<'a>, &'n Y<'a>)>> {
        let YamlData::Mapping(m) = &n.data else {
            self.shape(n, &format!("a mapping ({context})"));
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in m {
            match scalar(k) {
                Some((key, _)) if allowed.contains(&key) => out.push((key, k, v)),
                Some((key, _)) => {
                    let loc = self.at(k);
                    self.errors.push(RuleError::UnknownKey {
                        loc,
                        key: key.into(),
                        context,
                        expected,
                    });
                }
                None => self.shape(k, "a string key"),
            }
        }
        Some(out)
    }

    pub(super) fn get<'n, 'a>(kv: &[(&str, &'n Y<'a>, &'n Y<'a>)], key: &str) -> Option<&'n Y<'a>> {
        kv.iter().find(|(k, ..)| *k == key).map(|(_, _, v)| *v)
    }

    pub(super) fn require<'n, 'a>(
        &mut self,
        kv: &[(&str, &'n Y<'a>, &'n Y<'a>)],
        at: &Y<'_>,
        key: &'static str,
        context: &'static str,
    ) -> Option<&'n Y<'a>> {
        let v = Self::get(kv, key);
        if v.is_none() {
            let loc = self.at(at);
            self.errors
                .push(RuleError::MissingKey { loc, key, context });
        }
        v
    }

    pub(super) fn string(&mut self, n: &Y<'_>, what: &str) -> Option<String> {
        match scalar(n) {
            Some((s, _)) if !is_null(n) => Some(s.to_owned()),
            _ => {
                self.shape(n, what);
                None
            }
        }
    }

    pub(super) fn string_list(&mut self, n: &Y<'_>, what: &str) -> Vec<(String, Location)> {
        let YamlData::Sequence(v) = &n.data else {
            if !is_null(n) {
                self.shape(n, &format!("a sequence of {what}"));
            }
            return Vec::new();
        };
        v.iter()
            .filter_map(|i| self.string(i, what).map(|s| (s, self.at(i))))
            .collect()
    }

    fn item(&mut self, n: &Y<'_>) {
        let YamlData::Mapping(m) = &n.data else {
            self.shape(
                n,
                "an item mapping with a `list`, `macro`, `rule`, `sequence` or `threshold` key",
            );
            return;
        };
        let has = |k: &str| m.keys().any(|x| scalar(x).is_some_and(|(s, _)| s == k));
        if has("rule") {
            if let Some(kv) = self.keys(n, &["rule"], "rule item", "rule")
                && let Some(body) = Self::get(&kv, "rule")
            {
                self.rule(body);
            }
        } else if has("sequence") {
            if let Some(kv) = self.keys(n, &["sequence"], "sequence item", "sequence")
                && let Some(body) = Self::get(&kv, "sequence")
            {
                self.sequence(body);
            }
        } else if has("threshold") {
            if let Some(kv) = self.keys(n, &["threshold"], "threshold item", "threshold")
                && let Some(body) = Self::get(&kv, "threshold")
            {
                self.threshold(body);
            }
        } else if has("list") {
            self.list(n);
        } else if has("macro") {
            self.macro_(n);
        } else {
            let first = m.keys().next();
            match first {
                Some(k) => {
                    let key = scalar(k).map_or_else(|| describe(k), |(s, _)| s.to_owned());
                    let loc = self.at(k);
                    self.errors.push(RuleError::UnknownKey {
                        loc,
                        key,
                        context: "top-level item",
                        expected: ITEM_KEYS,
                    });
                }
                None => self.shape(
                    n,
                    "an item mapping with a `list`, `macro`, `rule`, `sequence` or `threshold` key",
                ),
            }
        }
    }

    fn list(&mut self, n: &Y<'_>) {
        let Some(kv) = self.keys(n, LIST_KEYS, "list", "list, items") else {
            return;
        };
        let name = self
            .require(&kv, n, "list", "list")
            .and_then(|v| self.string(v, "a list name"));
        let items_node = self.require(&kv, n, "items", "list");
        let Some(name) = name else { return };
        let mut items = Vec::new();
        if let Some(items_node) = items_node {
            match &items_node.data {
                YamlData::Sequence(v) => {
                    for i in v {
                        if let Some((s, style)) = scalar(i).filter(|_| !is_null(i)) {
                            items.push((s.to_owned(), style == ScalarStyle::Plain, self.at(i)));
                        } else {
                            self.shape(i, "a list item (string)");
                        }
                    }
                }
                _ if is_null(items_node) => {}
                _ => self.shape(items_node, "a sequence of list items"),
            }
        }
        let loc = self.at(n);
        if let Some(first) = self.lists.get(&name) {
            let first = first.loc.clone();
            self.errors.push(RuleError::Duplicate {
                loc,
                what: "list",
                name,
                first,
            });
            return;
        }
        self.list_order.push(name.clone());
        self.lists.insert(name, ListDef { items, loc });
    }

    fn macro_(&mut self, n: &Y<'_>) {
        let Some(kv) = self.keys(n, MACRO_KEYS, "macro", "macro, condition") else {
            return;
        };
        let name = self
            .require(&kv, n, "macro", "macro")
            .and_then(|v| self.string(v, "a macro name"));
        let cond = self.require(&kv, n, "condition", "macro");
        let (Some(name), Some(cond)) = (name, cond) else {
            return;
        };
        let parsed = self.condition(cond);
        let loc = self.at(n);
        if let Some(first) = self.macros.get(&name) {
            let first = first.loc.clone();
            self.errors.push(RuleError::Duplicate {
                loc,
                what: "macro",
                name,
                first,
            });
            return;
        }
        let (expr, src) = match parsed {
            Some((e, s)) => (Some(e), s),
            None => (None, usize::MAX),
        };
        self.macro_order.push(name.clone());
        self.macros.insert(name, MacroEntry { expr, src, loc });
    }

    /// Registers a scalar as a condition source; returns its index.
    /// The optional `output:` template of a rule, sequence or threshold (a located error when
    /// it is not a string).
    pub(super) fn output_source(&mut self, kv: &[(&str, &Y<'_>, &Y<'_>)]) -> Option<usize> {
        let o = Self::get(kv, "output")?;
        let src = self.source(o);
        if src.is_none() {
            self.shape(o, "an output template string");
        }
        src
    }

    pub(super) fn source(&mut self, n: &Y<'_>) -> Option<usize> {
        let (text, style) = scalar(n).filter(|_| !is_null(n))?;
        self.sources.push(CondSrc {
            file: self.file,
            text: text.to_owned(),
            start: n.span.start,
            end: n.span.end,
            style,
        });
        Some(self.sources.len() - 1)
    }

    /// Parses a condition node; syntax errors are recorded with their location.
    pub(super) fn condition(&mut self, n: &Y<'_>) -> Option<(Expr, usize)> {
        let Some(src) = self.source(n) else {
            self.shape(n, "a condition string");
            return None;
        };
        match parser::parse(&self.sources[src].text) {
            Ok(e) => Some((e, src)),
            Err(pe) => {
                let loc = self.src_loc(src, pe.off);
                self.errors.push(RuleError::Syntax {
                    loc,
                    message: pe.message,
                });
                None
            }
        }
    }

    pub(super) fn src_loc(&self, src: usize, off: usize) -> Location {
        let s = &self.sources[src];
        let (line, column) = locate(s, &self.files[s.file].1, off);
        Location {
            file: self.labels[s.file].clone(),
            line,
            column,
        }
    }

    fn rule(&mut self, n: &Y<'_>) {
        let Some(kv) = self.keys(n, RULE_KEYS, "rule", "id, name, description, severity, mitre, tags, mode, condition, output, exceptions, tests") else {
            return;
        };
        let before = self.errors.len();
        let Header {
            id,
            name,
            description,
            severity,
            mode,
            tags,
            tactics,
            techniques,
            loc,
        } = self.header(&kv, n, "rule");
        let cond = self
            .require(&kv, n, "condition", "rule")
            .and_then(|c| self.condition(c))
            .map(|(e, s)| {
                let text = self.sources[s].text.clone();
                (e, s, text)
            });
        let output = self.output_source(&kv);
        let exceptions = match Self::get(&kv, "exceptions") {
            Some(e) => self.exceptions(e),
            None => Vec::new(),
        };
        let tests = match Self::get(&kv, "tests") {
            Some(t) => self.tests(t),
            None => Vec::new(),
        };
        self.register_id(&kv, id.as_deref(), &loc);
        if self.errors.len() != before {
            return;
        }
        let (Some(id), Some(name), Some(severity)) = (id, name, severity) else {
            return;
        };
        self.rules.push(RuleDef {
            id,
            name,
            description,
            severity,
            tactics,
            techniques,
            tags,
            mode,
            cond,
            output,
            exceptions,
            tests,
            loc,
        });
    }

    /// The keys every alerting item shares (rule, sequence, threshold): id, name,
    /// description, severity, mode, tags, mitre. Errors are recorded; missing
    /// required values come back as `None`.
    pub(super) fn header(
        &mut self,
        kv: &[(&str, &Y<'_>, &Y<'_>)],
        n: &Y<'_>,
        context: &'static str,
    ) -> Header {
        let loc = self.at(n);
        let id = self
            .require(kv, n, "id", context)
            .and_then(|v| self.string(v, &format!("a {context} id")));
        let name = self
            .require(kv, n, "name", context)
            .and_then(|v| self.string(v, &format!("a {context} name")));
        let description = Self::get(kv, "description")
            .and_then(|v| self.string(v, "a description"))
            .unwrap_or_default();
        let severity = self.require(kv, n, "severity", context).and_then(|v| {
            let s = self.string(v, "a severity")?;
            match s.parse::<Severity>() {
                Ok(sev) if sev.as_str() == s => Some(sev),
                _ => {
                    let loc = self.at(v);
                    self.errors.push(RuleError::BadSeverity { loc, value: s });
                    None
                }
            }
        });
        let mode = match Self::get(kv, "mode") {
            None => Mode::Alert,
            Some(v) => match self.string(v, "a mode").as_deref() {
                Some("alert") => Mode::Alert,
                Some("off") => Mode::Off,
                Some(other) => {
                    let loc = self.at(v);
                    self.errors.push(RuleError::BadValue {
                        loc,
                        field: "mode".into(),
                        value: other.into(),
                        expected: "alert or off".into(),
                    });
                    Mode::Alert
                }
                None => Mode::Alert,
            },
        };
        let tags = Self::get(kv, "tags")
            .map(|v| self.string_list(v, "tags (strings)"))
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.0)
            .collect();
        let (tactics, techniques) = match Self::get(kv, "mitre") {
            Some(m) => self.mitre(m),
            None => (Vec::new(), Vec::new()),
        };
        Header {
            id,
            name,
            description,
            severity,
            mode,
            tags,
            tactics,
            techniques,
            loc,
        }
    }

    /// Rules, sequences and thresholds share one id namespace: alerts name them by id.
    pub(super) fn register_id(
        &mut self,
        kv: &[(&str, &Y<'_>, &Y<'_>)],
        id: Option<&str>,
        loc: &Location,
    ) {
        let Some(id) = id else { return };
        if let Some(first) = self.rule_ids.get(id) {
            let first = first.clone();
            let at = Self::get(kv, "id").map_or(loc.clone(), |v| self.at(v));
            self.errors.push(RuleError::Duplicate {
                loc: at,
                what: "rule id",
                name: id.to_owned(),
                first,
            });
        } else {
            self.rule_ids.insert(id.to_owned(), loc.clone());
        }
    }

    pub(super) fn mitre(&mut self, m: &Y<'_>) -> (Vec<String>, Vec<TechniqueId>) {
        let Some(kv) = self.keys(m, MITRE_KEYS, "mitre", "tactics, techniques") else {
            return (Vec::new(), Vec::new());
        };
        let mut tactics = Vec::new();
        if let Some(t) = Self::get(&kv, "tactics") {
            for (name, loc) in self.string_list(t, "tactic names") {
                if attack::TACTICS.contains(&name.as_str()) {
                    tactics.push(name);
                } else {
                    self.errors.push(RuleError::UnknownTactic { loc, name });
                }
            }
        }
        let mut techniques = Vec::new();
        if let Some(t) = Self::get(&kv, "techniques") {
            for (id, loc) in self.string_list(t, "technique ids") {
                match TechniqueId::parse(&id) {
                    Ok(tid) if attack::technique(&id).is_some() => techniques.push(tid),
                    _ => self.errors.push(RuleError::UnknownTechnique { loc, id }),
                }
            }
        }
        (tactics, techniques)
    }

    fn exceptions(&mut self, n: &Y<'_>) -> Vec<ExcDef> {
        let YamlData::Sequence(v) = &n.data else {
            self.shape(n, "a sequence of exceptions");
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in v {
            let Some(kv) = self.keys(e, EXC_KEYS, "exception", "name, fields, values, condition")
            else {
                continue;
            };
            self.require(&kv, e, "name", "exception")
                .and_then(|x| self.string(x, "an exception name"));
            let fields_n = Self::get(&kv, "fields");
            let values_n = Self::get(&kv, "values");
            let cond_n = Self::get(&kv, "condition");
            match (fields_n, values_n, cond_n) {
                (None, None, Some(c)) => {
                    if let Some((expr, src)) = self.condition(c) {
                        out.push(ExcDef::Cond(expr, src));
                    }
                }
                (Some(f), Some(vals), None) => {
                    if let Some(rows) = self.exception_rows(f, vals) {
                        out.push(ExcDef::Rows(rows));
                    }
                }
                _ => self.shape(
                    e,
                    "an exception with either `fields` and `values`, or `condition`",
                ),
            }
        }
        out
    }

    fn exception_rows(&mut self, f: &Y<'_>, vals: &Y<'_>) -> Option<Vec<Vec<(String, usize)>>> {
        let names = self.string_list(f, "field names");
        let mut ok = !names.is_empty();
        for (name, loc) in &names {
            if let Err(suggestions) = fields::lookup(name) {
                self.errors.push(RuleError::UnknownField {
                    loc: loc.clone(),
                    field: name.clone(),
                    suggestions,
                });
                ok = false;
            }
        }
        if names.is_empty() {
            self.shape(f, "a non-empty sequence of field names");
        }
        let YamlData::Sequence(rows) = &vals.data else {
            self.shape(vals, "a sequence of value tuples");
            return None;
        };
        let mut out = Vec::new();
        for row in rows {
            // A bare scalar is accepted as a 1-tuple when there is a single field.
            let cells: Vec<&Y<'_>> = match &row.data {
                YamlData::Sequence(c) => c.iter().collect(),
                _ if names.len() == 1 => vec![row],
                _ => Vec::new(),
            };
            if cells.len() != names.len() {
                self.shape(
                    row,
                    &format!("a tuple of {} values (one per field)", names.len()),
                );
                ok = false;
                continue;
            }
            let mut r = Vec::new();
            for ((name, _), cell) in names.iter().zip(cells) {
                match self.source(cell) {
                    Some(src) => r.push((name.clone(), src)),
                    None => {
                        self.shape(cell, "a scalar value");
                        ok = false;
                    }
                }
            }
            out.push(r);
        }
        ok.then_some(out)
    }

    fn tests(&mut self, n: &Y<'_>) -> Vec<InlineTest> {
        let Some(kv) = self.keys(n, TEST_KEYS, "tests", "match, no_match") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, _, v) in kv {
            let kind = if key == "match" {
                TestKind::Match
            } else {
                TestKind::NoMatch
            };
            let YamlData::Sequence(items) = &v.data else {
                if !is_null(v) {
                    self.shape(v, "a sequence of test events (field maps)");
                }
                continue;
            };
            for (index, item) in items.iter().enumerate() {
                let label = self.labels[self.file].clone();
                match event_from_node(item, &label) {
                    Ok(event) => out.push(InlineTest {
                        kind,
                        index,
                        loc: self.at(item),
                        event,
                    }),
                    Err(errs) => self.errors.extend(errs),
                }
            }
        }
        out
    }

    /// Flattens lists (items naming another list, unquoted, are expanded), detecting
    /// cycles.
    fn resolve_lists(&mut self) -> HashMap<String, Vec<String>> {
        let mut done: HashMap<String, Vec<String>> = HashMap::new();
        for name in self.list_order.clone() {
            let mut stack = Vec::new();
            self.resolve_list(&name, &mut stack, &mut done);
        }
        done
    }

    fn resolve_list(
        &mut self,
        name: &str,
        stack: &mut Vec<String>,
        done: &mut HashMap<String, Vec<String>>,
    ) -> Vec<String> {
        if let Some(v) = done.get(name) {
            return v.clone();
        }
        stack.push(name.to_owned());
        let items: Vec<(String, bool, Location)> = self
            .lists
            .get(name)
            .map(|d| d.items.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        for (text, plain, loc) in items {
            if plain && self.lists.contains_key(&text) {
                if stack.contains(&text) {
                    let start = stack.iter().position(|s| *s == text).unwrap_or(0);
                    let mut path = stack[start..].to_vec();
                    path.push(text.clone());
                    self.errors.push(RuleError::Cycle {
                        loc,
                        what: "list",
                        path: path.join(" -> "),
                    });
                    continue;
                }
                out.extend(self.resolve_list(&text, stack, done));
            } else {
                out.push(text);
            }
        }
        stack.pop();
        done.insert(name.to_owned(), out.clone());
        out
    }

    pub(super) fn cerr(&self, e: CErr) -> RuleError {
        let loc = self.src_loc(e.src, e.off);
        match e.kind {
            CErrKind::Uncaptured(name, available) => RuleError::UncapturedRef {
                loc,
                name,
                available,
            },
            CErrKind::UnknownField(field, suggestions) => RuleError::UnknownField {
                loc,
                field,
                suggestions,
            },
            CErrKind::BadOperator {
                op,
                field,
                ty,
                expected,
            } => RuleError::BadOperator {
                loc,
                op: op.into(),
                field,
                ty,
                expected,
            },
            CErrKind::BadValue {
                field,
                value,
                expected,
            } => RuleError::BadValue {
                loc,
                field,
                value,
                expected,
            },
            CErrKind::BadRegex(pattern, message) => RuleError::BadRegex {
                loc,
                pattern,
                message,
            },
            CErrKind::BadGlob(pattern, message) => RuleError::BadGlob {
                loc,
                pattern,
                message,
            },
            CErrKind::UnknownName(what, name, suggestions) => RuleError::UnknownName {
                loc,
                what,
                name,
                suggestions,
            },
            CErrKind::Cycle(path) => RuleError::Cycle {
                loc,
                what: "macro",
                path,
            },
        }
    }

    fn finish(mut self) -> Result<RuleSet, RuleError> {
        let lists = self.resolve_lists();
        let macros: HashMap<String, MacroDef> = self
            .macros
            .iter()
            .filter_map(|(k, m)| {
                let expr = m.expr.clone()?;
                Some((k.clone(), MacroDef { expr, src: m.src }))
            })
            .collect();
        // Macros with syntax errors are still names (so references are not "unknown"),
        // they just compile to nothing; their error is already recorded.
        let broken: Vec<String> = self
            .macros
            .iter()
            .filter(|(_, m)| m.expr.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        let mut macros = macros;
        for b in broken {
            macros.insert(
                b,
                MacroDef {
                    expr: Expr::Or(Vec::new()),
                    src: usize::MAX,
                },
            );
        }
        let mut c = Compiler::new(&lists, &macros);
        for m in &self.macro_order {
            c.compile_macro(m);
        }
        let defs = std::mem::take(&mut self.rules);
        let mut rules = Vec::with_capacity(defs.len());
        for d in defs {
            let condition = d
                .cond
                .as_ref()
                .and_then(|(e, src, _)| c.compile(e, *src))
                .unwrap_or(Node::Const(false));
            let mut exceptions = Vec::new();
            for ex in &d.exceptions {
                let node = match ex {
                    ExcDef::Cond(e, src) => c.compile(e, *src),
                    ExcDef::Rows(rows) => {
                        let mut alts = Vec::new();
                        for row in rows {
                            let conj: Vec<Node> = row
                                .iter()
                                .filter_map(|(field, src)| {
                                    let value = Value {
                                        text: self.sources[*src].text.clone(),
                                        quoted: true,
                                        off: 0,
                                    };
                                    let e = Expr::Cmp {
                                        field: field.clone(),
                                        field_off: 0,
                                        op: CmpOp::Eq,
                                        op_off: 0,
                                        values: vec![value],
                                    };
                                    c.compile(&e, *src)
                                })
                                .collect();
                            alts.push(Node::And(conj.into()));
                        }
                        Some(compile::simplify(Node::Or(alts.into())))
                    }
                };
                exceptions.extend(node);
            }
            let output = match d.output {
                Some(src) => match compile::parse_template(&self.sources[src].text) {
                    Ok(t) => t,
                    Err((off, field, suggestions)) => {
                        let loc = self.src_loc(src, off);
                        self.errors.push(RuleError::UnknownField {
                            loc,
                            field,
                            suggestions,
                        });
                        compile::Template::default()
                    }
                },
                None => compile::Template {
                    parts: vec![compile::Part::Lit(d.name.clone())],
                },
            };
            self.warn_mitre(&d.id, &d.tactics, &d.techniques, &d.loc);
            let condition_text = d.cond.map(|c| c.2).unwrap_or_default();
            rules.push(Arc::new(Rule {
                id: d.id,
                name: d.name,
                description: d.description,
                severity: d.severity,
                tactics: d.tactics,
                techniques: d.techniques,
                tags: d.tags,
                mode: d.mode,
                condition_text,
                location: d.loc,
                condition,
                exceptions,
                output,
                tests: d.tests,
            }));
        }
        let sequences = self.compile_sequences(&mut c);
        let thresholds = self.compile_thresholds(&mut c);
        let cerrs = std::mem::take(&mut c.errors);
        for e in cerrs {
            let e = self.cerr(e);
            self.errors.push(e);
        }
        if !self.errors.is_empty() {
            let mut seen = std::collections::HashSet::new();
            let errors: Vec<RuleError> = self
                .errors
                .into_iter()
                .filter(|e| seen.insert(e.to_string()))
                .collect();
            return Err(RuleError::from_vec(errors));
        }
        let index = Index::build(&rules);
        Ok(RuleSet {
            rules,
            index,
            warnings: self.warnings,
            sequences,
            thresholds,
        })
    }

    /// Warn-level: tactics none of the techniques belong to, and techniques whose
    /// tactics are all missing from the rule.
    pub(super) fn warn_mitre(
        &mut self,
        id: &str,
        tactics: &[String],
        techniques: &[TechniqueId],
        loc: &Location,
    ) {
        if tactics.is_empty() || techniques.is_empty() {
            return;
        }
        let techs: Vec<attack::Technique> = techniques
            .iter()
            .filter_map(|t| attack::technique(t.as_str()))
            .collect();
        for tac in tactics {
            if !techs.iter().any(|t| t.tactics.contains(&tac.as_str())) {
                self.warnings.push(RuleWarning {
                    loc: loc.clone(),
                    message: format!(
                        "rule {}: tactic `{tac}` fits none of its techniques ({})",
                        id,
                        techniques
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        for t in &techs {
            if !t.tactics.iter().any(|x| tactics.iter().any(|y| y == x)) {
                self.warnings.push(RuleWarning {
                    loc: loc.clone(),
                    message: format!(
                        "rule {}: technique {} ({}) belongs to {}, none of which is listed",
                        id,
                        t.id,
                        t.name,
                        t.tactics.join(", ")
                    ),
                });
            }
        }
    }
}

/// Maps a byte offset in a scalar's (unfolded) text to 1-based line:column in the file.
///
/// Single-line plain/quoted scalars map exactly (modulo escapes in double quotes).
/// For multi-line and block scalars, YAML folding changed whitespace only, so the
/// token at `off` is found by its occurrence count in the raw source.
fn locate(s: &CondSrc, file_text: &str, off: usize) -> (usize, usize) {
    let off = off.min(s.text.len());
    let quote = usize::from(matches!(
        s.style,
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
    ));
    let single_line = s.start.line() == s.end.line()
        && !matches!(s.style, ScalarStyle::Literal | ScalarStyle::Folded);
    if single_line {
        let chars = s.text[..off].chars().count();
        return (s.start.line(), s.start.col() + 1 + quote + chars);
    }
    // Token at `off`; for an offset at the end, fall back to the last token.
    let (anchor, extra) = match s.text[off..].split_whitespace().next() {
        Some(_) => (off, 0),
        None => {
            let trimmed = s.text[..off].trim_end();
            let start = trimmed.rfind(char::is_whitespace).map_or(0, |i| i + 1);
            (start, trimmed[start..].chars().count())
        }
    };
    let token = s.text[anchor..].split_whitespace().next().unwrap_or("");
    if token.is_empty() {
        return (s.start.line(), s.start.col() + 1);
    }
    let nth = s.text[..anchor].matches(token).count();
    let byte_of = |ci: usize| {
        file_text
            .char_indices()
            .nth(ci)
            .map_or(file_text.len(), |(b, _)| b)
    };
    let mut from = byte_of(s.start.index());
    let to = byte_of(s.end.index()).max(from);
    if matches!(s.style, ScalarStyle::Literal | ScalarStyle::Folded) {
        // Skip the `>`/`|` header line so the indicator is not taken for an operator.
        if let Some(nl) = file_text[from..to].find('\n') {
            from += nl + 1;
        }
    }
    let region = &file_text[from..to];
    let Some((rel, _)) = region.match_indices(token).nth(nth) else {
        return (s.start.line(), s.start.col() + 1);
    };
    let abs = from + rel;
    let line = file_text[..abs].matches('\n').count() + 1;
    let line_start = file_text[..abs].rfind('\n').map_or(0, |i| i + 1);
    let col = file_text[line_start..abs].chars().count() + 1 + extra;
    (line, col)
}

/// Builds an [`Event`] from a YAML map of condition field names to values, e.g.
/// `{evt.type: exec, proc.exe: /bin/bash, proc.args: [-i]}`. Unspecified fields stay
/// empty. Each field is set so that the same-named condition field reads back the
/// given value (`proc.args` sets `process.args[1..]`; `argv0` comes from `proc.argv0`,
/// else `proc.name`, else the basename of `proc.exe`). `evt.kind` defaults from
/// `evt.type`. Derived fields (`proc.cmdline` aside) cannot be set.
pub fn event_from_fields(yaml_map: &str, file_label: &str) -> Result<Event, RuleError> {
    let label: Arc<str> = Arc::from(file_label);
    let docs = parse_yaml(yaml_map).map_err(|e| RuleError::Yaml {
        loc: Location {
            file: label.clone(),
            line: e.marker().line(),
            column: e.marker().col() + 1,
        },
        message: e.info().to_owned(),
    })?;
    let Some(doc) = docs.first() else {
        return Err(RuleError::Shape {
            loc: Location {
                file: label,
                line: 1,
                column: 1,
            },
            expected: "a mapping of field names to values".into(),
            found: "nothing".into(),
        });
    };
    event_from_node(doc, &label).map_err(RuleError::from_vec)
}

/// Infers `event.kind` from `event.action` for test events.
fn kind_for_action(a: &str) -> Kind {
    match a {
        "exec" => Kind::Exec,
        "fork" => Kind::Fork,
        "exit" => Kind::Exit,
        "connect" | "bind" | "listen" | "accept" | "accept4" => Kind::Network,
        a if a.starts_with("set")
            || matches!(
                a,
                "capset"
                    | "ptrace"
                    | "init_module"
                    | "finit_module"
                    | "mount"
                    | "umount2"
                    | "unshare"
                    | "bpf"
                    | "chroot"
                    | "pivot_root"
                    | "memfd_create"
            ) =>
        {
            Kind::Privilege
        }
        _ => Kind::File,
    }
}

pub(crate) fn blank_event() -> Event {
    Event {
        timestamp: "1970-01-01T00:00:00.000000000Z".into(),
        event: EventMeta {
            kind: Kind::Exec,
            action: String::new(),
            outcome: None,
            sequence: 0,
            boot_ns: 0,
        },
        process: Process::default(),
        user: User::default(),
        container: None,
        service: None,
        cgroup: Cgroup::default(),
        file: None,
        source: None,
        destination: None,
        network: None,
        syscall: None,
    }
}

pub(super) fn event_from_node(n: &Y<'_>, file: &Arc<str>) -> Result<Event, Vec<RuleError>> {
    event_and_time(n, file).map(|(e, _)| e)
}

/// Builds a test event; also accepts two keys that are not condition fields, for
/// correlation tests: `at: 30s` (the event's `event.boot_ns`, returned as `Some` so
/// the caller knows it was given) and `proc.apids: [p1, p2]` (pids of the ancestors
/// above the parent, nearest first, pairing with `proc.ancestors`/`proc.aexe`).
pub(super) fn event_and_time(
    n: &Y<'_>,
    file: &Arc<str>,
) -> Result<(Event, Option<u64>), Vec<RuleError>> {
    let at = |m: Marker| Location {
        file: file.clone(),
        line: m.line(),
        column: m.col() + 1,
    };
    let mut errors = Vec::new();
    let YamlData::Mapping(m) = &n.data else {
        return Err(vec![RuleError::Shape {
            loc: at(n.span.start),
            expected: "a mapping of field names to values".into(),
            found: describe(n),
        }]);
    };
    let mut ev = blank_event();
    let mut kind_set = false;
    let mut argv0: Option<String> = None;
    let mut args: Option<Vec<String>> = None;
    let mut cmdline: Option<String> = None;
    let mut pname: Option<String> = None;
    let mut ancestors: Vec<String> = Vec::new();
    let mut aexe: Vec<String> = Vec::new();
    let mut comm_set = false;
    let mut name: Option<String> = None;
    let mut time: Option<u64> = None;
    let mut apids: Vec<u32> = Vec::new();
    for (k, v) in m {
        let Some((key, _)) = scalar(k) else {
            errors.push(RuleError::Shape {
                loc: at(k.span.start),
                expected: "a field name".into(),
                found: describe(k),
            });
            continue;
        };
        if key == "at" {
            match scalar(v).and_then(|(s, _)| super::sequence::parse_duration(s)) {
                Some(ns) => time = Some(ns),
                None => errors.push(RuleError::BadDuration {
                    loc: at(v.span.start),
                    value: scalar(v).map_or_else(|| describe(v), |(s, _)| s.to_owned()),
                }),
            }
            continue;
        }
        if key == "proc.apids" {
            let items: Vec<&Y<'_>> = match &v.data {
                YamlData::Sequence(items) => items.iter().collect(),
                _ => vec![v],
            };
            for i in items {
                match scalar(i).and_then(|(s, _)| s.parse::<u32>().ok()) {
                    Some(p) => apids.push(p),
                    None => errors.push(RuleError::BadValue {
                        loc: at(i.span.start),
                        field: key.into(),
                        value: scalar(i).map_or_else(|| describe(i), |(s, _)| s.to_owned()),
                        expected: "a pid (unsigned integer)".into(),
                    }),
                }
            }
            continue;
        }
        let def = match fields::lookup(key) {
            Ok(d) => d,
            Err(suggestions) => {
                errors.push(RuleError::UnknownField {
                    loc: at(k.span.start),
                    field: key.into(),
                    suggestions,
                });
                continue;
            }
        };
        // All values of the entry, as text.
        let values: Vec<String> = match &v.data {
            YamlData::Sequence(items) if def.multi => {
                let mut out = Vec::new();
                for i in items {
                    match scalar(i) {
                        Some((s, _)) => out.push(s.to_owned()),
                        None => errors.push(RuleError::Shape {
                            loc: at(i.span.start),
                            expected: format!("a scalar element of `{key}`"),
                            found: describe(i),
                        }),
                    }
                }
                out
            }
            _ => match scalar(v) {
                Some((s, _)) => vec![s.to_owned()],
                None => {
                    errors.push(RuleError::Shape {
                        loc: at(v.span.start),
                        expected: if def.multi {
                            format!("a scalar or sequence of scalars for `{key}`")
                        } else {
                            format!("a scalar for `{key}`")
                        },
                        found: describe(v),
                    });
                    continue;
                }
            },
        };
        let one = values.first().cloned().unwrap_or_default();
        let vloc = at(v.span.start);
        let mut bad = |expected: &str| {
            errors.push(RuleError::BadValue {
                loc: vloc.clone(),
                field: key.into(),
                value: one.clone(),
                expected: expected.into(),
            });
        };
        let int = |s: &str| fields::parse_int(s);
        macro_rules! num {
            ($t:ty) => {
                match int(&one).and_then(|n| <$t>::try_from(n).ok()) {
                    Some(n) => n,
                    None => {
                        bad(concat!("an integer fitting ", stringify!($t)));
                        continue;
                    }
                }
            };
        }
        macro_rules! flag {
            () => {
                match one.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        bad("true or false");
                        continue;
                    }
                }
            };
        }
        let p = &mut ev.process;
        match &def.field {
            Field::EvtType => {
                ev.event.action = one.clone();
                if !kind_set {
                    ev.event.kind = kind_for_action(&one);
                }
            }
            Field::EvtKind => match fields::KIND_NAMES.iter().position(|k| *k == one) {
                Some(i) => {
                    ev.event.kind = [
                        Kind::Exec,
                        Kind::Fork,
                        Kind::Exit,
                        Kind::File,
                        Kind::Network,
                        Kind::Privilege,
                    ][i];
                    kind_set = true;
                }
                None => bad("one of exec, fork, exit, file, network, privilege"),
            },
            Field::EvtOutcome => {
                ev.event.outcome = match one.as_str() {
                    "success" => Some(Outcome::Success),
                    "failure" => Some(Outcome::Failure),
                    "unknown" => Some(Outcome::Unknown),
                    "" => None,
                    _ => {
                        bad("success or failure");
                        continue;
                    }
                }
            }
            Field::EvtRet => {
                let r = num!(i64);
                syscall(&mut ev).ret = r;
            }
            Field::ProcPid => p.pid = num!(u32),
            Field::ProcPpid => parent(p).pid = num!(u32),
            Field::ProcName => name = Some(one),
            Field::ProcComm => {
                p.name = one;
                comm_set = true;
            }
            Field::ProcExe => p.executable = Some(one),
            Field::ProcArgs => args = Some(values),
            Field::ProcArgv0 => argv0 = Some(one),
            Field::ProcCmdline => cmdline = Some(one),
            Field::ProcArgsCount => p.args_count = Some(num!(u32)),
            Field::ProcCwd => p.working_directory = Some(one),
            Field::ProcStdin => p.stdio.get_or_insert_with(Default::default).stdin = one,
            Field::ProcStdout => p.stdio.get_or_insert_with(Default::default).stdout = one,
            Field::ProcStderr => p.stdio.get_or_insert_with(Default::default).stderr = one,
            Field::ProcPname => pname = Some(one),
            Field::ProcPexe => parent(p).executable = Some(one),
            Field::ProcAncestors => ancestors = values,
            Field::ProcAexe => aexe = values,
            Field::ProcExeMemfd => p.exe.get_or_insert_with(ExeInfo::default).memfd = flag!(),
            Field::ProcExeDeleted => p.exe.get_or_insert_with(ExeInfo::default).deleted = flag!(),
            Field::UserUid => ev.user.id = num!(u32),
            Field::UserEuid => ev.user.effective_id = num!(u32),
            Field::UserGid => ev.user.group_id = num!(u32),
            Field::UserName => ev.user.name = Some(one),
            Field::FilePath => file_mut(&mut ev).path = Some(one),
            Field::FileTarget => file_mut(&mut ev).target_path = Some(one),
            Field::FileMode => file_mut(&mut ev).mode = Some(one),
            Field::FileModeBits => match i64::from_str_radix(one.trim_start_matches("0o"), 8) {
                Ok(n) => file_mut(&mut ev).mode = Some(format!("{n:o}")),
                Err(_) => bad("an octal number"),
            },
            Field::FileFlags => file_mut(&mut ev).flag_names = values,
            Field::FileWrite => {
                let w = flag!();
                let f = file_mut(&mut ev);
                if f.flag_names.is_empty() {
                    f.flag_names = vec![if w { "O_WRONLY" } else { "O_RDONLY" }.to_owned()];
                }
            }
            Field::NetDip | Field::NetSip => {
                if compile::Cidr::parse(&one).is_none() || one.contains('/') {
                    bad("an IP address");
                    continue;
                }
                let e = if def.field == Field::NetDip {
                    ev.destination.get_or_insert_with(Endpoint::default)
                } else {
                    ev.source.get_or_insert_with(Endpoint::default)
                };
                e.ip = Some(one);
            }
            Field::NetDport => {
                ev.destination.get_or_insert_with(Endpoint::default).port = Some(num!(u16))
            }
            Field::NetSport => {
                ev.source.get_or_insert_with(Endpoint::default).port = Some(num!(u16))
            }
            Field::NetFamily => ev.network.get_or_insert_with(Network::default).family = Some(one),
            Field::NetDaddr => {
                ev.destination.get_or_insert_with(Endpoint::default).address = Some(one)
            }
            Field::ContainerId => container(&mut ev).id = one,
            Field::ContainerRuntime => container(&mut ev).runtime = one,
            Field::PodUid => container(&mut ev).pod_uid = Some(one),
            Field::ServiceName => ev.service = Some(Service { name: one }),
            Field::CgroupPath => ev.cgroup.path = Some(one),
            Field::SyscallArg(arg) => {
                let n = num!(i64);
                syscall(&mut ev)
                    .args
                    .insert(arg.to_string(), serde_json::Value::from(n));
            }
            Field::SyscallStr => syscall(&mut ev).strings = values,
            Field::NetDipPrivate => bad("nothing: derived field, set net.dip instead"),
        }
    }
    let p = &mut ev.process;
    if let Some(n) = name {
        if comm_set {
            // proc.name reads the executable's basename first; keep both consistent.
            if p.executable.is_none() {
                p.executable = Some(n);
            }
        } else {
            p.name = n;
        }
    }
    if let Some(pn) = pname {
        parent(p).name = Some(pn);
    }
    let n = ancestors.len().max(aexe.len()).max(apids.len());
    for i in 0..n {
        p.ancestry.push(Parent {
            pid: apids.get(i).copied().unwrap_or(0),
            name: ancestors.get(i).cloned(),
            executable: aexe.get(i).cloned(),
        });
    }
    if args.is_some() || argv0.is_some() || cmdline.is_some() {
        let a0 = argv0.unwrap_or_else(|| {
            if !p.name.is_empty() {
                p.name.clone()
            } else {
                p.executable
                    .as_deref()
                    .map(|e| e.rsplit('/').next().unwrap_or(e).to_owned())
                    .unwrap_or_default()
            }
        });
        p.args = match (args, cmdline) {
            (Some(rest), _) => std::iter::once(a0).chain(rest).collect(),
            (None, Some(c)) => c.split_whitespace().map(str::to_owned).collect(),
            (None, None) => vec![a0],
        };
    }
    if let Some(t) = time {
        ev.event.boot_ns = t;
    }
    if errors.is_empty() {
        Ok((ev, time))
    } else {
        Err(errors)
    }
}

fn parent(p: &mut Process) -> &mut Parent {
    p.parent.get_or_insert_with(Parent::default)
}

fn file_mut(ev: &mut Event) -> &mut File {
    ev.file.get_or_insert_with(File::default)
}

fn container(ev: &mut Event) -> &mut Container {
    ev.container.get_or_insert_with(|| Container {
        id: String::new(),
        runtime: String::new(),
        pod_uid: None,
        name: None,
        image: None,
    })
}

fn syscall(ev: &mut Event) -> &mut Syscall {
    let action = ev.event.action.clone();
    ev.syscall.get_or_insert_with(|| Syscall {
        name: action,
        ret: 0,
        args: serde_json::Map::new(),
        strings: Vec::new(),
    })
}
