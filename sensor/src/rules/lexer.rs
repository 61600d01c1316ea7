//! Tokenizer for the condition language.
//!
//! Keywords (`and`, `in`, `exists`, ...) are not tokens of their own: they are bare
//! words that the parser interprets by position, so `proc.name = in` still compares with
//! the literal `in`. Offsets are byte offsets into the condition text, used to locate
//! errors inside the YAML scalar.

/// A comparison written with symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    Comma,
    Sym(Sym),
    /// Unquoted word: field, keyword, macro/list name or value.
    Word(String),
    /// Quoted string, escapes already resolved.
    Str(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub off: usize,
}

/// A lexing failure at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub off: usize,
    pub message: String,
}

/// Characters that end a bare word. `!` ends one only when it starts `!=`, so globs
/// like `[!a]` stay bare.
fn ends_word(c: char, next: Option<char>) -> bool {
    c.is_whitespace()
        || matches!(c, '(' | ')' | ',' | '"' | '\'' | '=' | '<' | '>')
        || (c == '!' && next == Some('='))
}

pub(crate) fn lex(text: &str) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    let mut it = text.char_indices().peekable();
    while let Some(&(off, c)) = it.peek() {
        let next = text[off + c.len_utf8()..].chars().next();
        let simple = |tok| Token { tok, off };
        match c {
            c if c.is_whitespace() => {
                it.next();
            }
            '(' | ')' | ',' => {
                it.next();
                out.push(simple(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    _ => Tok::Comma,
                }));
            }
            '=' | '<' | '>' => {
                it.next();
                let eq_next = next == Some('=');
                if eq_next {
                    // `<=`, `>=`, and `==` (accepted as a synonym of `=`).
                    it.next();
                }
                let sym = match (c, eq_next) {
                    ('<', false) => Sym::Lt,
                    ('<', true) => Sym::Le,
                    ('>', false) => Sym::Gt,
                    ('>', true) => Sym::Ge,
                    _ => Sym::Eq,
                };
                out.push(simple(Tok::Sym(sym)));
            }
            '!' if next == Some('=') => {
                it.next();
                it.next();
                out.push(simple(Tok::Sym(Sym::Ne)));
            }
            '"' | '\'' => {
                it.next();
                let s = lex_quoted(off, c, &mut it)?;
                out.push(simple(Tok::Str(s)));
            }
            _ => {
                let mut end = off;
                while let Some(&(i, ch)) = it.peek() {
                    let nx = text[i + ch.len_utf8()..].chars().next();
                    if ends_word(ch, nx) {
                        break;
                    }
                    end = i + ch.len_utf8();
                    it.next();
                }
                out.push(simple(Tok::Word(text[off..end].to_owned())));
            }
        }
    }
    Ok(out)
}

fn lex_quoted(
    start: usize,
    quote: char,
    it: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<String, LexError> {
    let mut s = String::new();
    while let Some((_, c)) = it.next() {
        if c == quote {
            return Ok(s);
        }
        if c != '\\' {
            s.push(c);
            continue;
        }
        match it.next() {
            Some((_, 'n')) => s.push('\n'),
            Some((_, 't')) => s.push('\t'),
            Some((_, 'r')) => s.push('\r'),
            Some((_, '0')) => s.push('\0'),
            Some((_, e @ ('\\' | '"' | '\''))) => s.push(e),
            // Unknown escapes keep their backslash, so regex classes such as `\s` or
            // `\|` can be written inside quotes without doubling.
            Some((_, e)) => {
                s.push('\\');
                s.push(e);
            }
            None => break,
        }
    }
    Err(LexError {
        off: start,
        message: format!("unterminated string; expected a closing {quote}"),
    })
}
