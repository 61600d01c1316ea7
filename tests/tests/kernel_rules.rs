//! Rules on the live agent: a rule fires on real behaviour, hot reload swaps rules, a bad
//! reload is refused while the old rules keep running. Root only.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use sensor_tests::{Agent, marker_rule, require_root};

/// Replace a file the way a careful operator (or config management) does: write elsewhere,
/// then rename into place, so the agent never sees a half-written file.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.parent().unwrap().with_extension("incoming");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn rules_fire_reload_and_refuse_bad_files() {
    if !require_root("rules_fire_reload_and_refuse_bad_files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let file = rules_dir.join("local.yaml");
    std::fs::write(&file, marker_rule("TEST-001", "marker-one")).unwrap();
    let cfg = sensor::config::DEFAULT_TOML
        .replacen(
            "paths = []",
            &format!("paths = [{:?}]", rules_dir.display().to_string()),
            1, // the [rules] section comes first; [ioc] keeps its empty list
        )
        .replace("reload_check_secs = 2", "reload_check_secs = 1")
        // Only the test's own rules: this test is about loading, not about the shipped set.
        .replace("builtin = true", "builtin = false");
    let agent = Agent::start(Some(&cfg));

    // 1. The rule fires on a real exec, with the process context and ATT&CK id.
    Command::new("/bin/true")
        .arg("marker-one")
        .status()
        .unwrap();
    let a = agent
        .wait_alert(Duration::from_secs(10), |a| a.rule.id == "TEST-001")
        .unwrap_or_else(|| panic!("no alert\n{}", agent.log_text()));
    assert_eq!(a.mitre, vec!["T1059.004"]);
    let p = a.process.expect("process context");
    assert_eq!(p.executable, "/bin/true");
    assert_eq!(p.ppid, std::process::id());

    // 2. Edit the file: the new rule replaces the old one without a restart.
    replace(&file, &marker_rule("TEST-002", "marker-two"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.status().rules.generation < 2 {
        assert!(Instant::now() < deadline, "no reload\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("/bin/true")
        .arg("marker-two")
        .status()
        .unwrap();
    agent
        .wait_alert(Duration::from_secs(10), |a| a.rule.id == "TEST-002")
        .unwrap_or_else(|| panic!("new rule fires\n{}\n{:?}", agent.log_text(), agent.alerts()));

    // 3. A broken file is refused with a located error; the running rules stay.
    replace(
        &file,
        "- rule:\n    id: BROKEN\n    condition: evt.type = = exec\n",
    );
    let refused = agent
        .wait_alert(Duration::from_secs(10), |a| {
            a.rule.id == "sensor.rules_reload_refused"
        })
        .expect("refusal alert");
    let problems = refused.fields["problems"].to_string();
    assert!(problems.contains("local.yaml:"), "{problems}");
    let s = agent.status();
    assert_eq!(s.rules.generation, 2);
    assert!(!s.rules.last_error.is_empty());
    // The old rule still runs: a different executable (not folded with the first alert).
    Command::new("/bin/echo")
        .arg("marker-two")
        .output()
        .unwrap();
    agent
        .wait_alert(Duration::from_secs(10), |a| {
            a.rule.id == "TEST-002"
                && a.process
                    .as_ref()
                    .is_some_and(|p| p.executable == "/bin/echo")
        })
        .expect("the previous rules keep running after a refused reload");

    // 4. SIGHUP reloads at once (after fixing the file).
    replace(&file, &marker_rule("TEST-003", "marker-three"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    Command::new("/bin/sh")
        .arg("-c")
        .arg("sleep 0.5; /bin/true marker-three")
        .status()
        .unwrap();
    agent
        .wait_alert(Duration::from_secs(10), |a| a.rule.id == "TEST-003")
        .expect("reloaded rule fires");
}
