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

    // Containment: exactly one target, a file or a hash.
    for (args, says) in [
        (
            vec!["contain", "freeze"],
            "required arguments were not provided",
        ),
        (
            vec!["contain", "isolate", "--pid", "7", "--tree", "8"],
            "cannot be used with",
        ),
        (
            vec!["contain", "deny-exec", "/x", "--sha256", "ab"],
            "cannot be used with",
        ),
        (
            vec!["contain", "deny-exec"],
            "required arguments were not provided",
        ),
        (vec!["contain", "kill", "--pid", "x3"], "invalid value"),
    ] {
        let o = sensor(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn no_agent_running_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    for args in [
        vec!["--state-dir", state, "status"],
        vec!["--state-dir", state, "events", "tail"],
        vec!["--state-dir", state, "contain", "freeze", "--pid", "5"],
        vec!["--state-dir", state, "release", "frz-1"],
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

#[test]
fn baseline_commands_on_bad_input_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    // No agent and no store: said so, nothing created.
    let o = sensor(&["--state-dir", &d("state"), "baseline", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no baseline store at"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("state").exists());
    // No agent, a store in the state dir: it is used, and said so.
    std::fs::create_dir(d("state")).unwrap();
    let o = sensor(&["baseline", "--db", &d("state/baselines.db"), "list"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("(no workloads yet)"));
    let o = sensor(&["--state-dir", &d("state"), "baseline", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("acting on"), "{}", stderr(&o));

    // A file that is not SQLite, and a SQLite file that is not ours.
    std::fs::write(d("junk.db"), vec![b'x'; 4096]).unwrap();
    let o = sensor(&["baseline", "--db", &d("junk.db"), "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("damaged") || stderr(&o).contains("not a baseline database"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(d("junk.db")).unwrap(),
        vec![b'x'; 4096],
        "left untouched"
    );

    let db = d("b.db");
    // Unknown workloads and malformed keys.
    let o = sensor(&["baseline", "--db", &db, "freeze", "exe:/nope@root"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no baseline for"), "{}", stderr(&o));
    let o = sensor(&["baseline", "--db", &db, "learn", "pod:x"]);
    assert!(
        stderr(&o).contains("is not a workload key"),
        "{}",
        stderr(&o)
    );
    let o = sensor(&[
        "baseline",
        "--db",
        &db,
        "learn",
        "exe:/x@root",
        "--for",
        "5y",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown unit"), "{}", stderr(&o));

    // A garbled export is a located error; a valid one imports frozen.
    std::fs::write(d("bad.json"), "{\"format\": 1,\n \"workload\": 7}").unwrap();
    let o = sensor(&["baseline", "--db", &db, "import", &d("bad.json")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.json:2:"), "{}", stderr(&o));
    let o = sensor(&[
        "baseline",
        "--db",
        &db,
        "learn",
        "exe:/usr/bin/x\u{1b}[31m@root",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = sensor(&["baseline", "--db", &db, "list"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains('\u{1b}'),
        "hostile names are escaped: {out:?}"
    );
    let o = sensor(&[
        "baseline",
        "--db",
        &db,
        "export",
        "exe:/usr/bin/x\u{1b}[31m@root",
        "-o",
        &d("x.json"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = sensor(&["baseline", "--db", &db, "import", &d("x.json")]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("as version 2 (frozen)"),
        "{}",
        stderr(&o)
    );
}

/// Tokens and the remote API client on bad input: usage errors name the value, nothing is
/// contacted, no secret is taken from the command line.
#[test]
fn token_and_api_commands_refuse_bad_input() {
    for (args, says) in [
        (
            vec!["token", "create", "--name", "x", "--scope", "root"],
            "unknown scope",
        ),
        (
            vec!["token", "create", "--name", "x", "--ttl", "5w"],
            "the unit is s, m, h or d",
        ),
        (
            vec!["token", "create", "--name", "x", "--ttl", "0"],
            "must be positive",
        ),
        (
            vec!["token", "rotate", "abc", "--grace", "soon"],
            "not a duration",
        ),
        (
            vec!["token", "create"],
            "required arguments were not provided",
        ),
        (
            vec!["api", "get", "/x", "--token", "snsr_x"],
            "unexpected argument '--token'",
        ),
        (
            vec!["api", "get", "/x", "--url", "u", "--cert", "c"],
            "required arguments were not provided",
        ),
        (
            vec!["api", "tls-init", "--dir", "/tmp/x"],
            "required arguments were not provided",
        ),
    ] {
        let o = sensor(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    for (args, says) in [
        (
            vec!["api", "get", "/api/v1/status", "--url", "ftp://h"],
            "bad API URL",
        ),
        (
            vec![
                "api",
                "get",
                "api/v1/status",
                "--url",
                "https://127.0.0.1:1",
            ],
            "must start with /",
        ),
        (
            vec!["api", "get", "/a\nb", "--url", "https://127.0.0.1:1"],
            "control characters",
        ),
        (
            vec![
                "api",
                "post",
                "/x",
                "--data",
                "{nope",
                "--url",
                "https://127.0.0.1:1",
            ],
            "--data is not JSON",
        ),
        (
            vec![
                "api",
                "get",
                "/x",
                "--url",
                "https://127.0.0.1:1",
                "--ca",
                "/nonexistent/ca.crt",
            ],
            "/nonexistent/ca.crt",
        ),
        (
            vec!["api", "get", "/x", "--url", "http://127.0.0.1:1"],
            "cannot connect to 127.0.0.1:1",
        ),
    ] {
        let o = sensor(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    // tls-init refuses to overwrite a CA.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(
        sensor(&["api", "tls-init", "--dir", d, "--host", "localhost"])
            .status
            .success()
    );
    let o = sensor(&["api", "tls-init", "--dir", d, "--host", "localhost"]);
    assert!(
        !o.status.success() && stderr(&o).contains("exists; pass --force"),
        "{}",
        stderr(&o)
    );
    // A token command with no agent says so.
    let o = sensor(&["--state-dir", d, "token", "list"]);
    assert!(
        !o.status.success() && stderr(&o).contains("is `sensor run` running"),
        "{}",
        stderr(&o)
    );
}
