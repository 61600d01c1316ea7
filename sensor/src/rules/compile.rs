//! AST → executable nodes: macro inlining, list expansion, type checking, and building
//! every matcher (regex, glob, CIDR, sets) once at load time.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use regex::Regex;

use super::fields::{self, Field, FieldDef, FieldType};
use super::parser::{CmpOp, Expr, Value};

/// Lists bigger than this are matched through a hash set instead of a linear scan.
const SET_THRESHOLD: usize = 8;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Const(bool),
    Test(Box<Test>),
}

#[derive(Debug, Clone)]
pub(crate) struct Test {
    pub field: Field,
    pub ty: FieldType,
    pub pred: Pred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ord3 {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub(crate) enum StrSet {
    Small(Box<[Box<str>]>),
    Hash(HashSet<Box<str>>),
}

impl StrSet {
    fn new(items: Vec<String>) -> StrSet {
        if items.len() > SET_THRESHOLD {
            StrSet::Hash(items.into_iter().map(String::into_boxed_str).collect())
        } else {
            StrSet::Small(items.into_iter().map(String::into_boxed_str).collect())
        }
    }

    pub fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| &**x == s),
            StrSet::Hash(h) => h.contains(s),
        }
    }

    /// The members, for the evaluator index.
    pub fn items(&self) -> Vec<&str> {
        match self {
            StrSet::Small(v) => v.iter().map(|s| &**s).collect(),
            StrSet::Hash(h) => h.iter().map(|s| &**s).collect(),
        }
    }
}

/// An address range; a plain address is a full-length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub net: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // Compare v4-mapped v6 addresses (`::ffff:10.0.0.1`) as v4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Exists,
    StrEq(Box<str>),
    StrIn(StrSet),
    Contains(Box<str>),
    /// Case-insensitive substring, compiled to `(?i)` + escaped literal.
    IContains(Regex),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    /// Glob translated to an anchored regex.
    Glob(Regex),
    Regex(Regex),
    /// Path prefix: equal to an item or below it.
    Pmatch(Box<[Box<str>]>),
    IpIn(Box<[Cidr]>),
    NumEq(i64),
    NumIn(Box<[i64]>),
    NumCmp(Ord3, i64),
    BoolEq(bool),
    /// Equal to the value a sequence instance captured in this slot (`file.path = $path`).
    Capture(usize),
}

/// A compile error at a byte offset of some condition source; the caller turns it into
/// a located [`super::RuleError`].
#[derive(Debug, Clone)]
pub(crate) struct CErr {
    pub src: usize,
    pub off: usize,
    pub kind: CErrKind,
}

#[derive(Debug, Clone)]
pub(crate) enum CErrKind {
    UnknownField(String, Vec<String>),
    BadOperator {
        op: &'static str,
        field: String,
        ty: &'static str,
        expected: &'static str,
    },
    BadValue {
        field: String,
        value: String,
        expected: String,
    },
    BadRegex(String, String),
    BadGlob(String, String),
    UnknownName(&'static str, String, Vec<String>),
    Cycle(String),
    /// `$name` not captured by an earlier step: (name, names available there).
    Uncaptured(String, Vec<String>),
}

/// A macro as parsed, with the index of its condition source (for error locations).
#[derive(Debug)]
pub(crate) struct MacroDef {
    pub expr: Expr,
    pub src: usize,
}

enum MacroState {
    Visiting,
    /// `None` when the macro failed to compile (its errors are already reported).
    Done(Option<Node>),
}

/// Compilation context shared by all rules of a load: resolved lists and macros.
pub(crate) struct Compiler<'a> {
    pub lists: &'a HashMap<String, Vec<String>>,
    pub macros: &'a HashMap<String, MacroDef>,
    state: HashMap<String, MacroState>,
    stack: Vec<String>,
    pub errors: Vec<CErr>,
    /// Inside a sequence step: the names captured by earlier steps, in slot order.
    /// `None` elsewhere, where `$word` stays a plain literal (as it always was).
    pub captures: Option<Vec<String>>,
}

impl<'a> Compiler<'a> {
    pub fn new(
        lists: &'a HashMap<String, Vec<String>>,
        macros: &'a HashMap<String, MacroDef>,
    ) -> Self {
        Compiler {
            lists,
            macros,
            state: HashMap::new(),
            stack: Vec::new(),
            errors: Vec::new(),
            captures: None,
        }
    }

