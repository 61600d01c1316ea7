//! Property tests: hostile input never panics the parser or the loader.

use proptest::prelude::*;

use super::super::parser::parse;
use crate::rules::RuleSet;

/// Token soup that reaches deep into the grammar more often than random bytes.
fn cond_tokens() -> impl Strategy<Value = String> {
    let tok = prop_oneof![
        Just("and"),
        Just("or"),
        Just("not"),
        Just("("),
        Just(")"),
        Just(","),
        Just("="),
        Just("!="),
        Just("<="),
        Just(">"),
        Just("in"),
        Just("pmatch"),
        Just("exists"),
        Just("glob"),
        Just("regex"),
        Just("contains"),
        Just("proc.name"),
        Just("user.uid"),
        Just("net.dip"),
        Just("'x\\'y'"),
        Just("\""),
        Just("10.0.0.0/8"),
        Just("m"),
        Just("shells"),
        Just("[a"),
        Just("**"),
        Just("é"),
        Just("\\"),
    ];
    proptest::collection::vec(tok, 0..40).prop_map(|v| v.join(" "))
}

fn yaml_soup() -> impl Strategy<Value = String> {
    let tok = prop_oneof![
        Just("- "),
        Just("rule:"),
        Just("list:"),
        Just("macro:"),
        Just("items:"),
        Just("condition:"),
        Just("id:"),
        Just("\n"),
        Just("\n    "),
        Just("  "),
        Just("["),
        Just("]"),
        Just("{"),
        Just("}"),
        Just(","),
        Just("&a"),
        Just("*a"),
        Just("!!str"),
        Just("'"),
        Just("\""),
        Just(">"),
        Just("|"),
        Just("proc.name = x"),
        Just("tests:"),
        Just("match:"),
        Just("severity: low"),
        Just("x"),
        Just("#"),
        Just("---"),
        Just("exceptions:"),
        Just("fields:"),
        Just("values:"),
    ];
    proptest::collection::vec(tok, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_arbitrary_text(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }

    #[test]
    fn parser_never_panics_on_token_soup(s in cond_tokens()) {
        let _ = parse(&s);
        // Also through the whole compile pipeline.
        let _ = RuleSet::from_str(&super::one_rule(&s), "p.yaml");
    }

    #[test]
    fn loader_never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
        let _ = RuleSet::from_str(&s, "p.yaml");
    }

    #[test]
    fn loader_never_panics_on_yaml_soup(s in yaml_soup()) {
        if let Err(e) = RuleSet::from_str(&s, "p.yaml") {
            // Every error but I/O is located.
            for e in e.errors() {
                prop_assert!(e.location().is_some(), "{}", e);
            }
        }
    }
}
