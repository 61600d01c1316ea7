//! The command line on bad input: clear errors, right exit codes, nothing half-done. No root.

use std::process::Command;

use sensor_tests::sensor_bin;

fn sensor(args: &[&str]) -> std::process::Output {
    Command::new(sensor_bin()).args(args).output().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_arguments_are_usage_errors() {
    let o = sensor(&["alerts", "tail", "--severity", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("critical") && e.contains("medium"),
        "lists valid values: {e}"
    );

    let o = sensor(&["events", "tail", "--kind", "sockets"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("exec, fork, exit, file, network, privilege"));

    let o = sensor(&["no-such-command"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn no_agent_running_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    for args in [
        vec!["--state-dir", state, "status"],
        vec!["--state-dir", state, "events", "tail"],
    ] {
        let o = sensor(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("cannot reach the agent") && e.contains("sensor run"),
            "{e}"
        );
    }
}

#[test]
fn config_check_locates_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, sensor::config::DEFAULT_TOML).unwrap();
    let o = sensor(&["config", "check", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));

    let bad = dir.path().join("bad.toml");
    let text = sensor::config::DEFAULT_TOML.replace("[health]", "[health]\nsubscriber_queeu = 3");
    std::fs::write(&bad, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("subscriber_queeu"))
        .unwrap()
        + 1;
    let o = sensor(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains(&format!("bad.toml:{line}:1")), "{e}");
    assert!(e.contains("subscriber_queeu"), "{e}");

    let o = sensor(&["config", "check", "/nonexistent/sensor.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/sensor.toml"));

    // `run` refuses a bad config before touching the kernel.
    let o = sensor(&[
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--config",
        bad.to_str().unwrap(),
        "run",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("subscriber_queeu"));
}

#[test]
fn alerts_tail_on_an_empty_state_dir_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = sensor(&[
        "--state-dir",
        dir.path().to_str().unwrap(),
        "alerts",
        "tail",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

#[test]
fn rules_check_locates_errors_and_runs_inline_tests() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule:\n    id: X-1\n    name: x\n    description: x\n    severity: high\n    condition: evt.type = exec and proc.nmae = sh\n",
    )
    .unwrap();
    let o = sensor(&["rules", "check", "--only", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("bad.yaml:6:"), "{e}");
    assert!(
        e.contains("proc.nmae") && e.contains("proc.name"),
        "suggests the close field: {e}"
    );

    // A rule whose inline test fails is refused too.
    let failing = dir.path().join("failing.yaml");
    std::fs::write(
        &failing,
        "- rule:\n    id: X-2\n    name: x\n    description: x\n    severity: low\n    condition: evt.type = exec and proc.name = sh\n    tests:\n      match:\n        - {evt.type: exec, proc.exe: /bin/bash}\n",
    )
    .unwrap();
    let o = sensor(&["rules", "check", "--only", failing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("X-2"), "{}", stderr(&o));

    // The shipped ruleset itself passes.
    let o = sensor(&["rules", "check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ok: "));
}