    /// Compiles an expression from condition source `src`; `None` if it had errors.
    pub fn compile(&mut self, e: &Expr, src: usize) -> Option<Node> {
        let before = self.errors.len();
        let n = self.node(e, src);
        (self.errors.len() == before).then(|| simplify(n))
    }

    /// Compiles a macro (memoized) so unused macros are validated too.
    pub fn compile_macro(&mut self, name: &str) -> Option<Node> {
        if let Some(MacroState::Done(n)) = self.state.get(name) {
            return n.clone();
        }
        let def = self.macros.get(name)?;
        self.state.insert(name.to_owned(), MacroState::Visiting);
        self.stack.push(name.to_owned());
        let n = self.compile(&def.expr, def.src);
        self.stack.pop();
        self.state
            .insert(name.to_owned(), MacroState::Done(n.clone()));
        n
    }

    fn err(&mut self, src: usize, off: usize, kind: CErrKind) -> Node {
        self.errors.push(CErr { src, off, kind });
        Node::Const(false)
    }

    fn node(&mut self, e: &Expr, src: usize) -> Node {
        match e {
            Expr::And(v) => Node::And(v.iter().map(|x| self.node(x, src)).collect()),
            Expr::Or(v) => Node::Or(v.iter().map(|x| self.node(x, src)).collect()),
            Expr::Not(x) => Node::Not(Box::new(self.node(x, src))),
            Expr::Macro { name, off } => self.macro_ref(name, src, *off),
            Expr::Exists { field, field_off } => match self.field(field, src, *field_off) {
                Some(def) => test(def, Pred::Exists),
                None => Node::Const(false),
            },
            Expr::Cmp {
                field,
                field_off,
                op,
                op_off,
                values,
            } => {
                let Some(def) = self.field(field, src, *field_off) else {
                    return Node::Const(false);
                };
                self.cmp(def, field, *op, *op_off, values, src)
            }
        }
    }

    fn macro_ref(&mut self, name: &str, src: usize, off: usize) -> Node {
        if !self.macros.contains_key(name) {
            let sugg = close(name, self.macros.keys().map(String::as_str));
            return self.err(src, off, CErrKind::UnknownName("macro", name.into(), sugg));
        }
        if let Some(MacroState::Visiting) = self.state.get(name) {
            let start = self.stack.iter().position(|s| s == name).unwrap_or(0);
            let mut path: Vec<&str> = self.stack[start..].iter().map(String::as_str).collect();
            path.push(name);
            let path = path.join(" -> ");
            return self.err(src, off, CErrKind::Cycle(path));
        }
        // A failed macro already reported its own errors; the reference just fails.
        self.compile_macro(name).unwrap_or(Node::Const(false))
    }

    fn field(&mut self, name: &str, src: usize, off: usize) -> Option<FieldDef> {
        match fields::lookup(name) {
            Ok(d) => Some(d),
            Err(sugg) => {
                self.err(src, off, CErrKind::UnknownField(name.into(), sugg));
                None
            }
        }
    }

