//! Sequences and thresholds: loading errors, runtime semantics, bounded state, the
//! allocation-free miss path, and inline tests.

use super::corpus::{allocs, corpus};
use super::{ev, load, load_err, only_loc};
use crate::event::Event;
use crate::rules::correlate::CorrelationKind;
use crate::rules::{CorrelationMatch, Correlator, RuleError, RuleSet, Scope, Scratch, TestKind};

/// The brief's download → chmod +x → run sequence, plus a port-scan threshold.
pub(super) const CORR: &str = r#"
- list: tmp_dirs
  items: [/tmp, /var/tmp, /dev/shm]
- sequence:
    id: SEN-SEQ-001
    name: Download, make executable, run
    description: A file written to a temp dir is made executable and run.
    severity: critical
    mitre: {tactics: [execution, command-and-control], techniques: [T1105, T1204.002]}
    tags: [dropper]
    within: 120s
    by: process_tree
    steps:
      - name: written
        condition: evt.kind = file and file.write = true and file.path pmatch (tmp_dirs)
        capture: {path: file.path}
      - name: made_executable
        condition: evt.type in (chmod, fchmodat, fchmodat2) and file.path = $path and file.mode regex '[1357]$|[1357][0-7]$|[1357][0-7]{2}$'
      - name: executed
        condition: evt.type = exec and proc.exe = $path
    output: "%proc.exe downloaded and executed (%$path, within %within)"
    tests:
      match:
        - - {evt.type: openat, proc.pid: 100, file.path: /tmp/x, file.write: true}
          - {evt.type: fchmodat, proc.pid: 101, proc.ppid: 100, file.path: /tmp/x, file.mode: "755"}
          - {evt.type: exec, proc.pid: 102, proc.ppid: 101, proc.apids: [100], proc.exe: /tmp/x}
      no_match:
        - - {evt.type: openat, proc.pid: 100, file.path: /tmp/x, file.write: true}
          - {evt.type: fchmodat, proc.pid: 100, file.path: /tmp/y, file.mode: "755"}
          - {evt.type: exec, proc.pid: 100, proc.exe: /tmp/x}
        - - {evt.type: openat, proc.pid: 100, file.path: /tmp/x, file.write: true}
          - {evt.type: fchmodat, proc.pid: 100, file.path: /tmp/x, file.mode: "755"}
          - {evt.type: exec, proc.pid: 100, proc.exe: /tmp/x, at: 121s}
- threshold:
    id: SEN-THR-001
    name: Port scan
    severity: medium
    mitre: {tactics: [discovery], techniques: [T1046]}
    condition: evt.type = connect
    distinct: net.dport
    count: 20
    within: 10s
    by: process
    output: "%proc.exe connected to %count distinct ports in %within"
    tests:
      match:
        - repeat: 20
          event: {evt.type: connect, proc.pid: 7, proc.exe: /usr/bin/nc, net.dip: 10.0.0.5}
          vary: {net.dport: [1..20]}
          every: 100ms
      no_match:
        - repeat: 40
          event: {evt.type: connect, proc.pid: 7, net.dip: 10.0.0.5}
          vary: {net.dport: [80, 443]}
        - - repeat: 10
            event: {evt.type: connect, proc.pid: 7}
            vary: {net.dport: ["1..10"]}
          - repeat: 10
            event: {evt.type: connect, proc.pid: 7, at: 20s}
            vary: {net.dport: [11..20]}
"#;

fn at(mut e: Event, ns: u64) -> Event {
    e.event.boot_ns = ns;
    e
}

const S: u64 = 1_000_000_000;

fn feed(set: &RuleSet, events: &[Event]) -> Vec<CorrelationMatch> {
    let mut c = Correlator::new(set);
    let mut out = Vec::new();
    let mut scratch = Scratch::new();
    for e in events {
        c.observe(&mut scratch, e, &mut out);
    }
    out
}

fn write(pid: u32, path: &str) -> Event {
    ev(&format!(
        "{{evt.type: openat, proc.pid: {pid}, file.path: {path}, file.write: true}}"
    ))
}
fn chmod(pid: u32, ppid: u32, path: &str) -> Event {
    ev(&format!(
        "{{evt.type: fchmodat, proc.pid: {pid}, proc.ppid: {ppid}, file.path: {path}, file.mode: '755'}}"
    ))
}
fn exec(pid: u32, ppid: u32, apids: &str, exe: &str) -> Event {
    ev(&format!(
        "{{evt.type: exec, proc.pid: {pid}, proc.ppid: {ppid}, proc.apids: [{apids}], proc.exe: {exe}}}"
    ))
}

