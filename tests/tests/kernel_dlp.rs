//! Secrets on command lines: detected, alerted without the value, and redacted everywhere the
//! event goes (live stream, alert log, later events of the process). Root only.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use sensor::{api::EventFilter, event::Kind};
use sensor_tests::{Agent, require_root};

#[test]
fn command_line_secrets_are_alerted_and_redacted() {
    if !require_root("command_line_secrets_are_alerted_and_redacted") {
        return;
    }
    let agent = Agent::start(None);
    let mut events = agent.subscribe(EventFilter {
        kinds: vec![Kind::Exec],
        ..EventFilter::default()
    });
    // A fake secret; `echo` just prints it.
    let secret = "Zq8pLm2VxR7tK4wN";
    let out = Command::new("/bin/echo")
        .arg("dlp-marker")
        .arg(format!("--password={secret}"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let ev = events
        .wait_for(Duration::from_secs(10), |e| {
            e.process.args.iter().any(|a| a == "dlp-marker")
        })
        .expect("exec event");
    let line = serde_json::to_string(&ev).unwrap();
    assert!(!line.contains(secret), "the live event is redacted: {line}");
    assert!(line.contains("REDACTED"), "{line}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        if let Some(a) = agent
            .alerts()
            .into_iter()
            .find(|a| a.rule.id == "sensor.dlp.secret_in_command_line")
        {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no DLP alert\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(alert.mitre, vec!["T1552"]);
    let log = std::fs::read_to_string(agent.state.path().join("alerts/alerts.jsonl")).unwrap();
    assert!(
        !log.contains(secret),
        "the alert log never holds the secret"
    );
}

#[test]
fn credential_files_read_are_scanned_once() {
    if !require_root("credential_files_read_are_scanned_once") {
        return;
    }
    let agent = Agent::start(None);
    let dir = tempfile::tempdir().unwrap();
    let aws = dir.path().join(".aws");
    std::fs::create_dir(&aws).unwrap();
    let creds = aws.join("credentials");
    // AWS's documented example key pair.
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    )
    .unwrap();
    for _ in 0..3 {
        Command::new("cat").arg(&creds).output().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        if let Some(a) = agent
            .alerts()
            .into_iter()
            .find(|a| a.rule.id == "sensor.dlp.secret_in_file_read")
        {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no file DLP alert\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let kinds = alert.fields["secret_kinds"].to_string();
    assert!(kinds.contains("aws_access_key_id"), "{kinds}");
    std::thread::sleep(Duration::from_millis(500));
    let n = agent
        .alerts()
        .iter()
        .filter(|a| a.rule.id == "sensor.dlp.secret_in_file_read")
        .count();
    assert_eq!(n, 1, "one scan per file version");
    let log = std::fs::read_to_string(agent.state.path().join("alerts/alerts.jsonl")).unwrap();
    assert!(!log.contains("wJalrXUtnFEMI"), "no secret value in the log");
}
