//! Every error class carries the right file:line:column.

use std::io::Write;

use super::{load_err, only_loc};
use crate::rules::{RuleError, RuleSet};

const HEAD: &str = "- rule:\n    id: A\n    name: a\n    severity: low\n";

fn with_cond(cond_line: &str) -> String {
    format!("{HEAD}{cond_line}\n    output: o\n")
}

#[test]
fn yaml_syntax_error() {
    let (e, line, col) = only_loc("- list: a\n  items: [x, y\n- list: b\n");
    assert!(matches!(e, RuleError::Yaml { .. }), "{e}");
    assert_eq!(line, 3, "{e}");
    assert!(col >= 1);
}

#[test]
fn unknown_key() {
    let (e, l, c) = only_loc(&format!(
        "{HEAD}    condition: evt.type = exec\n    bogus: 1\n"
    ));
    assert!(matches!(e, RuleError::UnknownKey { .. }), "{e}");
    assert_eq!((l, c), (6, 5));
    assert!(e.to_string().contains("expected one of: id, name"), "{e}");
    let (e, l, c) = only_loc("- lst: x\n");
    assert!(matches!(e, RuleError::UnknownKey { .. }), "{e}");
    assert_eq!((l, c), (1, 3));
}

#[test]
fn missing_key_and_wrong_shape() {
    let (e, l, c) = only_loc("- rule:\n    id: A\n    name: a\n    condition: evt.type = exec\n");
    assert!(
        matches!(
            e,
            RuleError::MissingKey {
                key: "severity",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!((l, c), (2, 5));
    let (e, l, c) = only_loc("- list: a\n  items: {x: 1}\n");
    assert!(matches!(e, RuleError::Shape { .. }), "{e}");
    assert_eq!((l, c), (2, 10));
}

#[test]
fn unknown_field_in_condition_with_suggestions() {
    let (e, l, c) = only_loc(&with_cond(
        "    condition: evt.type = exec and proc.nme = x",
    ));
    assert_eq!((l, c), (5, 36), "{e}");
    let RuleError::UnknownField { suggestions, .. } = &e else {
        panic!("{e}")
    };
    assert!(suggestions.iter().any(|s| s == "proc.name"), "{e}");
}

#[test]
fn syntax_error_in_condition() {
    let (e, l, c) = only_loc(&with_cond("    condition: proc.name = bash and ("));
    assert!(matches!(e, RuleError::Syntax { .. }), "{e}");
    assert_eq!((l, c), (5, 38), "{e}");
}

#[test]
fn bad_operator_for_field_type() {
    let (e, l, c) = only_loc(&with_cond("    condition: proc.name > 3"));
    assert!(matches!(e, RuleError::BadOperator { .. }), "{e}");
    assert_eq!((l, c), (5, 26));
    let (e, l, c) = only_loc(&with_cond("    condition: user.uid contains 3"));
    assert!(matches!(e, RuleError::BadOperator { .. }), "{e}");
    assert_eq!((l, c), (5, 25));
}

#[test]
fn bad_values() {
    let (e, l, c) = only_loc(&with_cond("    condition: proc.pid = abc"));
    assert!(matches!(e, RuleError::BadValue { .. }), "{e}");
    assert_eq!((l, c), (5, 27));
    let (e, l, c) = only_loc(&with_cond("    condition: proc.exe_memfd = yes"));
    assert!(matches!(e, RuleError::BadValue { .. }), "{e}");
    assert_eq!((l, c), (5, 33));
    let (e, l, c) = only_loc(&with_cond(
        "    condition: net.dip in (10.0.0.0/8, 10.0.0.0/33)",
    ));
    assert!(matches!(e, RuleError::BadValue { .. }), "{e}");
    assert_eq!((l, c), (5, 40));
}

#[test]
fn bad_regex_and_glob() {
    let (e, l, c) = only_loc(&with_cond("    condition: proc.name regex '(a'"));
    assert!(matches!(e, RuleError::BadRegex { .. }), "{e}");
    assert_eq!((l, c), (5, 32));
    let (e, l, c) = only_loc(&with_cond("    condition: proc.name glob '[ab'"));
    assert!(matches!(e, RuleError::BadGlob { .. }), "{e}");
    assert_eq!((l, c), (5, 31));
}

#[test]
fn unknown_macro_and_list() {
    let y = format!(
        "- macro: spawned_shell\n  condition: evt.type = exec\n{}",
        with_cond("    condition: spawned_shel and evt.type = exec")
    );
    let (e, l, c) = only_loc(&y);
    assert!(
        matches!(e, RuleError::UnknownName { what: "macro", .. }),
        "{e}"
    );
    assert_eq!((l, c), (7, 16));
    assert!(e.to_string().contains("did you mean: spawned_shell"), "{e}");
    let y = format!(
        "- list: shell_binaries\n  items: [sh]\n{}",
        with_cond("    condition: proc.name in (shell_binarie, init_module)")
    );
    let (e, l, c) = only_loc(&y);
    assert!(
        matches!(e, RuleError::UnknownName { what: "list", .. }),
        "{e}"
    );
    assert_eq!((l, c), (7, 30));
}

#[test]
fn macro_and_list_cycles() {
    let (e, l, c) = only_loc("- macro: a\n  condition: b\n- macro: b\n  condition: a\n");
    assert!(matches!(e, RuleError::Cycle { what: "macro", .. }), "{e}");
    assert_eq!((l, c), (4, 14));
    assert!(e.to_string().contains("a -> b -> a"), "{e}");
    let (e, l, c) = only_loc("- list: x\n  items: [a, y]\n- list: y\n  items: [x]\n");
    assert!(matches!(e, RuleError::Cycle { what: "list", .. }), "{e}");
    assert_eq!((l, c), (4, 11));
    let (e, ..) = only_loc("- macro: m\n  condition: m and evt.type = exec\n");
    assert!(matches!(e, RuleError::Cycle { .. }), "{e}");
}

#[test]
fn duplicates() {
    let y = format!(
        "{}{}",
        with_cond("    condition: evt.type = exec"),
        with_cond("    condition: evt.type = fork")
    );
    let (e, l, c) = only_loc(&y);
    assert!(
        matches!(
            e,
            RuleError::Duplicate {
                what: "rule id",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!((l, c), (8, 9));
    assert!(e.to_string().contains("first defined at r.yaml:2:5"), "{e}");
    let (e, l, _) = only_loc("- list: a\n  items: []\n- list: a\n  items: []\n");
    assert!(
        matches!(e, RuleError::Duplicate { what: "list", .. }),
        "{e}"
    );
    assert_eq!(l, 3);
}

#[test]
fn mitre_and_severity() {
    let y = "- rule:\n    id: A\n    name: a\n    severity: severe\n    mitre:\n      tactics: [execution, hacking]\n      techniques: [T1059.004, T9999, bogus]\n    condition: evt.type = exec\n";
    let errs = load_err(y);
    let locs: Vec<(usize, usize)> = errs
        .iter()
        .map(|e| {
            let l = e.location().unwrap();
            (l.line, l.column)
        })
        .collect();
    assert_eq!(locs, vec![(4, 15), (6, 28), (7, 31), (7, 38)], "{errs:#?}");
    assert!(matches!(errs[0], RuleError::BadSeverity { .. }));
    assert!(matches!(errs[1], RuleError::UnknownTactic { .. }));
    assert!(matches!(errs[2], RuleError::UnknownTechnique { .. }));
    assert!(errs[1].to_string().contains("command-and-control"));
}

#[test]
fn errors_inside_folded_and_quoted_conditions() {
    let y = format!("{HEAD}    condition: >\n      evt.type = exec and\n      proc.nme = x\n");
    let (e, l, c) = only_loc(&y);
    assert!(matches!(e, RuleError::UnknownField { .. }), "{e}");
    assert_eq!((l, c), (7, 7));
    let y = format!("{HEAD}    condition: \"evt.type = exec and proc.nme = x\"\n");
    let (_, l, c) = only_loc(&y);
    assert_eq!((l, c), (5, 37));
    // Repeated token: the second `proc.nme` is the one flagged? Both are; each located.
    let y = format!(
        "{HEAD}    condition: |\n      proc.name = a or\n      proc.name = b or\n      user.uid = x\n"
    );
    let (_, l, c) = only_loc(&y);
    assert_eq!((l, c), (8, 18));
}

#[test]
fn output_and_exception_errors() {
    let y = format!("{HEAD}    condition: evt.type = exec\n    output: 'x %proc.nme'\n");
    let (e, l, c) = only_loc(&y);
    assert!(matches!(e, RuleError::UnknownField { .. }), "{e}");
    assert_eq!((l, c), (6, 17));
    let y = format!(
        "{HEAD}    condition: evt.type = exec\n    exceptions:\n      - name: e\n        fields: [proc.pname, proc.pid]\n        values: [[sshd, abc]]\n"
    );
    let (e, l, c) = only_loc(&y);
    assert!(matches!(e, RuleError::BadValue { .. }), "{e}");
    assert_eq!((l, c), (9, 25));
    let y = format!(
        "{HEAD}    condition: evt.type = exec\n    exceptions:\n      - name: e\n        fields: [proc.pnam]\n        values: [[sshd]]\n"
    );
    let (e, l, c) = only_loc(&y);
    assert!(matches!(e, RuleError::UnknownField { .. }), "{e}");
    assert_eq!((l, c), (8, 18));
    let y = format!(
        "{HEAD}    condition: evt.type = exec\n    exceptions:\n      - name: e\n        fields: [proc.pname, proc.exe]\n        values: [[sshd]]\n"
    );
    let (e, l, c) = only_loc(&y);
    assert!(matches!(e, RuleError::Shape { .. }), "{e}");
    assert_eq!((l, c), (9, 18));
}

#[test]
fn test_event_errors_are_located() {
    let y = format!(
        "{HEAD}    condition: evt.type = exec\n    tests:\n      match:\n        - {{evt.type: exec, proc.nam: x}}\n        - {{proc.pid: -1}}\n"
    );
    let errs = load_err(&y);
    let locs: Vec<String> = errs
        .iter()
        .map(|e| e.location().unwrap().to_string())
        .collect();
    assert_eq!(locs, vec!["r.yaml:8:28", "r.yaml:9:22"], "{errs:#?}");
}

#[test]
fn all_errors_from_all_files_and_no_partial_load() {
    let dir = std::env::temp_dir().join(format!("rules-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    let bad1 = dir.join("bad1.yaml");
    let bad2 = dir.join("bad2.yaml");
    let write = |p: &std::path::Path, s: &str| {
        std::fs::File::create(p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    };
    write(&good, &with_cond("    condition: evt.type = exec"));
    write(
        &bad1,
        "- macro: m\n  condition: proc.nme = x\n- list: l\n  items: [a\n",
    );
    write(
        &bad2,
        "- rule:\n    id: B\n    name: b\n    severity: low\n    condition: proc.exe = x and user.uid = y\n    output: '%evt.tpe'\n",
    );
    let err = RuleSet::from_files(&[
        good.clone(),
        bad1.clone(),
        bad2.clone(),
        dir.join("missing.yaml"),
    ])
    .unwrap_err();
    let msgs: Vec<String> = err.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert!(msgs.iter().any(|m| m.contains("missing.yaml: cannot read")));
    assert!(
        msgs.iter()
            .any(|m| m.contains("bad1.yaml:") && m.contains("YAML")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("bad2.yaml:5:44")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("bad2.yaml:6:15")),
        "{msgs:#?}"
    );
    // Lists/macros are shared across files: a rule may use another file's macro.
    write(&bad1, "- macro: m\n  condition: evt.type = exec\n");
    write(
        &bad2,
        "- rule:\n    id: B\n    name: b\n    severity: low\n    condition: m\n",
    );
    let set = RuleSet::from_files(&[good, bad1, bad2]).unwrap();
    assert_eq!(set.rules().len(), 2);
    std::fs::remove_dir_all(&dir).ok();
}