    /// Expands `in (...)` / `pmatch (...)` items: bare words naming a list are replaced
    /// by its items; other words are literals. A bare word with an underscore within
    /// two edits of a list name is an error (almost always a typo'd list name, which
    /// would otherwise silently become a literal); quote it to use it literally.
    fn expand(&mut self, values: &[Value], src: usize) -> Option<Vec<(String, usize)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for v in values {
            if !v.quoted {
                if let Some(items) = self.lists.get(&v.text) {
                    out.extend(items.iter().map(|i| (i.clone(), v.off)));
                    continue;
                }
                let near: Vec<String> = self
                    .lists
                    .keys()
                    .filter(|k| v.text.contains('_') && strsim::levenshtein(k, &v.text) <= 2)
                    .cloned()
                    .collect();
                if !near.is_empty() {
                    self.err(
                        src,
                        v.off,
                        CErrKind::UnknownName("list", v.text.clone(), near),
                    );
                    ok = false;
                    continue;
                }
            }
            out.push((v.text.clone(), v.off));
        }
        ok.then_some(out)
    }

    fn cmp(
        &mut self,
        def: FieldDef,
        fname: &str,
        op: CmpOp,
        op_off: usize,
        values: &[Value],
        src: usize,
    ) -> Node {
        use CmpOp as O;
        if let Some(node) = self.capture_ref(&def, fname, op, op_off, values, src) {
            return node;
        }
        let allowed = match def.ty {
            FieldType::Str | FieldType::Ip => !matches!(op, O::Lt | O::Le | O::Gt | O::Ge),
            FieldType::Num => matches!(op, O::Eq | O::Ne | O::Lt | O::Le | O::Gt | O::Ge | O::In),
            FieldType::Bool => matches!(op, O::Eq | O::Ne),
        };
        if !allowed {
            let expected = match def.ty {
                FieldType::Str | FieldType::Ip => {
                    "string fields support =, !=, in, contains, icontains, startswith, endswith, glob, regex, pmatch, exists"
                }
                FieldType::Num => "numeric fields support =, !=, <, <=, >, >=, in, exists",
                FieldType::Bool => "boolean fields support = true|false, != true|false, exists",
            };
            return self.err(
                src,
                op_off,
                CErrKind::BadOperator {
                    op: op.as_str(),
                    field: fname.into(),
                    ty: def.ty.name(def.multi),
                    expected,
                },
            );
        }
        let items = if matches!(op, O::In | O::Pmatch) {
            match self.expand(values, src) {
                Some(i) => i,
                None => return Node::Const(false),
            }
        } else {
            values.iter().map(|v| (v.text.clone(), v.off)).collect()
        };
        let negate = op == O::Ne;
        let pred = match self.pred(&def, fname, op, items, src) {
            Some(p) => p,
            None => return Node::Const(false),
        };
        // `!=` is the negation of `=`: with "missing = false" and "any element" semantics
        // this yields exactly "missing or no element equals".
        let t = test(def, pred);
        if negate { Node::Not(Box::new(t)) } else { t }
    }

    /// `field = $name` / `field != $name` inside a sequence step. `None` when the
    /// comparison has no `$` value (or we are not compiling a step).
    fn capture_ref(
        &mut self,
        def: &FieldDef,
        fname: &str,
        op: CmpOp,
        op_off: usize,
        values: &[Value],
        src: usize,
    ) -> Option<Node> {
        let caps = self.captures.as_ref()?;
        let dollar = values
            .iter()
            .find(|v| !v.quoted && v.text.len() > 1 && v.text.starts_with('$'))?;
        let name = &dollar.text[1..];
        let Some(slot) = caps.iter().position(|c| c == name) else {
            let avail = caps.clone();
            return Some(self.err(
                src,
                dollar.off,
                CErrKind::Uncaptured(name.to_owned(), avail),
            ));
        };
        // Only plain equality is meaningful against a per-instance value; anything
        // else would silently compare with the literal text `$name`.
        let single = values.len() == 1 && matches!(op, CmpOp::Eq | CmpOp::Ne);
        if !single || def.ty == FieldType::Bool {
            return Some(self.err(
                src,
                op_off,
                CErrKind::BadOperator {
                    op: op.as_str(),
                    field: fname.into(),
                    ty: def.ty.name(def.multi),
                    expected: "a captured value ($name) can only be compared with = or != on string, number and IP fields",
                },
            ));
        }
        let t = test(def.clone(), Pred::Capture(slot));
        Some(if op == CmpOp::Ne {
            Node::Not(Box::new(t))
        } else {
            t
        })
    }

    fn bad(&mut self, src: usize, off: usize, field: &str, value: &str, expected: &str) {
        self.err(
            src,
            off,
            CErrKind::BadValue {
                field: field.into(),
                value: value.into(),
                expected: expected.into(),
            },
        );
    }

    fn pred(
        &mut self,
        def: &FieldDef,
        fname: &str,
        op: CmpOp,
        items: Vec<(String, usize)>,
        src: usize,
    ) -> Option<Pred> {
        use CmpOp as O;
        let first = items.first().cloned().unwrap_or_default();
        match def.ty {
            FieldType::Num => {
                let octal = def.field == Field::FileModeBits;
                let mut nums = Vec::with_capacity(items.len());
                for (t, off) in &items {
                    let n = if octal {
                        i64::from_str_radix(t.trim_start_matches("0o"), 8).ok()
                    } else {
                        fields::parse_int(t)
                    };
                    match n {
                        Some(n) => nums.push(n),
                        None => {
                            let exp = if octal {
                                "an octal number such as 4755"
                            } else {
                                "an integer (decimal, 0x hex or 0o octal)"
                            };
                            self.bad(src, *off, fname, t, exp);
                            return None;
                        }
                    }
                }
                let n = nums.first().copied().unwrap_or(0);
                Some(match op {
                    O::In => Pred::NumIn(nums.into()),
                    O::Eq | O::Ne => Pred::NumEq(n),
                    O::Lt => Pred::NumCmp(Ord3::Lt, n),
                    O::Le => Pred::NumCmp(Ord3::Le, n),
                    O::Gt => Pred::NumCmp(Ord3::Gt, n),
                    _ => Pred::NumCmp(Ord3::Ge, n),
                })
            }
            FieldType::Bool => match first.0.as_str() {
                "true" => Some(Pred::BoolEq(true)),
                "false" => Some(Pred::BoolEq(false)),
                other => {
                    self.bad(src, first.1, fname, other, "true or false");
                    None
                }
            },
            FieldType::Ip if matches!(op, O::Eq | O::Ne | O::In) => {
                let mut cidrs = Vec::with_capacity(items.len());
                for (t, off) in &items {
                    match Cidr::parse(t) {
                        Some(c) => cidrs.push(c),
                        None => {
                            self.bad(
                                src,
                                *off,
                                fname,
                                t,
                                "an IP address or CIDR such as 10.0.0.0/8",
                            );
                            return None;
                        }
                    }
                }
                Some(Pred::IpIn(cidrs.into()))
            }
            FieldType::Str | FieldType::Ip => {
                let (text, off) = first;
                Some(match op {
                    O::Eq | O::Ne => Pred::StrEq(text.into()),
                    O::In => Pred::StrIn(StrSet::new(items.into_iter().map(|i| i.0).collect())),
                    O::Pmatch => Pred::Pmatch(
                        items
                            .into_iter()
                            .map(|(t, _)| t.trim_end_matches('/').to_owned().into_boxed_str())
                            .collect(),
                    ),
                    O::Contains => Pred::Contains(text.into()),
                    O::StartsWith => Pred::StartsWith(text.into()),
                    O::EndsWith => Pred::EndsWith(text.into()),
                    O::IContains => match Regex::new(&format!("(?i){}", regex::escape(&text))) {
                        Ok(r) => Pred::IContains(r),
                        Err(e) => {
                            self.err(src, off, CErrKind::BadRegex(text, e.to_string()));
                            return None;
                        }
                    },
                    O::Regex => match Regex::new(&text) {
                        Ok(r) => Pred::Regex(r),
                        Err(e) => {
                            self.err(src, off, CErrKind::BadRegex(text, e.to_string()));
                            return None;
                        }
                    },
                    O::Glob => match glob_to_regex(&text)
                        .and_then(|r| Regex::new(&r).map_err(|e| e.to_string()))
                    {
                        Ok(r) => Pred::Glob(r),
                        Err(e) => {
                            self.err(src, off, CErrKind::BadGlob(text, e));
                            return None;
                        }
                    },
                    O::Lt | O::Le | O::Gt | O::Ge => return None,
                })
            }
        }
    }
}

