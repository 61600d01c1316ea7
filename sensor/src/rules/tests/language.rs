//! Lexer and parser: every operator, precedence, values.

use super::super::lexer::{Sym, Tok, lex};
use super::super::parser::{CmpOp, Expr, parse};

fn cmp(e: &Expr) -> (&str, CmpOp, Vec<&str>) {
    match e {
        Expr::Cmp {
            field, op, values, ..
        } => (field, *op, values.iter().map(|v| v.text.as_str()).collect()),
        other => panic!("not a comparison: {other:?}"),
    }
}

#[test]
fn lexes_symbols_words_and_strings() {
    let toks: Vec<Tok> = lex(r#"a!=b <= >= < > = == ( , ) "x\"y" 'z\n' [!a]"#)
        .unwrap()
        .into_iter()
        .map(|t| t.tok)
        .collect();
    assert_eq!(
        toks,
        vec![
            Tok::Word("a".into()),
            Tok::Sym(Sym::Ne),
            Tok::Word("b".into()),
            Tok::Sym(Sym::Le),
            Tok::Sym(Sym::Ge),
            Tok::Sym(Sym::Lt),
            Tok::Sym(Sym::Gt),
            Tok::Sym(Sym::Eq),
            Tok::Sym(Sym::Eq),
            Tok::LParen,
            Tok::Comma,
            Tok::RParen,
            Tok::Str("x\"y".into()),
            Tok::Str("z\n".into()),
            Tok::Word("[!a]".into()),
        ]
    );
}

#[test]
fn lex_offsets_are_bytes() {
    let t = lex("proc.name  =  é").unwrap();
    assert_eq!(t[0].off, 0);
    assert_eq!(t[1].off, 11);
    assert_eq!(t[2].off, 14);
}

#[test]
fn lex_errors() {
    assert_eq!(lex("a = \"open").unwrap_err().off, 4);
    let t = lex(r#"a = "x\s\|""#).unwrap();
    assert_eq!(
        t[2].tok,
        Tok::Str(r"x\s\|".into()),
        "unknown escapes are kept"
    );
}

#[test]
fn parses_every_binary_operator() {
    for (text, op) in [
        ("=", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        ("<", CmpOp::Lt),
        ("<=", CmpOp::Le),
        (">", CmpOp::Gt),
        (">=", CmpOp::Ge),
        ("contains", CmpOp::Contains),
        ("icontains", CmpOp::IContains),
        ("startswith", CmpOp::StartsWith),
        ("endswith", CmpOp::EndsWith),
        ("glob", CmpOp::Glob),
        ("regex", CmpOp::Regex),
    ] {
        let e = parse(&format!("proc.name {text} x")).unwrap();
        assert_eq!(cmp(&e), ("proc.name", op, vec!["x"]), "{text}");
    }
}

#[test]
fn parses_lists_exists_and_macros() {
    let e = parse("proc.name in (a, 'b c', lst)").unwrap();
    assert_eq!(cmp(&e), ("proc.name", CmpOp::In, vec!["a", "b c", "lst"]));
    let e = parse("file.path pmatch (/etc)").unwrap();
    assert_eq!(cmp(&e), ("file.path", CmpOp::Pmatch, vec!["/etc"]));
    assert_eq!(cmp(&parse("proc.name in ()").unwrap()).2.len(), 0);
    assert!(matches!(
        parse("container.id exists").unwrap(),
        Expr::Exists { .. }
    ));
    assert!(matches!(parse("my_macro").unwrap(), Expr::Macro { .. }));
}

#[test]
fn precedence_not_and_or() {
    // a or b and not c  ==  a or (b and (not c))
    let e = parse("a or b and not c").unwrap();
    let Expr::Or(v) = e else { panic!() };
    assert!(matches!(v[0], Expr::Macro { .. }));
    let Expr::And(w) = &v[1] else { panic!() };
    assert!(matches!(w[1], Expr::Not(_)));
    // not a and b == (not a) and b
    let Expr::And(v) = parse("not a and b").unwrap() else {
        panic!()
    };
    assert!(matches!(v[0], Expr::Not(_)));
    // parentheses override
    let Expr::And(v) = parse("(a or b) and c").unwrap() else {
        panic!()
    };
    assert!(matches!(v[0], Expr::Or(_)));
}

#[test]
fn values_are_literal_words() {
    let e = parse("proc.args = -e").unwrap();
    assert_eq!(cmp(&e).2, vec!["-e"]);
    let e = parse("proc.exe = /usr/bin/nc").unwrap();
    assert_eq!(cmp(&e).2, vec!["/usr/bin/nc"]);
    // A keyword in value position is just a value.
    let e = parse("proc.name = and").unwrap();
    assert_eq!(cmp(&e).2, vec!["and"]);
}

#[test]
fn syntax_errors_have_offsets() {
    for (text, off) in [
        ("", 0),
        ("proc.name =", 11),
        ("proc.name", 9),
        ("(a", 2),
        ("a b", 2),
        ("proc.name in a", 13),
        ("proc.name in (a b)", 16),
        ("and", 0),
        ("a and", 5),
        ("proc.name = )", 12),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.off, off, "{text:?}: {}", e.message);
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
    assert!(parse(&deep).unwrap_err().message.contains("nested"));
    let nots = format!("{}a", "not ".repeat(200));
    assert!(parse(&nots).is_err());
}