#[test]
fn loads_sequence_and_threshold_metadata() {
    let set = load(CORR);
    assert_eq!(set.sequences().len(), 1);
    assert_eq!(set.thresholds().len(), 1);
    let s = &set.sequences()[0];
    assert_eq!((s.within_ns, s.by), (120 * S, Scope::ProcessTree));
    assert_eq!(s.capture_names, ["path"]);
    assert_eq!(s.steps.len(), 3);
    assert_eq!(s.test_count(), 3);
    let t = &set.thresholds()[0];
    assert_eq!(
        (t.count, t.within_ns, t.distinct.as_deref()),
        (20, 10 * S, Some("net.dport"))
    );
    assert_eq!(t.test_count(), 3);
}

#[test]
fn sequence_completes_across_a_process_tree() {
    let set = load(CORR);
    let out = feed(
        &set,
        &[
            at(write(100, "/tmp/x"), S),
            // the shell's child chmods, its grandchild runs it
            at(chmod(101, 100, "/tmp/x"), 2 * S),
            at(exec(102, 101, "100, 1", "/tmp/x"), 3 * S),
        ],
    );
    assert_eq!(out.len(), 1, "{out:#?}");
    let m = &out[0];
    assert_eq!(m.rule_id, "SEN-SEQ-001");
    assert_eq!(m.kind, CorrelationKind::Sequence);
    assert_eq!(m.scope, "process_tree:100");
    assert_eq!(
        m.message,
        "/tmp/x downloaded and executed (/tmp/x, within 120s)"
    );
    let steps: Vec<(&str, &str, u32)> = m
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.action.as_str(), s.pid))
        .collect();
    assert_eq!(
        steps,
        [
            ("written", "openat", 100),
            ("made_executable", "fchmodat", 101),
            ("executed", "exec", 102)
        ]
    );
    assert_eq!(m.steps[0].path.as_deref(), Some("/tmp/x"));
    assert_eq!((m.first_ns, m.last_ns), (S, 3 * S));
    assert_eq!(m.techniques[1].as_str(), "T1204.002");
    let alert = m.to_alert(&at(exec(102, 101, "100", "/tmp/x"), 3 * S));
    assert_eq!(alert.rule.id, "SEN-SEQ-001");
    assert_eq!(alert.mitre, ["T1105", "T1204.002"]);
    assert_eq!(alert.fields["tactics"][0], "execution");
    assert_eq!(alert.fields["steps"].as_array().map(Vec::len), Some(3));
}

#[test]
fn sequence_expires_after_within() {
    let set = load(CORR);
    let out = feed(
        &set,
        &[
            at(write(100, "/tmp/x"), S),
            at(chmod(100, 1, "/tmp/x"), 2 * S),
            at(exec(100, 1, "", "/tmp/x"), 122 * S),
        ],
    );
    assert!(out.is_empty(), "{out:#?}");
    let mut c = Correlator::new(&set);
    let mut o = Vec::new();
    c.observe(&mut Scratch::new(), &at(write(100, "/tmp/x"), S), &mut o);
    assert_eq!(c.stats().open_instances, 1);
    c.expire(200 * S);
    let st = c.stats();
    assert_eq!((st.open_instances, st.expired), (0, 1));
}