fn test(def: FieldDef, pred: Pred) -> Node {
    Node::Test(Box::new(Test {
        field: def.field,
        ty: def.ty,
        pred,
    }))
}

pub(crate) fn close<'n>(name: &str, candidates: impl Iterator<Item = &'n str>) -> Vec<String> {
    let mut v: Vec<(f64, &str)> = candidates
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(s, _)| *s > 0.8)
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    v.into_iter().take(3).map(|(_, c)| c.to_owned()).collect()
}

/// Flattens nested and/or (so macro conjunctions are visible to the index) and folds
/// constants.
pub(crate) fn simplify(n: Node) -> Node {
    match n {
        Node::And(v) => {
            let mut out = Vec::with_capacity(v.len());
            for c in v.into_vec().into_iter().map(simplify) {
                match c {
                    Node::Const(true) => {}
                    Node::Const(false) => return Node::Const(false),
                    Node::And(inner) => out.extend(inner.into_vec()),
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Node::Const(true),
                1 => out.remove(0),
                _ => Node::And(out.into()),
            }
        }
        Node::Or(v) => {
            let mut out = Vec::with_capacity(v.len());
            for c in v.into_vec().into_iter().map(simplify) {
                match c {
                    Node::Const(false) => {}
                    Node::Const(true) => return Node::Const(true),
                    Node::Or(inner) => out.extend(inner.into_vec()),
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Node::Const(false),
                1 => out.remove(0),
                _ => Node::Or(out.into()),
            }
        }
        Node::Not(x) => match simplify(*x) {
            Node::Const(b) => Node::Const(!b),
            other => Node::Not(Box::new(other)),
        },
        other => other,
    }
}

/// Shell glob → anchored regex. `*` and `?` stay within one path component, `**` spans
/// `/` (and `**/` also matches zero directories), `[...]`/`[!...]` are classes.
pub(crate) fn glob_to_regex(g: &str) -> Result<String, String> {
    let mut re = String::from("(?s)^");
    let chars: Vec<char> = g.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    re.push_str("(?:.*/)?");
                    i += 3;
                } else {
                    re.push_str(".*");
                    i += 2;
                }
                continue;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut j = i + 1;
                let mut class = String::from("[");
                if matches!(chars.get(j), Some('!') | Some('^')) {
                    class.push('^');
                    j += 1;
                }
                // A `]` right after the opening bracket is a literal member.
                if chars.get(j) == Some(&']') {
                    class.push_str("\\]");
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    let ch = chars[j];
                    if matches!(ch, '\\' | '[' | '&' | '~' | '^') {
                        class.push('\\');
                    }
                    class.push(ch);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err("unterminated `[` character class".into());
                }
                class.push(']');
                re.push_str(&class);
                i = j + 1;
                continue;
            }
            other => re.push_str(&regex::escape(other.encode_utf8(&mut [0; 4]))),
        }
        i += 1;
    }
    re.push('$');
    Ok(re)
}

