//! Recursive-descent parser for conditions.
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | primary
//! primary := "(" expr ")"
//!          | FIELD "exists"
//!          | FIELD OP value
//!          | FIELD ("in" | "pmatch") "(" [value ("," value)*] ")"
//!          | MACRO
//! OP      := = | != | < | <= | > | >= | contains | icontains | startswith
//!          | endswith | glob | regex
//! ```
//! Nesting is bounded so hostile input cannot overflow the stack.

use super::lexer::{LexError, Sym, Tok, Token, lex};

/// Deep enough for any sane rule, shallow enough for a small thread stack.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Pmatch,
    Contains,
    IContains,
    StartsWith,
    EndsWith,
    Glob,
    Regex,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "in",
            CmpOp::Pmatch => "pmatch",
            CmpOp::Contains => "contains",
            CmpOp::IContains => "icontains",
            CmpOp::StartsWith => "startswith",
            CmpOp::EndsWith => "endswith",
            CmpOp::Glob => "glob",
            CmpOp::Regex => "regex",
        }
    }

    fn from_word(w: &str) -> Option<CmpOp> {
        Some(match w {
            "in" => CmpOp::In,
            "pmatch" => CmpOp::Pmatch,
            "contains" => CmpOp::Contains,
            "icontains" => CmpOp::IContains,
            "startswith" => CmpOp::StartsWith,
            "endswith" => CmpOp::EndsWith,
            "glob" => CmpOp::Glob,
            "regex" => CmpOp::Regex,
            _ => return None,
        })
    }
}

/// A literal (or, inside `in`/`pmatch`, possibly a list name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Value {
    pub text: String,
    /// Quoted values are always literals, never list references.
    pub quoted: bool,
    pub off: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: String,
        field_off: usize,
        op: CmpOp,
        op_off: usize,
        values: Vec<Value>,
    },
    Exists {
        field: String,
        field_off: usize,
    },
    Macro {
        name: String,
        off: usize,
    },
}

/// A syntax error at a byte offset of the condition text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub off: usize,
    pub message: String,
}

impl From<LexError> for ParseError {
    fn from(e: LexError) -> Self {
        ParseError {
            off: e.off,
            message: e.message,
        }
    }
}

pub(crate) fn parse(text: &str) -> Result<Expr, ParseError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: text.len(),
        depth: 0,
    };
    if p.toks.is_empty() {
        return Err(ParseError {
            off: 0,
            message: "empty condition; expected a comparison or macro name".into(),
        });
    }
    let e = p.expr()?;
    if let Some(t) = p.peek() {
        return Err(ParseError {
            off: t.off,
            message: format!(
                "unexpected {} after a complete condition; expected `and`, `or` or end",
                describe(&t.tok)
            ),
        });
    }
    Ok(e)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Sym(s) => format!("`{}`", sym_op(*s).as_str()),
        Tok::Word(w) => format!("`{w}`"),
        Tok::Str(s) => format!("string {s:?}"),
    }
}

fn sym_op(s: Sym) -> CmpOp {
    match s {
        Sym::Eq => CmpOp::Eq,
        Sym::Ne => CmpOp::Ne,
        Sym::Lt => CmpOp::Lt,
        Sym::Le => CmpOp::Le,
        Sym::Gt => CmpOp::Gt,
        Sym::Ge => CmpOp::Ge,
    }
}

fn is_keyword(w: &str) -> bool {
    matches!(w, "and" | "or" | "not" | "exists") || CmpOp::from_word(w).is_some()
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(x), .. }) if x == w)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn err<T>(&self, off: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            off,
            message: message.into(),
        })
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.off)
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(
                self.here(),
                format!("condition nested deeper than {MAX_DEPTH}"),
            );
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut items = vec![self.and()?];
        while self.peek_word("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.unary()?];
        while self.peek_word("and") {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek_word("not") {
            self.pos += 1;
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let off = self.here();
        let Some(t) = self.next() else {
            return self.err(
                off,
                "unexpected end of condition; expected a comparison, macro name, `not` or `(`",
            );
        };
        match t.tok {
            Tok::LParen => {
                let e = self.expr()?;
                match self.next() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => Ok(e),
                    Some(t) => self.err(t.off, format!("expected `)`, found {}", describe(&t.tok))),
                    None => self.err(self.end, "expected `)` before end of condition"),
                }
            }
            Tok::Word(w) if !is_keyword(&w) => self.after_word(w, t.off),
            other => self.err(
                t.off,
                format!(
                    "expected a comparison, macro name, `not` or `(`, found {}",
                    describe(&other)
                ),
            ),
        }
    }

    fn after_word(&mut self, word: String, off: usize) -> Result<Expr, ParseError> {
        let op = match self.peek() {
            Some(Token {
                tok: Tok::Sym(s), ..
            }) => Some(sym_op(*s)),
            Some(Token {
                tok: Tok::Word(w), ..
            }) if w == "exists" => {
                self.pos += 1;
                return Ok(Expr::Exists {
                    field: word,
                    field_off: off,
                });
            }
            Some(Token {
                tok: Tok::Word(w), ..
            }) => CmpOp::from_word(w),
            _ => None,
        };
        let Some(op) = op else {
            if word.contains('.') {
                return self.err(
                    self.here(),
                    format!("expected an operator or `exists` after field `{word}`"),
                );
            }
            return Ok(Expr::Macro { name: word, off });
        };
        let op_off = self.here();
        self.pos += 1;
        let values = if matches!(op, CmpOp::In | CmpOp::Pmatch) {
            self.value_list(op)?
        } else {
            vec![self.value(op)?]
        };
        Ok(Expr::Cmp {
            field: word,
            field_off: off,
            op,
            op_off,
            values,
        })
    }

    fn value(&mut self, op: CmpOp) -> Result<Value, ParseError> {
        let off = self.here();
        match self.next() {
            Some(Token {
                tok: Tok::Word(text),
                off,
            }) => Ok(Value {
                text,
                quoted: false,
                off,
            }),
            Some(Token {
                tok: Tok::Str(text),
                off,
            }) => Ok(Value {
                text,
                quoted: true,
                off,
            }),
            Some(t) => self.err(
                t.off,
                format!(
                    "expected a value after `{}`, found {}",
                    op.as_str(),
                    describe(&t.tok)
                ),
            ),
            None => self.err(off, format!("expected a value after `{}`", op.as_str())),
        }
    }

    fn value_list(&mut self, op: CmpOp) -> Result<Vec<Value>, ParseError> {
        match self.next() {
            Some(Token {
                tok: Tok::LParen, ..
            }) => {}
            Some(t) => {
                return self.err(
                    t.off,
                    format!(
                        "expected `(` after `{}`, found {}",
                        op.as_str(),
                        describe(&t.tok)
                    ),
                );
            }
            None => return self.err(self.end, format!("expected `(` after `{}`", op.as_str())),
        }
        let mut values = Vec::new();
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::RParen,
                ..
            })
        ) {
            self.pos += 1;
            return Ok(values);
        }
        loop {
            values.push(self.value(op)?);
            match self.next() {
                Some(Token {
                    tok: Tok::Comma, ..
                }) => {}
                Some(Token {
                    tok: Tok::RParen, ..
                }) => return Ok(values),
                Some(t) => {
                    return self.err(
                        t.off,
                        format!("expected `,` or `)` in list, found {}", describe(&t.tok)),
                    );
                }
                None => return self.err(self.end, "expected `)` to close the list"),
            }
        }
    }
}