#[test]
fn interleaved_trees_do_not_cross() {
    let set = load(CORR);
    // Tree A writes and chmods /tmp/a; tree B runs /tmp/a: no completion. Then A runs
    // it: exactly one, in A's scope.
    let evs = [
        at(write(100, "/tmp/a"), S),
        at(write(200, "/tmp/a"), S + 1),
        at(chmod(101, 100, "/tmp/a"), 2 * S),
        at(exec(201, 200, "", "/tmp/a"), 3 * S),
        at(exec(102, 101, "100", "/tmp/a"), 4 * S),
    ];
    let out = feed(&set, &evs);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].scope, "process_tree:100");
    assert_eq!(out[0].steps[2].pid, 102);
    // Unrelated tree only: nothing.
    let out = feed(
        &set,
        &[
            at(write(100, "/tmp/a"), S),
            at(chmod(300, 1, "/tmp/a"), 2 * S),
            at(exec(301, 300, "", "/tmp/a"), 3 * S),
        ],
    );
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn capture_mismatch_does_not_complete() {
    let set = load(CORR);
    let out = feed(
        &set,
        &[
            at(write(100, "/tmp/x"), S),
            at(chmod(100, 1, "/tmp/other"), 2 * S),
            at(exec(100, 1, "", "/tmp/x"), 3 * S),
            at(exec(100, 1, "", "/tmp/other"), 4 * S),
        ],
    );
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn repeated_first_steps_do_not_pile_up() {
    let set = load(CORR);
    let mut c = Correlator::new(&set);
    let mut out = Vec::new();
    let mut s = Scratch::new();
    for i in 0..50 {
        c.observe(&mut s, &at(write(100, "/tmp/x"), S + i), &mut out);
    }
    assert_eq!(c.stats().open_instances, 1);
    c.observe(&mut s, &at(write(100, "/tmp/y"), 2 * S), &mut out);
    assert_eq!(c.stats().open_instances, 2);
}

#[test]
fn other_scopes() {
    let mk = |by: &str| {
        load(&format!(
            r#"
- sequence:
    id: S-1
    name: s
    severity: low
    within: 1m
    by: {by}
    steps:
      - condition: evt.type = setuid
      - condition: evt.type = exec
"#
        ))
    };
    let setuid = |pid: u32, c: Option<&str>| {
        let cid = c.map_or(String::new(), |c| format!(", container.id: {c}"));
        ev(&format!("{{evt.type: setuid, proc.pid: {pid}{cid}}}"))
    };
    let run = |pid: u32, ppid: u32, c: Option<&str>| {
        let cid = c.map_or(String::new(), |c| format!(", container.id: {c}"));
        ev(&format!(
            "{{evt.type: exec, proc.pid: {pid}, proc.ppid: {ppid}{cid}}}"
        ))
    };
    // process: a child is not the same process
    let set = mk("process");
    assert!(feed(&set, &[setuid(5, None), run(6, 5, None)]).is_empty());
    assert_eq!(feed(&set, &[setuid(5, None), run(5, 1, None)]).len(), 1);
    // container: same container only; host processes are one scope
    let set = mk("container");
    assert!(feed(&set, &[setuid(5, Some("c1")), run(6, 1, Some("c2"))]).is_empty());
    assert_eq!(
        feed(&set, &[setuid(5, Some("c1")), run(9, 1, Some("c1"))]).len(),
        1
    );
    assert_eq!(feed(&set, &[setuid(5, None), run(9, 1, None)]).len(), 1);
    assert!(feed(&set, &[setuid(5, None), run(9, 1, Some("c1"))]).is_empty());
    // host: anything
    let set = mk("host");
    assert_eq!(
        feed(&set, &[setuid(5, Some("c1")), run(9, 1, None)]).len(),
        1
    );
    // file: step 1's path, seen later as file.path or as the executable
    let set = load(
        r#"
- sequence:
    id: S-F
    name: f
    severity: low
    within: 1m
    by: file
    steps:
      - condition: evt.type = rename
      - condition: evt.type = exec
"#,
    );
    let mv = ev("{evt.type: rename, proc.pid: 1, file.path: /tmp/f}");
    assert_eq!(
        feed(
            &set,
            &[
                mv.clone(),
                ev("{evt.type: exec, proc.pid: 9, proc.exe: /tmp/f}")
            ]
        )
        .len(),
        1
    );
    assert!(
        feed(
            &set,
            &[mv, ev("{evt.type: exec, proc.pid: 9, proc.exe: /tmp/g}")]
        )
        .is_empty()
    );
}

#[test]
fn cap_evicts_oldest_and_counts() {
    let set = load(CORR);
    let mut c = Correlator::with_cap(&set, 3);
    let mut out = Vec::new();
    let mut s = Scratch::new();
    for pid in 1..=5u32 {
        c.observe(&mut s, &at(write(100 + pid, "/tmp/x"), S), &mut out);
    }
    let st = c.stats();
    assert_eq!((st.open_instances, st.evictions, st.cap), (3, 2, 3));
    assert_eq!(st.items[0].id, "SEN-SEQ-001");
    // The evicted (oldest) trees cannot complete; the kept ones can.
    for pid in [101u32, 105] {
        c.observe(&mut s, &at(chmod(pid, 1, "/tmp/x"), 2 * S), &mut out);
        c.observe(&mut s, &at(exec(pid, 1, "", "/tmp/x"), 3 * S), &mut out);
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].scope, "process_tree:105");
    // Thresholds are bounded the same way.
    let mut c = Correlator::with_cap(&set, 2);
    for pid in 0..6u32 {
        let e = ev(&format!(
            "{{evt.type: connect, proc.pid: {pid}, net.dport: 1}}"
        ));
        c.observe(&mut s, &e, &mut out);
    }
    let st = c.stats();
    assert_eq!((st.open_windows, st.evictions), (2, 4));
}

