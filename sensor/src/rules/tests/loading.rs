//! Lists, macros, exceptions, modes, index, inline tests, MITRE metadata.

use super::super::eval::{Slot, slot_of};
use super::{ev, load};
use crate::rules::{Mode, Scratch, TestKind, attack};

const LISTS: &str = r#"
- list: shells
  items: [sh, bash]
- list: more_shells
  items: [shells, zsh, "shells_literal"]
- macro: is_exec
  condition: evt.type = exec
- macro: spawned_shell
  condition: is_exec and proc.name in (more_shells)
- rule:
    id: R-1
    name: Shell
    severity: high
    mitre:
      tactics: [execution]
      techniques: [T1059.004]
    condition: spawned_shell and not proc.pname = sshd
    output: "shell %proc.name"
    exceptions:
      - name: trusted
        fields: [proc.pname, proc.exe]
        values: [[tmux, /usr/bin/zsh], [screen, /bin/sh]]
      - name: ci
        condition: proc.cwd startswith /builds/
    tests:
      match:
        - {evt.type: exec, proc.exe: /usr/bin/zsh, proc.pname: bash}
        - {evt.type: exec, proc.exe: /bin/zsh, proc.pname: tmux, proc.cwd: /x}
      no_match:
        - {evt.type: exec, proc.exe: /usr/bin/zsh, proc.pname: sshd}
        - {evt.type: exec, proc.exe: /usr/bin/zsh, proc.pname: tmux}
        - {evt.type: exec, proc.exe: /bin/sh, proc.pname: screen}
        - {evt.type: exec, proc.exe: /bin/sh, proc.pname: x, proc.cwd: /builds/a}
        - {evt.type: openat, proc.exe: /bin/sh, proc.pname: x}
"#;

#[test]
fn nested_lists_macros_and_exceptions() {
    let set = load(LISTS);
    assert!(
        set.run_inline_tests().is_empty(),
        "{:#?}",
        set.run_inline_tests()
    );
    let mut out = Vec::new();
    let mut s = Scratch::new();
    // Quoted list items are literals, not references.
    set.evaluate(
        &mut s,
        &ev("{evt.type: exec, proc.comm: shells_literal}"),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    set.evaluate(&mut s, &ev("{evt.type: exec, proc.comm: shells}"), &mut out);
    assert_eq!(out.len(), 1, "a list name is not an item");
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
}

#[test]
fn inline_test_failures_are_reported() {
    let y = LISTS.replace(
        "      no_match:\n",
        "      no_match:\n        - {evt.type: exec, proc.exe: /bin/bash, proc.pname: cron}\n",
    );
    let set = load(&y);
    let f = set.run_inline_tests();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].rule_id, "R-1");
    assert_eq!(f[0].kind, TestKind::NoMatch);
    assert_eq!(f[0].index, 0);
    assert_eq!((f[0].loc.line, f[0].loc.column), (30, 11));
    let shown = f[0].to_string();
    assert!(
        shown.contains("r.yaml:30:11") && shown.contains("\"/bin/bash\""),
        "{shown}"
    );
}

#[test]
fn index_by_type_and_kind() {
    let set = load(
        r#"
- macro: opens
  condition: evt.type in (open, openat)
- rule: {id: E, name: e, severity: low, condition: evt.type = exec and proc.name = x}
- rule: {id: O, name: o, severity: low, condition: opens and file.path exists}
- rule: {id: K, name: k, severity: low, condition: evt.kind = network}
- rule: {id: A, name: a, severity: low, condition: evt.type = exec or proc.name = x}
- rule: {id: F, name: f, severity: low, mode: off, condition: proc.name = x}
"#,
    );
    let slots: Vec<Slot> = set.rules().iter().map(|r| slot_of(&r.condition)).collect();
    assert_eq!(slots[0], Slot::Types(vec!["exec".into()]));
    assert_eq!(slots[1], Slot::Types(vec!["open".into(), "openat".into()]));
    assert_eq!(slots[2], Slot::Kinds(vec![4]));
    assert_eq!(slots[3], Slot::Always);
    assert_eq!(set.rules()[4].mode, Mode::Off);
    let mut out = Vec::new();
    let mut s = Scratch::new();
    // The exec rule must never run on openat, even if the rest of it would match.
    set.evaluate(
        &mut s,
        &ev("{evt.type: openat, proc.comm: x, file.path: /a}"),
        &mut out,
    );
    let ids: Vec<&str> = out.iter().map(|m| m.rule.id.as_str()).collect();
    assert_eq!(ids, vec!["O", "A"], "off rule F never runs");
    out.clear();
    set.evaluate(&mut s, &ev("{evt.type: exec, proc.comm: x}"), &mut out);
    let ids: Vec<&str> = out.iter().map(|m| m.rule.id.as_str()).collect();
    assert_eq!(ids, vec!["E", "A"], "matches come in rule order");
}

