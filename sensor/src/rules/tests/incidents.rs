//! Incident grouping: trees, containers, inactivity, ATT&CK progression, serde.

use super::ev;
use crate::alert::{Alert, Severity};
use crate::event::Event;
use crate::rules::incidents::{IncidentConfig, IncidentScope, IncidentTracker, Status, tree_root};

const MIN: u64 = 60 * 1_000_000_000;

/// sshd(50) -> bash(60) -> child `pid`.
fn in_tree(pid: u32) -> Event {
    ev(&format!(
        "{{evt.type: exec, proc.pid: {pid}, proc.exe: /usr/bin/x, proc.ppid: 60, proc.pexe: /bin/bash, proc.aexe: [/usr/sbin/sshd, /sbin/init], proc.apids: [50, 1]}}"
    ))
}

fn alert(rule: &str, sev: Severity, techniques: &[&str]) -> Alert {
    let mut a = Alert::new(rule, rule, sev, "m");
    for t in techniques {
        a = a.try_with_technique(t).unwrap_or_else(|e| panic!("{e}"));
    }
    a
}

#[test]
fn tree_root_stops_below_session_and_init() {
    let e = in_tree(61);
    assert_eq!(
        tree_root(&e, crate::rules::incidents::DEFAULT_STOP_LIST),
        (60, "/bin/bash")
    );
    // With an empty stop list, init (pid 1) still bounds the walk.
    assert_eq!(tree_root(&e, &[] as &[&str]), (50, "/usr/sbin/sshd"));
}

#[test]
fn same_tree_joins_with_progression_and_max_severity() {
    let mut t = IncidentTracker::new(IncidentConfig::default());
    let a1 = alert("R-1", Severity::Low, &["T1059.004"]);
    let a2 = alert("R-2", Severity::High, &["T1105"]);
    let a3 = alert("R-3", Severity::Medium, &["T1059.004", "T1003"]);
    let i1 = t.add(&a1, &in_tree(61), MIN);
    let i2 = t.add(&a2, &in_tree(62), 2 * MIN);
    let i3 = t.add(&a3, &in_tree(63), 3 * MIN);
    assert_eq!((&i1, &i1), (&i2, &i3));
    let inc = t.get(&i1).unwrap_or_else(|| panic!("missing"));
    assert_eq!(inc.severity, Severity::High);
    assert_eq!(inc.alert_ids, [a1.id.clone(), a2.id.clone(), a3.id.clone()]);
    assert_eq!(inc.rules, ["R-1", "R-2", "R-3"]);
    assert_eq!(
        inc.tactics,
        ["execution", "command-and-control", "credential-access"]
    );
    assert_eq!(inc.techniques, ["T1059.004", "T1105", "T1003"]);
    assert_eq!((inc.first_ns, inc.last_ns), (MIN, 3 * MIN));
    assert_eq!(
        inc.scope,
        IncidentScope::ProcessTree {
            root_pid: 60,
            root_exe: "/bin/bash".into(),
            container_id: None
        }
    );
    assert_eq!(
        uuid::Uuid::parse_str(&inc.id.0)
            .map(|u| u.get_version_num())
            .ok(),
        Some(7)
    );
    // Stated tactics (from correlation alerts) win over the technique table.
    let a4 = alert("R-4", Severity::Low, &["T1046"])
        .with_field("tactics", vec!["discovery", "execution"]);
    t.add(&a4, &in_tree(64), 4 * MIN);
    let inc = t.get(&i1).unwrap_or_else(|| panic!("missing"));
    assert_eq!(
        inc.tactics,
        [
            "execution",
            "command-and-control",
            "credential-access",
            "discovery"
        ]
    );
}

#[test]
fn different_containers_and_trees_split() {
    let mut t = IncidentTracker::new(IncidentConfig::default());
    let shim = |pid: u32, c: &str| {
        ev(&format!(
            "{{evt.type: exec, proc.pid: {pid}, proc.ppid: 10, proc.pexe: /usr/bin/containerd-shim-runc-v2, container.id: {c}}}"
        ))
    };
    let a = t.add(&alert("R", Severity::Low, &[]), &shim(500, "c1"), MIN);
    let b = t.add(&alert("R", Severity::Low, &[]), &shim(600, "c2"), MIN);
    let c = t.add(&alert("R", Severity::Low, &[]), &shim(500, "c1"), MIN + 1);
    let d = t.add(&alert("R", Severity::Low, &[]), &in_tree(61), MIN);
    assert_ne!(a, b);
    assert_eq!(a, c);
    assert_ne!(a, d);
    assert_eq!(t.open().len(), 3);
    // No usable tree (pid 0): grouped by container.
    let e = ev("{evt.type: exec, container.id: c9}");
    let x = t.add(&alert("R", Severity::Low, &[]), &e, MIN);
    assert_eq!(
        t.get(&x).map(|i| i.scope.clone()),
        Some(IncidentScope::Container { id: "c9".into() })
    );
}

#[test]
fn inactivity_closes_and_a_new_incident_opens() {
    let cfg = IncidentConfig {
        inactivity_ns: 30 * MIN,
        ..IncidentConfig::default()
    };
    let mut t = IncidentTracker::new(cfg);
    let first = t.add(&alert("R", Severity::Low, &[]), &in_tree(61), 0);
    let same = t.add(&alert("R", Severity::Low, &[]), &in_tree(61), 29 * MIN);
    assert_eq!(first, same);
    // 31 minutes after the last alert: closed; the next alert opens a new incident.
    let next = t.add(&alert("R", Severity::Low, &[]), &in_tree(61), 60 * MIN);
    assert_ne!(first, next);
    assert_eq!(t.get(&first).map(|i| i.status), Some(Status::Closed));
    assert_eq!(t.open().len(), 1);
    assert_eq!(t.all().count(), 2);
    let closed = t.tick(200 * MIN);
    assert_eq!(closed, std::slice::from_ref(&next));
    let taken = t.take_closed();
    assert_eq!(
        taken.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&first, &next]
    );
    assert!(t.take_closed().is_empty());
    // JSONL-friendly and restorable.
    let line = serde_json::to_string(&taken[0]).unwrap_or_default();
    assert!(
        !line.contains('\n') && line.contains("\"status\":\"closed\""),
        "{line}"
    );
    let json = serde_json::to_string(&t).unwrap_or_default();
    let back: IncidentTracker = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.all().count(), 2);
}

#[test]
fn closed_incidents_are_bounded() {
    let cfg = IncidentConfig {
        inactivity_ns: MIN,
        max_closed: 2,
        ..IncidentConfig::default()
    };
    let mut t = IncidentTracker::new(cfg);
    for i in 0..5u64 {
        t.add(&alert("R", Severity::Low, &[]), &in_tree(61), i * 10 * MIN);
    }
    // 4 closed, 2 kept, plus the open one.
    assert_eq!(t.all().count(), 3);
    assert_eq!(t.open().len(), 1);
}