fn connect(pid: u32, port: u16, t: u64) -> Event {
    at(
        ev(&format!(
            "{{evt.type: connect, proc.pid: {pid}, proc.exe: /bin/nc, net.dport: {port}}}"
        )),
        t,
    )
}

#[test]
fn threshold_counts_distinct_values_once_per_window() {
    let set = load(CORR);
    let mut c = Correlator::new(&set);
    let mut s = Scratch::new();
    let mut out = Vec::new();
    // 19 distinct ports, repeated: below the threshold.
    for i in 0..60u64 {
        c.observe(&mut s, &connect(7, (i % 19) as u16 + 1, i * 1000), &mut out);
    }
    assert!(out.is_empty());
    // The 20th distinct port fires; more ports in the same window do not.
    c.observe(&mut s, &connect(7, 20, S), &mut out);
    c.observe(&mut s, &connect(7, 21, S + 1), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    let m = &out[0];
    assert_eq!(m.kind, CorrelationKind::Threshold);
    assert_eq!(m.message, "/bin/nc connected to 20 distinct ports in 10s");
    assert_eq!((m.count, m.scope.as_str()), (20, "process:7"));
    // Another process is its own scope.
    for p in 1..=20u16 {
        c.observe(&mut s, &connect(8, p, 2 * S), &mut out);
    }
    assert_eq!(out.len(), 2);
    // After the window, pid 7 starts over and can fire again.
    for p in 100..120u16 {
        c.observe(&mut s, &connect(7, p, 11 * S), &mut out);
    }
    assert_eq!(out.len(), 3);
}

#[test]
fn threshold_window_resets_and_counts_events() {
    let set = load(
        r#"
- threshold:
    id: T-C
    name: Many setuid
    severity: low
    condition: evt.type = setuid
    count: 3
    within: 1s
    by: user
    output: "%count setuid calls by uid %user.uid in %within"
"#,
    );
    let su = |uid: u32, t: u64| at(ev(&format!("{{evt.type: setuid, user.uid: {uid}}}")), t);
    // 2 in one window, 2 in the next: the window resets, never 3 within 1s.
    let out = feed(
        &set,
        &[su(5, 0), su(5, S / 2), su(5, 2 * S), su(5, 2 * S + 1)],
    );
    assert!(out.is_empty(), "{out:#?}");
    let out = feed(&set, &[su(5, 0), su(6, 1), su(5, 2), su(5, 3)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message, "3 setuid calls by uid 5 in 1s");
    assert_eq!(out[0].scope, "user:5");
}

#[test]
fn threshold_process_tree_uses_the_tree_root() {
    let set = load(
        r#"
- threshold:
    id: T-T
    name: t
    severity: low
    condition: evt.type = exec
    count: 2
    within: 1m
    by: process_tree
"#,
    );
    // sshd(50) -> bash(60) -> {ls(61), id(62)}: one tree rooted at bash.
    let e = |pid: u32| {
        ev(&format!(
            "{{evt.type: exec, proc.pid: {pid}, proc.ppid: 60, proc.pname: bash, proc.ancestors: [sshd], proc.apids: [50]}}"
        ))
    };
    let out = feed(&set, &[e(61), e(62)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].scope, "process_tree:60");
}

#[test]
fn events_matching_no_step_do_not_allocate() {
    let set = load(CORR);
    let mut c = Correlator::new(&set);
    let mut s = Scratch::new();
    let mut out = Vec::with_capacity(16);
    let events = corpus();
    // Warm the reusable buffers, with open partial instances present.
    c.observe(&mut s, &at(write(100, "/tmp/x"), 0), &mut out);
    for e in &events {
        c.observe(&mut s, e, &mut out);
    }
    let before_out = out.len();
    let mut misses = 0;
    for e in &events {
        // Events of a type no step or threshold is indexed under.
        if matches!(
            e.event.action.as_str(),
            "openat" | "connect" | "fchmodat" | "chmod" | "exec"
        ) || e.event.kind == crate::event::Kind::File
        {
            continue;
        }
        misses += 1;
        let a = allocs();
        c.observe(&mut s, e, &mut out);
        assert_eq!(allocs() - a, 0, "allocated on {}", e.event.action);
    }
    assert!(misses > 50, "corpus has too few misses: {misses}");
    assert_eq!(out.len(), before_out);
}

#[test]
fn located_errors_for_new_items() {
    let seq = |within: &str, by: &str, steps: &str| {
        format!(
            "- sequence:\n    id: S\n    name: s\n    severity: low\n    within: {within}\n    by: {by}\n    steps:\n{steps}"
        )
    };
    let two = "      - condition: evt.type = exec\n      - condition: evt.type = exit\n";
    // bad duration
    let (e, l, c) = only_loc(&seq("2 weeks", "process", two));
    assert!(matches!(e, RuleError::BadDuration { .. }), "{e}");
    assert_eq!((l, c), (5, 13), "{e}");
    let (e, ..) = only_loc(&seq("0s", "process", two));
    assert!(matches!(e, RuleError::BadDuration { .. }), "{e}");
    let (e, ..) = only_loc(&seq("25h", "process", two));
    assert!(matches!(e, RuleError::BadDuration { .. }), "{e}");
    // unknown scope, with a suggestion
    let (e, l, c) = only_loc(&seq("1s", "proces_tree", two));
    assert!(
        matches!(&e, RuleError::UnknownName { what: "scope", suggestions, .. } if suggestions.contains(&"process_tree".to_owned())),
        "{e}"
    );
    assert_eq!((l, c), (6, 9));
    // $x used before capture: points at the `$x` token
    let steps = "      - condition: evt.type = exec\n        capture: {exe: proc.exe}\n      - condition: evt.type = exit and proc.exe = $exe and file.path = $path\n";
    let (e, l, c) = only_loc(&seq("1s", "process", steps));
    assert!(
        matches!(&e, RuleError::UncapturedRef { name, available, .. } if name == "path" && available == &["exe".to_owned()]),
        "{e}"
    );
    assert_eq!((l, c), (10, 72), "{e}");
    assert!(e.to_string().contains("captured so far: $exe"), "{e}");
    // a step's own capture is not visible to its condition
    let steps = "      - condition: evt.type = exec and proc.exe = $exe\n        capture: {exe: proc.exe}\n      - condition: evt.type = exit\n";
    let (e, l, c) = only_loc(&seq("1s", "process", steps));
    assert!(matches!(e, RuleError::UncapturedRef { .. }), "{e}");
    assert_eq!((l, c), (8, 51), "{e}");
    // $x with an operator other than = / !=
    let steps = "      - condition: evt.type = exec\n        capture: {exe: proc.exe}\n      - condition: proc.exe startswith $exe\n";
    let (e, ..) = only_loc(&seq("1s", "process", steps));
    assert!(matches!(e, RuleError::BadOperator { .. }), "{e}");
    // $x in the output must be captured too
    let out = format!("{}    output: \"ran %$nope\"\n", seq("1s", "process", two));
    let (e, l, c) = only_loc(&out);
    assert!(matches!(e, RuleError::UncapturedRef { .. }), "{e}");
    assert_eq!((l, c), (10, 19), "{e}");
    // empty and single-step sequences
    let (e, l, c) =
        only_loc(&seq("1s", "process", "      []\n").replace("steps:\n      []", "steps: []"));
    assert!(
        matches!(&e, RuleError::Shape { found, .. } if found == "0 steps"),
        "{e}"
    );
    assert_eq!((l, c), (7, 12));
    let (e, ..) = only_loc(&seq(
        "1s",
        "process",
        "      - condition: evt.type = exec\n",
    ));
    assert!(
        matches!(&e, RuleError::Shape { found, .. } if found == "1 step"),
        "{e}"
    );
    // unknown capture field, duplicate capture name
    let steps = "      - condition: evt.type = exec\n        capture: {a: proc.exee}\n      - condition: evt.type = exit\n";
    let (e, l, c) = only_loc(&seq("1s", "process", steps));
    assert!(matches!(e, RuleError::UnknownField { .. }), "{e}");
    assert_eq!((l, c), (9, 22));
    // threshold: count 0, unknown distinct field, unknown scope
    let thr = |count: &str, distinct: &str, by: &str| {
        format!(
            "- threshold:\n    id: T\n    name: t\n    severity: low\n    condition: evt.type = connect\n    distinct: {distinct}\n    count: {count}\n    within: 10s\n    by: {by}\n"
        )
    };
    let (e, l, c) = only_loc(&thr("0", "net.dport", "process"));
    assert!(
        matches!(&e, RuleError::BadValue { field, .. } if field == "count"),
        "{e}"
    );
    assert_eq!((l, c), (7, 12));
    let (e, l, c) = only_loc(&thr("5", "net.dprt", "process"));
    assert!(matches!(e, RuleError::UnknownField { .. }), "{e}");
    assert_eq!((l, c), (6, 15));
    let (e, l, c) = only_loc(&thr("5", "net.dport", "pod"));
    assert!(
        matches!(e, RuleError::UnknownName { what: "scope", .. }),
        "{e}"
    );
    assert_eq!((l, c), (9, 9));
    // ids are shared with rules
    let dup = format!(
        "{}{}",
        thr("5", "net.dport", "host"),
        super::one_rule("evt.type = exec").replace("T-1", "T")
    );
    let errs = load_err(&dup);
    assert!(matches!(errs[0], RuleError::Duplicate { .. }), "{errs:?}");
    // all-or-nothing: a bad threshold fails a file with good rules
    let bad = format!(
        "{}{}",
        super::one_rule("evt.type = exec"),
        thr("0", "net.dport", "host")
    );
    assert_eq!(load_err(&bad).len(), 1);
}

#[test]
fn inline_tests_run_for_sequences_and_thresholds() {
    let set = load(CORR);
    let failures = set.run_inline_tests();
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // A wrong expectation is reported at the case, with its event count.
    let wrong = CORR.replace("      no_match:\n        - - {evt.type: openat, proc.pid: 100, file.path: /tmp/x, file.write: true}\n          - {evt.type: fchmodat, proc.pid: 100, file.path: /tmp/y",
        "      no_match:\n        - - {evt.type: openat, proc.pid: 100, file.path: /tmp/x, file.write: true}\n          - {evt.type: fchmodat, proc.pid: 100, file.path: /tmp/x");
    assert_ne!(wrong, CORR);
    let f = load(&wrong).run_inline_tests();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].rule_id.as_str(), f[0].kind, f[0].index, f[0].events),
        ("SEN-SEQ-001", TestKind::NoMatch, 0, 3)
    );
    assert_eq!(f[0].loc.line, 28);
    assert!(f[0].to_string().contains("3 events, last"), "{}", f[0]);
    // Threshold shorthand: 19 distinct ports do not fire, so a `match` case fails.
    let short = CORR.replace("vary: {net.dport: [1..20]}", "vary: {net.dport: [1..19]}");
    let f = load(&short).run_inline_tests();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].rule_id.as_str(), f[0].kind, f[0].events),
        ("SEN-THR-001", TestKind::Match, 20)
    );
}