/// A message template: literal text and `%field` substitutions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone)]
pub(crate) enum Part {
    Lit(String),
    Field(Field, FieldType),
    /// A value supplied by the caller at render time (`%count`, `%$path`), by index
    /// into the `vars` given to [`parse_template_vars`].
    Var(usize),
}

/// Parses `%field.name` (the longest run of `[A-Za-z0-9_.]`, minus trailing dots, so a
/// sentence-ending period is kept) and `%%` for a literal percent sign. Returns the byte
/// offset and name of an unknown field on error.
pub(crate) fn parse_template(s: &str) -> Result<Template, (usize, String, Vec<String>)> {
    parse_template_vars(s, &[])
}

/// Like [`parse_template`], plus `%name` for each name in `vars` (checked before field
/// names) and `%$name` for captured values (`vars` holds them as `$name`). An unknown
/// `%$name` is reported with the name including its `$`.
pub(crate) fn parse_template_vars(
    s: &str,
    vars: &[String],
) -> Result<Template, (usize, String, Vec<String>)> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    let mut base = 0;
    while let Some(p) = rest.find('%') {
        lit.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        if let Some(r) = after.strip_prefix('%') {
            lit.push('%');
            base += p + 2;
            rest = r;
            continue;
        }
        let dollar = usize::from(after.starts_with('$'));
        let len = after[dollar..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .map_or(after.len(), |l| l + dollar);
        let name = after[..len].trim_end_matches('.');
        if let Some(i) = vars.iter().position(|v| v == name) {
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(i));
            base += p + 1 + name.len();
            rest = &after[name.len()..];
            continue;
        }
        if dollar == 1 {
            let sugg = close(name, vars.iter().map(String::as_str));
            return Err((base + p + 1, name.to_owned(), sugg));
        }
        if name.is_empty() {
            lit.push('%');
            base += p + 1;
            rest = after;
            continue;
        }
        match fields::lookup(name) {
            Ok(def) => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Field(def.field, def.ty));
            }
            Err(sugg) => return Err((base + p + 1, name.to_owned(), sugg)),
        }
        base += p + 1 + name.len();
        rest = &after[name.len()..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(Template { parts })
}