#[test]
fn index_never_changes_results() {
    // An exec-indexed rule evaluated on every corpus event directly agrees with the
    // indexed evaluator.
    let set = load(
        "- rule: {id: X, name: x, severity: low, condition: evt.type = exec and proc.name exists}\n- rule: {id: Y, name: y, severity: low, condition: evt.kind = file and file.path startswith /}\n",
    );
    let mut s = Scratch::new();
    let mut out = Vec::new();
    for line in super::corpus::CORPUS.lines() {
        let e: crate::event::Event = serde_json::from_str(line).unwrap();
        out.clear();
        set.evaluate(&mut s, &e, &mut out);
        for r in set.rules() {
            let direct = r.matches(&e, &mut s);
            let indexed = out.iter().any(|m| m.rule.id == r.id);
            assert_eq!(direct, indexed, "{} on {}", r.id, e.event.action);
        }
    }
}

#[test]
fn mitre_tactic_mismatch_is_a_warning() {
    let set = load(
        "- rule:\n    id: W\n    name: w\n    severity: low\n    mitre: {tactics: [impact], techniques: [T1059.004]}\n    condition: evt.type = exec\n",
    );
    assert_eq!(set.warnings().len(), 2, "{:?}", set.warnings());
    assert!(
        set.warnings()[0]
            .to_string()
            .contains("r.yaml:2:5: warning")
    );
}

#[test]
fn attack_table_is_consistent() {
    let ids: Vec<&str> = attack::all_ids().collect();
    assert!(ids.len() >= 200, "{}", ids.len());
    let mut seen = std::collections::HashSet::new();
    for id in &ids {
        assert!(seen.insert(*id), "duplicate {id}");
        assert!(crate::alert::TechniqueId::parse(id).is_ok(), "{id}");
        let t = attack::technique(id).unwrap_or_else(|| panic!("{id} has no parent"));
        assert!(!t.tactics.is_empty(), "{id}");
        for tac in t.tactics {
            assert!(attack::TACTICS.contains(tac), "{id}: {tac}");
        }
    }
    for tac in attack::TACTICS {
        assert!(
            ids.iter()
                .any(|i| attack::technique(i).unwrap().tactics.contains(&tac)),
            "no technique for {tac}"
        );
    }
    let t = attack::technique("T1059.004").unwrap();
    assert_eq!(t.name, "Command and Scripting Interpreter: Unix Shell");
    assert_eq!(t.tactics, ["execution"]);
    assert!(attack::technique("T1059.999").is_none());
}

#[test]
fn event_from_fields_round_trips_condition_fields() {
    let e = ev(
        "{evt.type: connect, proc.exe: /usr/bin/curl, proc.args: [-s, x], proc.pname: bash, proc.ppid: 7, net.dip: 1.2.3.4, net.dport: 443, container.id: c1, k8s.pod.uid: p, service.name: s.service, cgroup.path: /a, user.name: root}",
    );
    assert_eq!(e.event.kind, crate::event::Kind::Network);
    assert_eq!(e.process.args, vec!["curl", "-s", "x"]);
    assert_eq!(e.process.parent.as_ref().unwrap().pid, 7);
    assert_eq!(e.container.as_ref().unwrap().pod_uid.as_deref(), Some("p"));
    assert!(super::fires(
        "proc.cmdline = 'curl -s x' and k8s.pod.uid = p and service.name = s.service and cgroup.path = /a and user.name = root and net.dport = 443 and proc.ppid = 7",
        "{evt.type: exec, proc.exe: /usr/bin/curl, proc.args: [-s, x], proc.ppid: 7, net.dport: 443, k8s.pod.uid: p, service.name: s.service, cgroup.path: /a, user.name: root}"
    ));
    assert!(crate::rules::event_from_fields("{net.dip_private: true}", "t").is_err());
    assert!(crate::rules::event_from_fields("[1]", "t").is_err());
}