#[test]
fn test_case_errors_are_located() {
    let base = "- threshold:\n    id: T\n    name: t\n    severity: low\n    condition: evt.type = connect\n    count: 2\n    within: 10s\n    by: host\n    tests:\n      match:\n";
    let (e, l, c) = only_loc(&format!(
        "{base}        - [{{evt.type: connect, at: soon}}]\n"
    ));
    assert!(matches!(e, RuleError::BadDuration { .. }), "{e}");
    assert_eq!((l, c), (11, 36));
    let (e, l, c) = only_loc(&format!(
        "{base}        - {{repeat: 0, event: {{evt.type: connect}}}}\n"
    ));
    assert!(matches!(e, RuleError::BadValue { .. }), "{e}");
    assert_eq!((l, c), (11, 20));
    let (e, l, c) = only_loc(&format!(
        "{base}        - {{repeat: 2, event: {{evt.type: connect}}, vary: {{net.dprt: [1, 2]}}}}\n"
    ));
    assert!(matches!(e, RuleError::UnknownField { .. }), "{e}");
    assert_eq!((l, c), (11, 58));
    let (e, ..) = only_loc(&format!("{base}        - {{evt.type: connect}}\n"));
    assert!(matches!(e, RuleError::Shape { .. }), "{e}");
}
