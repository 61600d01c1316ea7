//! Signed rules on the live agent: it starts on a signed bundle, refuses a hot reload of a
//! tampered one while the signed rules keep running, takes a newer signed version, and after a
//! restart refuses the older, validly signed version (replay). Root only.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use sensor_tests::{Agent, marker_rule, require_root, sensor_bin};

fn cli_ok(args: &[&str]) {
    let o = Command::new(sensor_bin()).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sign(dir: &Path, key: &Path, version: &str) {
    cli_ok(&[
        "bundle",
        "sign",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--kind",
        "rules",
        "--name",
        "corp",
        "--version",
        version,
    ]);
}

#[test]
fn signed_rules_start_reload_and_refuse_replays() {
    if !require_root("signed_rules_start_reload_and_refuse_replays") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    cli_ok(&["bundle", "keygen", "--out", keys.to_str().unwrap()]);
    let (secret, public) = (
        keys.join("bundle-signing.pk8"),
        keys.join("bundle-signing.pub"),
    );
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("one.yaml"), marker_rule("SIG-001", "sig-one")).unwrap();
    sign(&rules, &secret, "2");
    let v2: Vec<(String, Vec<u8>)> = ["sensor-bundle.json", "sensor-bundle.json.sig"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(rules.join(f)).unwrap()))
        .collect();
    let cfg = format!(
        "{}\n[signing]\nrequire = true\ntrusted_keys = [{:?}]\n",
        sensor::config::DEFAULT_TOML
            .replacen(
                "paths = []",
                &format!("paths = [{:?}]", rules.display().to_string()),
                1,
            )
            .replace("reload_check_secs = 2", "reload_check_secs = 1")
            .replace("builtin = true", "builtin = false"),
        public.display().to_string()
    );

    // 1. Starts on the signed bundle and records its version.
    let mut agent = Agent::start(Some(&cfg));
    assert_eq!(agent.status().rules.loaded, 1);
    let record = std::fs::read_to_string(agent.state.path().join("bundles.json")).unwrap();
    assert!(record.contains("rules/corp"), "{record}");

    // 2. A rule file dropped in without signing: the reload is refused, the signed rules run.
    std::fs::write(rules.join("two.yaml"), marker_rule("SIG-002", "sig-two")).unwrap();
    let refused = agent
        .wait_alert(Duration::from_secs(10), |a| {
            a.rule.id == "sensor.rules_reload_refused"
        })
        .unwrap_or_else(|| panic!("no refusal\n{}", agent.log_text()));
    let problems = refused.fields["problems"].to_string();
    assert!(
        problems.contains("two.yaml") && problems.contains("not listed"),
        "{problems}"
    );
    let s = agent.status();
    assert_eq!((s.rules.generation, s.rules.loaded), (1, 1));
    Command::new("/bin/true").arg("sig-one").status().unwrap();
    agent
        .wait_alert(Duration::from_secs(10), |a| a.rule.id == "SIG-001")
        .expect("the signed rule still fires");

    // 3. Signed as version 3, the same files are taken.
    sign(&rules, &secret, "3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.status().rules.generation < 2 {
        assert!(Instant::now() < deadline, "no reload\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.status().rules.loaded, 2);

    // 4. Restart on the old, validly signed version 2: refused as a replay.
    agent.stop();
    std::fs::remove_file(rules.join("two.yaml")).unwrap();
    for (name, bytes) in &v2 {
        std::fs::write(rules.join(name), bytes).unwrap();
    }
    let state = agent.state.path();
    let mut child = Command::new(sensor_bin())
        .arg("--state-dir")
        .arg(state)
        .arg("--config")
        .arg(state.join("sensor.toml"))
        .arg("run")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent started on a replayed bundle");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("version 2 is older than version 3"), "{e}");
}
